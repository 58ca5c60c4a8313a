"""One generation task: the maps of one arm for a chunk of images, through the saliency pipeline.

Every arm goes through exactly this code and, via ``app.services.inference``, through the same
``ml.explain`` pipeline as ``radsal saliency``: the study's post-processing, colormap and
rendering are applied identically, so two arms' files differ only in what the maps show (and a
map equals the CLI's, byte for byte, for the same checkpoint and image). Map files get
random names (never derived from the arm), the raw map is kept at model resolution (float16)
and the map field (uint8, one fixed size for every map: ``ml.explain.field``) is what every
viewer colours, the rater's and the staff preview's alike; no PNG is stored (one is rendered
from the field on demand where wanted, ``inference.field_png``). Images that already have a
map for this arm and target are skipped, which is what makes a killed job resume cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Invalid
from app.models import Arm, Checkpoint, Image, JobTask, SaliencyMap, Study
from app.services import inference
from app.services.catalog.checkpoints import load_model
from app.services.catalog.images import load_input_array, load_mask_array
from app.services.maps.catch import randomisation_seed, variant_target
from app.services.maps.queries import stored_maps
from app.services.study.spec import saliency_settings
from app.storage import Storage


def _labels_rows(images: list[Image], class_names: list[str]) -> list[list[float]]:
    return [[float((im.labels or {}).get(c, 0)) for c in class_names] for im in images]


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
    # Catch-trial maps (app.services.maps.catch): None for the arm's own maps, "randomised"
    # for its randomised-weights copy, stored under `store_target`, explained per image for
    # `explain_targets` (the class the real map explained, so both maps answer one question).
    variant: str | None = None
    store_target: str = ""
    explain_targets: list[str] | None = None


def plan_task(db: Session, task: JobTask) -> TaskPlan:
    """Read the arm, checkpoint and the images of ``task`` that still lack a map."""
    arm = db.get(Arm, int(task.payload["arm_id"]))
    if arm is None:
        raise Invalid("The arm of this task no longer exists (the study design changed).")
    study = db.get(Study, arm.study_id)
    ckpt = db.get(Checkpoint, arm.checkpoint_id)
    assert study is not None and ckpt is not None
    sal: dict[str, Any] = dict(study.saliency or {})
    target = saliency_settings(sal).target
    variant = task.payload.get("variant") or None
    store_target = variant_target(target, variant)
    wanted = [int(i) for i in task.payload["image_ids"]]
    done = {i for _, i in stored_maps(db, arm_ids=[arm.id], target=store_target, image_ids=wanted)}
    todo = [i for i in wanted if i not in done]
    by_id = {im.id: im for im in db.scalars(select(Image).where(Image.id.in_(todo)))}
    explain_targets = None
    if variant is not None:
        real = {
            m.image_id: m
            for m in db.scalars(
                select(SaliencyMap).where(
                    SaliencyMap.arm_id == arm.id,
                    SaliencyMap.target == target,
                    SaliencyMap.image_id.in_(todo),
                )
            )
        }
        explain_targets = [_same_question(real.get(i), target) for i in todo]
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
        variant=variant,
        store_target=store_target,
        explain_targets=explain_targets,
    )


def _same_question(real: SaliencyMap | None, target: str) -> str:
    """The target a randomised map explains: the real map's class when there is one (the
    sanity check compares the two models on the same class), else the study's policy."""
    classes = (real.prediction or {}).get("target_classes") if real is not None else None
    return f"class:{classes[0]}" if classes else target


def compute_maps(settings: Settings, plan: TaskPlan) -> tuple[list[SaliencyMap], float]:
    """Run the saliency pipeline and write the map files; returns unsaved rows and engine ms.

    A randomised-variant task explains with a randomised copy of the checkpoint, one batch per
    explained class; everything else (pipeline, rendering, files) is the same code.
    """
    if plan.variant is None or not plan.images:
        return _compute(settings, plan, plan.images, plan.target, None)
    model = inference.randomised_copy(
        load_model(settings, plan.checkpoint), seed=randomisation_seed(plan.checkpoint.sha256)
    )
    targets = plan.explain_targets or [plan.target] * len(plan.images)
    rows: list[SaliencyMap] = []
    total_ms = 0.0
    for explain in dict.fromkeys(targets):
        group = [im for im, t in zip(plan.images, targets, strict=True) if t == explain]
        part, ms = _compute(settings, plan, group, explain, model)
        rows += part
        total_ms += ms
    return rows, total_ms


def _compute(
    settings: Settings,
    plan: TaskPlan,
    images: list[Image],
    target: str,
    model: Any | None,
) -> tuple[list[SaliencyMap], float]:
    ckpt, sal = plan.checkpoint, saliency_settings(plan.saliency)
    if not images:
        return [], 0.0
    names = list(ckpt.class_names)
    colormap = sal.colormap
    results = inference.explain_images(
        model if model is not None else load_model(settings, ckpt),
        arrays=[load_input_array(settings, im) for im in images],
        masks=[load_mask_array(settings, im) for im in images],
        display_sizes=[(im.height, im.width) for im in images],
        image_size=ckpt.image_size,
        in_channels=ckpt.in_channels,
        class_names=names,
        checkpoint_sha256=ckpt.sha256,
        method=plan.method,
        params=plan.params,
        target=target,
        postprocess=sal.postprocess,
        postprocess_params=dict(sal.postprocess_params),
        colormap=colormap,
        route=plan.route,
        labels=_labels_rows(images, names) if target == "ground_truth" else None,
        device=settings.device,
        max_batch=settings.batch_size,
        multilabel=_multilabel(ckpt),
    )
    store = Storage(settings.data_dir)
    rows: list[SaliencyMap] = []
    for im, res in zip(images, results, strict=True):
        rows.append(
            SaliencyMap(
                arm_id=plan.arm_id,
                image_id=im.id,
                target=plan.store_target or plan.target,
                raw_path=store.put_random("maps", res.raw_npy, ".npy", sync=False),
                field_path=store.put_random("maps", res.field_npy, ".npy", sync=False),
                prediction={
                    "probs": {names[k]: round(p, 6) for k, p in enumerate(res.probs)},
                    "predicted": names[res.predicted],
                    "target_classes": [names[k] for k in res.targets],
                    "target_source": res.target_source,
                },
                metrics=res.metrics,
                provenance=(
                    {**res.provenance, "variant": plan.variant, "explained": target}
                    if plan.variant
                    else res.provenance
                ),
                compute_ms=res.compute_ms,
            )
        )
    store.sync()  # one flush for the batch: a stored row always points at a durable file
    return rows, sum(r.compute_ms for r in results)


def store_maps(db: Session, rows: list[SaliencyMap]) -> int:
    """Add computed rows, skipping any a concurrent worker stored meanwhile."""
    if not rows:
        return 0
    stored = stored_maps(
        db,
        arm_ids=[rows[0].arm_id],
        target=rows[0].target,
        image_ids=[r.image_id for r in rows],
    )
    existing = {i for _, i in stored}
    fresh = [r for r in rows if r.image_id not in existing]
    db.add_all(fresh)
    db.flush()
    return len(fresh)
