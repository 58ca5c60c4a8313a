"""`build_demo`: a complete, rateable study from nothing, step by step, resumably.

A newcomer runs one command and ends up rating a real study in the browser. Every step uses
the production code paths (ml training and evaluation, checkpoint and image ingest, the study
designer, the saliency worker), so the demo is also an end-to-end smoke test of the product.
Each step records its inputs and outputs in the manifest (``app.demo.manifest``); a re-run
reuses what is unchanged, so an interrupted demo resumes and a finished one starts serving
within seconds.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, TextIO

import torch

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.demo import study as demo_study
from app.demo.accounts import ensure_accounts
from app.demo.data import prepare_dataset
from app.demo.manifest import Steps, demo_dir, load_manifest, now_iso, save_manifest
from app.demo.models import evaluate_models, train_config, train_model, training_key
from app.demo.options import DemoError, DemoOptions
from app.demo.progress import StepLog, count_bar
from app.demo.summary import DemoResult
from app.migrate import upgrade_database
from ml.device import resolve_device

STEP_COUNT = 10
# (arm, training mode, what the step title calls it; {attack} is the PGD in words)
ARMS = (
    ("standard", "standard", "standard model (clean images)"),
    ("dual", "dual", "dual-BN model (clean + adversarial images, {attack})"),
)


def build_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    base_url: str,
    out: TextIO | None = None,
) -> DemoResult:
    """Build (or resume) the demo study on `settings`' database and data directory."""
    try:
        device = str(resolve_device(settings.device))
    except ValueError as exc:  # RADSAL_DEVICE=cuda on a machine without CUDA
        raise DemoError(str(exc)) from None
    torch.set_num_threads(options.threads)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(settings)
    log = StepLog(STEP_COUNT, out or sys.stderr)
    steps = Steps(settings, manifest, log)
    work = demo_dir(settings)

    dataset = steps.run(
        "dataset",
        _dataset_title(options),
        _dataset_key(options),
        lambda: prepare_dataset(
            work / "dataset",
            source=options.data,
            n_train=options.n_train,
            n_test=max(options.n_images, options.n_train // 5),
            image_size=options.image_size,
            seed=options.seed,
            modality=options.modality,
        ),
        lambda r: Path(r["csv"]).is_file(),
    )
    trained: dict[str, dict[str, Any]] = {}
    for arm, mode, label in ARMS:
        config = train_config(
            options, data=str(dataset["csv"]), out=work / "runs" / arm, mode=mode, device=device
        )
        trained[arm] = steps.run(
            f"train_{arm}",
            f"Training the {label.format(attack=options.attack)}: {options.arch}, "
            f"{options.image_size} px, {options.epochs} epoch(s) on {device}",
            training_key(config, dataset["fingerprint"]),
            functools.partial(train_model, config, progress=options.progress),
            lambda r: Path(r["checkpoint"]).is_file(),
        )
    evaluation = steps.run(
        "evaluate",
        f"Evaluating both models: validation AUROC clean and under attack ({options.attack})",
        {
            "standard": trained["standard"]["sha256"],
            "dual": trained["dual"]["sha256"],
            "eps": options.attack_eps,
            "steps": options.attack_steps,
        },
        lambda: evaluate_models(options, dataset, trained, work / "eval", device),
        lambda r: True,
    )

    engine = make_engine(settings.resolved_database_url())
    try:
        with log.step("database", "Preparing the database (migrations)"):
            upgrade_database(engine)
        factory = make_sessionmaker(engine)
        with log.step("accounts", "Creating the admin, researcher and rater accounts"):
            saved = manifest.setdefault("passwords", {})
            logins = ensure_accounts(factory, settings, saved, options.raters, base_url)
            save_manifest(settings, manifest)
        ckpts = steps.run(
            "checkpoints",
            "Importing both checkpoints into the app (verified, weights only)",
            {"standard": trained["standard"]["sha256"], "dual": trained["dual"]["sha256"]},
            lambda: demo_study.import_checkpoints(factory, settings, trained),
            lambda r: demo_study.checkpoints_exist(factory, r["ids"].values()),
        )
        images = steps.run(
            "images",
            f"Importing {options.n_images} study images",
            {"data": dataset["fingerprint"], "n": options.n_images, "seed": options.seed},
            lambda: demo_study.import_images(factory, settings, dataset, options),
            lambda r: demo_study.images_exist(factory, r["ids"]),
        )
        study = steps.run(
            "study",
            f"Creating the study: {len(images['ids'])} cases x {options.raters} raters, "
            "standard vs dual-BN gradient maps",
            {"ckpts": ckpts["ids"], "images": images["ids"], "raters": options.raters},
            lambda: demo_study.create_demo_study(factory, ckpts, images, dataset, options),
            lambda r: demo_study.study_exists(factory, int(r["id"])),
        )
        with log.step("maps", "Generating the saliency maps and opening the study"):
            with count_bar("maps", "map", enabled=options.progress) as report:
                maps = demo_study.generate_and_open(
                    factory, settings, int(study["id"]), progress=report
                )
            log.say(f"      {maps['maps']} maps ({maps['computed']} computed now)")
    finally:
        engine.dispose()

    manifest["last_run"] = {"timings": log.timings, "reused": log.reused, "at": now_iso()}
    save_manifest(settings, manifest)
    return DemoResult(
        study_id=int(study["id"]),
        study_name=str(study["name"]),
        base_url=base_url,
        logins=logins,
        evaluation=evaluation,
        timings=dict(log.timings),
        reused=list(log.reused),
        attribution=str(dataset.get("attribution", "")),
    )


def _dataset_title(options: DemoOptions) -> str:
    if options.data is None:
        kind = {"xray": "", "ct": "CT DICOM ", "mr": "MR DICOM "}[options.modality]
        return (
            f"Generating the synthetic {kind}lesion data set ({options.n_train} training "
            f"images, {options.image_size} px, with lesion masks)"
        )
    return f"Preparing your data set from {options.data}"


def _dataset_key(options: DemoOptions) -> dict[str, Any]:
    if options.data is None:
        return {
            "source": "synthetic",
            **({"modality": options.modality} if options.modality != "xray" else {}),
            "n_train": options.n_train,
            "n_images": options.n_images,
            "image_size": options.image_size,
            "seed": options.seed,
        }
    src = options.data.resolve()
    return {"source": str(src), "mtime": src.stat().st_mtime_ns, "seed": options.seed}
