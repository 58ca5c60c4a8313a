"""Generation-job throughput vs the saliency engine's own, measured side by side in one run.

A study of N images × 2 arms (a standard and a dual-BN model) is generated through the real
job machinery — enqueue, task claims, plan/compute/store transactions on SQLite, input loading
from the store, random-named map files, SaliencyMap rows — and compared with the same ml work
done in a plain loop over the same inputs:

* ``engine``  — each arm's stored inputs and masks read back, then ml's one saliency pipeline
                (``ml.explain.pipeline``: prepare_batch, then explain_batch: compute_saliency,
                post-processing, the fixed-size map field, metrics, provenance), results kept
                in memory: what any caller of the engine (``radsal saliency`` included) pays;
* ``job``     — ``app.worker.run_pending`` on an enqueued study (everything above plus the job
                machinery); the ratio job/engine is the machinery's efficiency (target ≥ 0.9);
* ``saliency only`` — compute_saliency alone, for reference.

Each round runs both paths, alternating which goes first (each job round is a fresh study:
maps are per arm), and the medians are reported, so load from other processes and warm-up
drift affect both alike. Uses the real NIH chest
X-rays when ../shared/data/nih-cxr-pneumonia exists, else synthetic 256 px images.

    python bench/generate.py --images 200 --arch resnet18 --image-size 128
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from PIL import Image as PILImage
from sqlalchemy import select

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.migrate import upgrade_database
from app.models import Checkpoint, Image, User
from app.services.catalog.checkpoints import import_checkpoint, load_model
from app.services.catalog.images import import_image_paths, load_input_array, load_mask_array
from app.services.maps.jobs import enqueue_generation
from app.services.study.studies import create_study
from app.worker import run_pending
from ml.checkpoint import save_checkpoint
from ml.explain.pipeline import MapSettings, explain_batch, prepare_batch
from ml.models import create_model

NIH = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-cxr-pneumonia"


def _images(n: int, out: Path) -> tuple[list[Path], str]:
    if (NIH / "images").is_dir():
        files = sorted((NIH / "images").glob("*.png"))[:n]
        if len(files) == n:
            return files, f"NIH chest X-rays ({n} real images)"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = out / f"synthetic{i:04d}.png"
        PILImage.fromarray((rng.random((256, 256)) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths, f"synthetic 256 px images ({n})"


def _checkpoint(tmp: Path, arch: str, size: int, dual: bool) -> bytes:
    torch.manual_seed(int(dual))
    model = create_model(arch, 2, 1, dual_bn=dual)
    path = tmp / f"{arch}-{dual}.pt"
    save_checkpoint(
        path,
        model,
        arch=arch,
        num_classes=2,
        class_names=["normal", "pneumonia"],
        in_channels=1,
        image_size=size,
        normalize=None,
        dual_bn=dual,
        train={"mode": "dual_bn" if dual else "standard"},
    )
    return path.read_bytes()


def _engine(
    settings: Settings, ckpts: list[Checkpoint], images: list[Image], route: list[str | None]
) -> tuple[float, float]:
    """(seconds end to end, seconds inside compute_saliency) for all arms × images."""
    start = time.perf_counter()
    inner = 0.0
    bs = settings.batch_size
    for ckpt, r in zip(ckpts, route, strict=True):
        model = load_model(settings, ckpt)
        for lo in range(0, len(images), bs):
            chunk = images[lo : lo + bs]
            # The same inputs a job task reads: each image's stored model input and mask.
            batch = prepare_batch(
                [load_input_array(settings, im) for im in chunk],
                ckpt.image_size,
                1,
                masks=[load_mask_array(settings, im) for im in chunk],
            )
            out = explain_batch(
                model,
                batch,
                MapSettings(method="gradient"),
                class_names=["normal", "pneumonia"],
                checkpoint_sha256=ckpt.sha256,
                display_sizes=[(im.height, im.width) for im in chunk],
                route=r,
                device=torch.device("cpu"),
                max_batch=bs,
            )
            inner += out.compute_ms / 1000
    return time.perf_counter() - start, inner


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))

    tmp = Path(tempfile.mkdtemp(prefix="radsal-bench-"))
    settings = Settings(
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp / 'bench.sqlite'}",
        device="cpu",
        worker="external",
        batch_size=args.batch_size,
        max_upload_mb=4096,
    )
    engine = make_engine(settings.resolved_database_url())
    upgrade_database(engine)
    factory = make_sessionmaker(engine)
    paths, source = _images(args.images, tmp / "src")
    with factory.begin() as db:
        admin = User(username="admin", role="admin")
        db.add(admin)
        db.add_all(User(username=f"rater{i}", role="rater") for i in range(3))
        db.flush()
        ids = []
        for dual in (False, True):
            data = _checkpoint(tmp, args.arch, args.image_size, dual)
            ckpt, _ = import_checkpoint(
                db, settings, data=data, filename="m.pt", name=str(dual), actor=admin
            )
            ids.append(ckpt.id)
        import_image_paths(db, settings, paths, None, None, admin)
        image_ids = list(db.scalars(select(Image.id).order_by(Image.id)))
    with factory() as db:
        ckpts = [c for i in ids if (c := db.get(Checkpoint, i)) is not None]
        images = list(db.scalars(select(Image).order_by(Image.id)))
    n_maps = 2 * len(images)

    def new_study(k: int) -> None:
        with factory.begin() as db:
            admin = db.scalar(select(User).where(User.username == "admin"))
            spec = {
                "name": f"bench {k}",
                "image_ids": image_ids,
                "arms": [
                    {"checkpoint_id": ids[0], "method": "gradient"},
                    {"checkpoint_id": ids[1], "bn_route": "clean", "method": "gradient"},
                ],
                "raters": ["rater0", "rater1", "rater2"],
                "seed": k,
            }
            study = create_study(db, spec=spec, actor=admin)
            enqueue_generation(db, study, admin, batch_size=args.batch_size)

    _engine(settings, ckpts, images[: args.batch_size], [None, "clean"])  # warm-up (caches)
    engine_s, inner_s, job_s = [], [], []
    for k in range(args.rounds):
        new_study(k)
        # Alternate which path goes first, so drift in machine load favours neither.
        for path in ("engine", "job") if k % 2 == 0 else ("job", "engine"):
            if path == "engine":
                e, i = _engine(settings, ckpts, images, [None, "clean"])
                engine_s.append(e)
                inner_s.append(i)
            else:
                t0 = time.perf_counter()
                done = run_pending(factory, settings)
                job_s.append(time.perf_counter() - t0)
                assert done == n_maps, (done, n_maps)

    e, i, j = statistics.median(engine_s), statistics.median(inner_s), statistics.median(job_s)
    print(f"generate: {len(images)} images x 2 arms = {n_maps} maps; {source}")
    print(
        f"model {args.arch} @ {args.image_size} px, batch {args.batch_size}, "
        f"CPU threads {torch.get_num_threads()}, rounds {args.rounds} (median)"
    )
    print(f"{'path':<16}{'seconds':>10}{'maps/s':>10}")
    print(f"{'saliency only':<16}{i:>10.2f}{n_maps / i:>10.1f}")
    print(f"{'engine':<16}{e:>10.2f}{n_maps / e:>10.1f}")
    print(f"{'job':<16}{j:>10.2f}{n_maps / j:>10.1f}")
    print(f"job / engine throughput ratio: {e / j:.3f} (target >= 0.9)")
    engine.dispose()


if __name__ == "__main__":
    main()
