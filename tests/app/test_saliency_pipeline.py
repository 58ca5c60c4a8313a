"""One saliency pipeline: a study's generation job and ``radsal saliency`` write the same bytes.

The same checkpoint files and image files go once through the app (upload, study, generation
job in the worker) and once through the CLI on a data-set folder; every raw ``.npy`` and every
heatmap PNG (the app renders it on demand from the stored field) must be byte-identical, for a
standard model and a dual-BN model's adversarial route, with non-default target,
post-processing and colormap. Both sides explain the four
images as one batch in the same order (bytes are guaranteed per batch: another batch size may
change the last float bit, see docs/saliency.md). Also: the web server starts
without importing torch (the bridge to ``ml`` imports it lazily).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Image, SaliencyMap
from app.services import inference
from app.services.maps.jobs import enqueue_generation
from app.services.study.studies import create_study
from app.worker import run_pending
from ml.cli import saliency as saliency_cli
from tests.app.fixtures_ml import CLASSES, Catalog, build_catalog, checkpoint_bytes, png_bytes

N_IMAGES = 4
SALIENCY = {
    "target": "ground_truth",
    "postprocess": "percentile",
    "postprocess_params": {"low": 2.0, "high": 99.0},
    "colormap": "inferno",
}


@pytest.fixture()
def catalog(db: Session, settings: Settings, tmp_path: Path, make_user: Any) -> Catalog:
    return build_catalog(db, settings, tmp_path, make_user, n_images=N_IMAGES)


def _cli_inputs(tmp: Path) -> tuple[Path, Path, Path]:
    """The catalog's checkpoints as files, and its images as a class-folder data set."""
    std, dual = tmp / "cli" / "standard.pt", tmp / "cli" / "dual.pt"
    std.parent.mkdir(parents=True)
    std.write_bytes(checkpoint_bytes(tmp))
    dual.write_bytes(checkpoint_bytes(tmp, dual_bn=True, seed=1))
    data = tmp / "cli" / "data"
    for k in range(N_IMAGES):  # the same files and labels build_catalog uploads
        for split in ("train", "val"):
            folder = data / split / CLASSES[k % 2]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"case{k}.png").write_bytes(png_bytes(40, seed=k, width=48))
    return std, dual, data


def _run_cli(std: Path, dual: Path, data: Path, out: Path) -> None:
    parser = argparse.ArgumentParser(prog="radsal")
    saliency_cli.add_parser(parser.add_subparsers())
    pp = SALIENCY["postprocess_params"]
    args = parser.parse_args(
        [
            "saliency",
            "--checkpoint",
            str(std),
            "--checkpoint",
            str(dual),
            "--route",
            "clean",
            "--route",
            "adv",
            "--data",
            str(data),
            "--out",
            str(out),
            "--method",
            "gradient",
            "--target",
            str(SALIENCY["target"]),
            "--postprocess",
            str(SALIENCY["postprocess"]),
            "--postprocess-params",
            json.dumps(pp),
            "--colormap",
            str(SALIENCY["colormap"]),
            "--device",
            "cpu",
            "--faithfulness-steps",
            "0",
            "--sanity-cases",
            "0",
            "--no-progress",
        ]
    )
    assert args.func(args) == 0


def test_cli_and_generation_job_write_byte_identical_maps(
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    spec = catalog.spec(saliency=SALIENCY)
    spec["arms"][1]["bn_route"] = "adv"
    study = create_study(db, spec=spec, actor=catalog.admin)
    enqueue_generation(db, study, catalog.admin)
    db.flush()
    assert run_pending(session_factory, settings) == 2 * N_IMAGES

    out = tmp_path / "cli" / "out"
    _run_cli(*_cli_inputs(tmp_path), out)

    arm_dirs = {catalog.standard.id: out / "standard", catalog.dual.id: out / "dual-adv"}
    images = {im.id: im for im in db.scalars(select(Image))}
    names = {i: Path(im.source_filename).stem for i, im in images.items()}
    colormap = str(SALIENCY["colormap"])
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    cli_order = [r["case_id"].split("__")[-1] for r in rows if r["arm"] == "standard"]
    assert cli_order == [names[i] for i in catalog.image_ids]  # the same batch on both sides
    arms = {a.id: a.checkpoint_id for a in study.arms}
    maps = db.scalars(select(SaliencyMap).where(SaliencyMap.arm_id.in_(list(arms)))).all()
    assert len(maps) == 2 * N_IMAGES
    raws: set[bytes] = set()
    for m in maps:
        arm_dir = arm_dirs[arms[m.arm_id]]
        case = f"val__{CLASSES[int(names[m.image_id][-1]) % 2]}__{names[m.image_id]}"
        cli_raw = (arm_dir / "raw" / f"{case}.npy").read_bytes()
        cli_png = (arm_dir / "heatmaps" / f"{case}.png").read_bytes()
        assert (settings.data_dir / m.raw_path).read_bytes() == cli_raw, (arm_dir.name, case)
        # the heatmap rendered on demand from the stored field (no PNG is stored) is the CLI's
        image = images[m.image_id]
        field = (settings.data_dir / m.field_path).read_bytes()
        shown = inference.field_png(field, size=(image.height, image.width), colormap=colormap)
        assert shown == cli_png, (arm_dir.name, case)
        raws.add(cli_raw)
        cli_prov = json.loads((arm_dir / "provenance.json").read_text())
        for key in ("checkpoint_sha256", "route", "method", "params", "target", "postprocess"):
            assert m.provenance[key] == cli_prov[key], key
    assert len(raws) == 2 * N_IMAGES  # every map really differs (models, routes, images)


def test_the_web_server_starts_without_torch() -> None:
    """The bridge loads ml (torch, Captum) on first use; the choice lists never need it."""
    code = (
        "import sys\n"
        "from app.main import create_app\n"
        "from app.services import inference\n"
        "create_app()\n"
        "def heavy(*roots):\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] in roots)[:5]\n"
        "assert not heavy('torch', 'captum', 'ml'), heavy('torch', 'captum', 'ml')\n"
        "assert 'gradient' in inference.saliency_methods()\n"
        "assert 'jet' in inference.colormaps() and 'clip_std' in inference.postprocess_modes()\n"
        "assert not heavy('torch', 'captum'), heavy('torch', 'captum')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
