"""One generation task: the maps of one arm for a chunk of images, through the saliency engine.

Every arm goes through exactly this code: the study's post-processing, colormap and rendering
are applied identically, so two arms' files differ only in what the maps show. Map files get
random names (never derived from the arm), the raw map is kept at model resolution (float16)
and the heatmap is rendered at the display image's resolution. Images that already have a map
for this arm and target are skipped, which is what makes a killed job resume cheaply.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Invalid
from app.models import Arm, Checkpoint, Image, JobTask, SaliencyMap, Study
from app.services.catalog.checkpoints import load_model
from app.services.catalog.images import load_input_array, load_mask_array
from app.storage import Storage


@dataclass(frozen=True)
class TaskResult:
    computed: int  # maps written by this call
    skipped: int  # maps that already existed
    compute_ms: float  # time inside the saliency engine


def _labels_matrix(images: list[Image], class_names: list[str]) -> torch.Tensor:
    rows = [[float((im.labels or {}).get(c, 0)) for c in class_names] for im in images]
    return torch.tensor(rows, dtype=torch.float32)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, dtype=np.float16), allow_pickle=False)
    return buf.getvalue()


def _multilabel(ckpt: Checkpoint) -> bool:
    meta = ckpt.train_meta or {}
    return bool(meta.get("multilabel")) or str(meta.get("loss", "")).lower() == "bce"


@dataclass
class TaskPlan:
    """Everything a task needs, read in one short transaction (no lock held while computing)."""

    arm_id: int
    method: str
    params: dict[str, Any]
    route: str | None
    target: str
    saliency: dict[str, Any]
    checkpoint: Checkpoint
    images: list[Image]
    skipped: int


def plan_task(db: Session, task: JobTask) -> TaskPlan:
    """Read the arm, checkpoint and the images of ``task`` that still lack a map."""
    arm = db.get(Arm, int(task.payload["arm_id"]))
    if arm is None:
        raise Invalid("The arm of this task no longer exists (the study design changed).")
    study = db.get(Study, arm.study_id)
    ckpt = db.get(Checkpoint, arm.checkpoint_id)
    assert study is not None and ckpt is not None
    sal: dict[str, Any] = dict(study.saliency or {})
    target = str(sal.get("target", "predicted"))
    wanted = [int(i) for i in task.payload["image_ids"]]
    done = set(
        db.scalars(
            select(SaliencyMap.image_id).where(
                SaliencyMap.arm_id == arm.id,
                SaliencyMap.target == target,
                SaliencyMap.image_id.in_(wanted),
            )
        )
    )
    todo = [i for i in wanted if i not in done]
    by_id = {im.id: im for im in db.scalars(select(Image).where(Image.id.in_(todo)))}
    return TaskPlan(
        arm_id=arm.id,
        method=arm.method,
        params=dict(arm.params or {}),
        route=arm.bn_route,
        target=target,
        saliency=sal,
        checkpoint=ckpt,
        images=[by_id[i] for i in todo],
        skipped=len(wanted) - len(todo),
    )


def compute_maps(settings: Settings, plan: TaskPlan) -> tuple[list[SaliencyMap], float]:
    """Run the saliency engine and write the map files; returns unsaved rows and engine ms."""
    from ml.data import prepare_input
    from ml.device import resolve_device
    from ml.explain import (
        compute_saliency,
        postprocess,
        provenance,
        render_heatmap_png,
    )

    images, ckpt, sal = plan.images, plan.checkpoint, plan.saliency
    if not images:
        return [], 0.0
    prepared = [
        prepare_input(load_input_array(settings, im), ckpt.image_size, ckpt.in_channels)
        for im in images
    ]
    inputs = torch.stack([t for t, _ in prepared])
    boxes = [b for _, b in prepared]
    names = list(ckpt.class_names)
    device = resolve_device(settings.device)
    result = compute_saliency(
        load_model(settings, ckpt),
        inputs,
        method=plan.method,
        target=plan.target,
        labels=_labels_matrix(images, names) if plan.target == "ground_truth" else None,
        class_names=names,
        route=plan.route,
        params=plan.params,
        device=device,
        max_batch=settings.batch_size,
        multilabel=_multilabel(ckpt),
    )
    pp_mode = str(sal.get("postprocess", "clip_std"))
    pp_params = dict(sal.get("postprocess_params") or {})
    maps01 = postprocess(result.maps, pp_mode, **pp_params)
    metrics = _metrics(settings, images, ckpt, maps01)
    colormap = str(sal.get("colormap", "jet"))
    per_map_ms = result.compute_ms / len(images)
    store = Storage(settings.data_dir)
    rows: list[SaliencyMap] = []
    for i, im in enumerate(images):
        heat = render_heatmap_png(
            boxes[i].to_original(maps01[i]), size=(im.height, im.width), colormap=colormap
        )
        probs = result.probs[i].tolist()
        rows.append(
            SaliencyMap(
                arm_id=plan.arm_id,
                image_id=im.id,
                target=plan.target,
                raw_path=store.put_random("maps", _npy(result.maps[i].numpy()), ".npy", sync=False),
                overlay_path=store.put_random("maps", heat, ".png", sync=False),
                prediction={
                    "probs": {names[k]: round(float(p), 6) for k, p in enumerate(probs)},
                    "predicted": names[int(np.argmax(probs))],
                    "target_classes": [names[k] for k in result.targets[i]],
                    "target_source": (
                        result.target_sources[i] if result.target_sources else plan.target
                    ),
                },
                metrics=metrics[i],
                provenance=provenance(
                    checkpoint_sha256=ckpt.sha256,
                    route=plan.route,
                    method=plan.method,
                    params=result.params,
                    target=plan.target,
                    compute_ms=per_map_ms,
                    device=device,
                    postprocess={"mode": pp_mode, **pp_params, "colormap": colormap},
                ),
                compute_ms=per_map_ms,
            )
        )
    store.sync()  # one flush for the batch: a stored row always points at a durable file
    return rows, result.compute_ms


def store_maps(db: Session, rows: list[SaliencyMap]) -> int:
    """Add computed rows, skipping any a concurrent worker stored meanwhile."""
    if not rows:
        return 0
    existing = set(
        db.scalars(
            select(SaliencyMap.image_id).where(
                SaliencyMap.arm_id == rows[0].arm_id,
                SaliencyMap.target == rows[0].target,
                SaliencyMap.image_id.in_([r.image_id for r in rows]),
            )
        )
    )
    fresh = [r for r in rows if r.image_id not in existing]
    db.add_all(fresh)
    db.flush()
    return len(fresh)


def run_generation_task(db: Session, settings: Settings, task: JobTask) -> TaskResult:
    """Plan, compute and store in one session (used when holding a transaction is fine)."""
    plan = plan_task(db, task)
    rows, ms = compute_maps(settings, plan)
    return TaskResult(store_maps(db, rows), plan.skipped, ms)


def _metrics(
    settings: Settings, images: list[Image], ckpt: Checkpoint, maps01: torch.Tensor
) -> list[dict[str, Any]]:
    """Map metrics; mask energy and pointing game for the images that have a ground-truth
    mask (letterboxed exactly like the model input, so it lines up with the map)."""
    from ml.data import prepare_input
    from ml.explain import map_metrics

    metrics = map_metrics(maps01)
    masked = [i for i, im in enumerate(images) if im.mask_path]
    if masked:
        masks = []
        for i in masked:
            mask = load_mask_array(settings, images[i])
            assert mask is not None
            t, _ = prepare_input(mask, ckpt.image_size, 1)
            masks.append((t[0] > 0.5).float())
        for i, row in zip(masked, map_metrics(maps01[masked], torch.stack(masks)), strict=True):
            metrics[i] = row
    return metrics
