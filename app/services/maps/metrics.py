"""A study's map metrics with statistics: what the study page's map-metrics panel shows.

Every stored map carries its per-case metrics (Gini, entropy, TV and, where the image has a
ground-truth mask, mask energy, pointing and mask area: ``ml.explain.metrics``). A mean over a
few dozen cases is a noisy number, and maps that follow the lungs rather than the lesion score
well above the mask area against *any* patient's box, so the panel reports what
``radsal saliency`` reports, computed by the same ``ml`` code through the bridge:

* per metric and arm, the mean with a case-bootstrap 95 % CI;
* per pair of arms, the paired difference (``b − a``) with its CI and the Wilcoxon p;
* the shuffled-mask null baseline of every arm (its stored maps scored against another case's
  mask), paired against the arm;
* the re-initialised model's maps that randomised catch trials already stored, as an untrained
  null for the images they cover;
* degenerate maps (constant or all-zero) counted and excluded, with a note.

The randomised-weights and untrained-model baselines over *all* images need a second saliency
pass per arm; the app does not run one for a page view, and the notes point at the CLI.
Nothing here raises for a study without maps, masks or a second arm: the summary says why a
number is missing instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Arm, Checkpoint, Image, SaliencyMap, Study
from app.services import inference
from app.services.catalog.images import load_mask_array
from app.services.maps.catch import RANDOMISED, variant_target
from app.services.study.spec import saliency_settings
from app.storage import Storage

N_BOOTSTRAP = 2000
SHUFFLED = "shuffled masks"
PAIRS_READ_AS = "mean_diff = b − a over the cases both arms have"
MODEL_NULLS_NOTE = (
    "Randomised-weights and untrained-model baselines over all images need a second saliency "
    "pass: run radsal saliency (or radsal experiment) on the same checkpoints and images."
)


def arm_names(arms: list[Arm]) -> dict[int, str]:
    """arm id → the name the panel shows: its label, made unique by its position if needed."""
    labels = [a.label.strip() or f"Arm {a.position + 1}" for a in arms]
    return {
        a.id: name if labels.count(name) == 1 else f"{a.position + 1}. {name}"
        for a, name in zip(arms, labels, strict=True)
    }


def _empty(study: Study, target: str, expected: int, notes: list[str]) -> dict[str, Any]:
    return {
        "study_id": study.id,
        "available": False,
        "target": target,
        "maps": 0,
        "maps_expected": expected,
        "metrics": [],
        "n_bootstrap": N_BOOTSTRAP,
        "ci_level": 0.95,
        "arms": [],
        "paired": [],
        "mask_area_mean": None,
        "pairs_read_as": PAIRS_READ_AS,
        "notes": notes,
    }


def _maps_by_arm(db: Session, arm_ids: list[int], target: str) -> dict[int, list[SaliencyMap]]:
    out: dict[int, list[SaliencyMap]] = {a: [] for a in arm_ids}
    if not arm_ids:
        return out
    stmt = (
        select(SaliencyMap)
        .where(SaliencyMap.arm_id.in_(arm_ids), SaliencyMap.target == target)
        .order_by(SaliencyMap.arm_id, SaliencyMap.image_id)
    )
    for m in db.scalars(stmt):
        out[m.arm_id].append(m)
    return out


def _load_raw(store: Storage, path: str) -> np.ndarray | None:
    """A stored raw map, or None when its file is missing or unreadable (noted, not a 500)."""
    try:
        return np.asarray(np.load(store.path(path), allow_pickle=False))
    except (OSError, ValueError):
        return None


def _rows(
    maps: list[SaliencyMap], name: str, raws: dict[int, np.ndarray | None]
) -> list[dict[str, Any]]:
    """compare_arms rows (one per case) from stored metrics, degenerate from the raw map (a map
    whose raw file is unreadable keeps its stored metrics; the summary notes how many)."""
    return [
        {
            **(m.metrics or {}),
            "case_id": str(m.image_id),
            "arm": name,
            "degenerate": (raw := raws[m.id]) is not None and inference.map_is_degenerate(raw),
        }
        for m in maps
    ]


def _shuffled_rows(
    settings: Settings,
    db: Session,
    maps: list[SaliencyMap],
    raws: dict[int, np.ndarray | None],
    name: str,
    image_size: int,
    study: Study,
) -> list[dict[str, Any]]:
    """The arm's maps scored against another case's mask (cases whose own mask scored and
    whose raw map is at the model's input size)."""
    masked = [
        m
        for m in maps
        if (m.metrics or {}).get("mask_energy") is not None
        and (raw := raws[m.id]) is not None
        and raw.shape == (image_size, image_size)
    ]
    if len(masked) < 2:
        return []
    images = {
        im.id: im
        for im in db.scalars(select(Image).where(Image.id.in_([m.image_id for m in masked])))
    }
    pairs: list[tuple[SaliencyMap, np.ndarray, np.ndarray]] = []
    for m in masked:
        mask = load_mask_array(settings, images[m.image_id])
        raw = raws[m.id]
        if mask is not None and raw is not None:
            pairs.append((m, raw, mask))
    if len(pairs) < 2:
        return []
    sal = saliency_settings(study.saliency)
    scores = inference.shuffled_mask_scores(
        [raw for _, raw, _ in pairs],
        [mask for _, _, mask in pairs],
        image_size=image_size,
        postprocess=sal.postprocess,
        postprocess_params=dict(sal.postprocess_params),
        seed=study.seed,
    )
    return [
        {
            "case_id": str(m.image_id),
            "arm": f"{name} · {SHUFFLED}",
            "mask_from": str(pairs[s["mask_from"]][0].image_id),
            "mask_energy": s["mask_energy"],
            "pointing": s["pointing"],
            "degenerate": s["degenerate"],
        }
        for (m, _, _), s in zip(pairs, scores, strict=False)
    ]


def map_metrics_summary(db: Session, settings: Settings, study: Study) -> dict[str, Any]:
    """The statistics of the study's stored maps (see the module docstring); JSON-ready."""
    target = saliency_settings(study.saliency).target
    arms = list(study.arms)
    expected = len(arms) * len(study.images)
    if not arms:
        return _empty(study, target, expected, ["The study has no arms."])
    names = arm_names(arms)
    by_arm = _maps_by_arm(db, [a.id for a in arms], target)
    found = sum(len(v) for v in by_arm.values())
    if found == 0:
        return _empty(study, target, expected, ["No maps yet: generate the study's maps first."])
    catch = _maps_by_arm(db, [a.id for a in arms], variant_target(target, RANDOMISED))
    store = Storage(settings.data_dir)
    raws = {
        m.id: _load_raw(store, m.raw_path)
        for group in (by_arm, catch)
        for maps in group.values()
        for m in maps
    }
    rows: list[dict[str, Any]] = []
    kinds: dict[str, str] = {}
    real: list[str] = []
    shuffled: list[str] = []
    nulls: list[str] = []
    for arm in arms:
        name, maps = names[arm.id], by_arm[arm.id]
        if not maps:
            continue
        real.append(name)
        kinds[name] = "model"
        rows += _rows(maps, name, raws)
        ckpt = db.get(Checkpoint, arm.checkpoint_id)
        size = ckpt.image_size if ckpt is not None else 0
        srows = _shuffled_rows(settings, db, maps, raws, name, size, study)
        if srows:
            shuffled.append(f"{name} · {SHUFFLED}")
            kinds[shuffled[-1]] = "null: shuffled masks"
            rows += srows
        if catch[arm.id]:
            null = f"{name} · re-initialised (catch-trial maps)"
            nulls.append(null)
            kinds[null] = "null: untrained"
            rows += _rows(catch[arm.id], null, raws)
    pairs = [(a, b) for i, a in enumerate(real) for b in real[i + 1 :]]
    for name in real:
        pairs += [(n, name) for n in (*shuffled, *nulls) if n.startswith(f"{name} · ")]
    stats = inference.compare_map_arms(
        rows,
        arms=[*real, *shuffled, *nulls],
        pairs=pairs,
        kinds=kinds,
        n_bootstrap=N_BOOTSTRAP,
        seed=study.seed,
    )
    chance = [
        float(r["mask_area"])
        for r in rows
        if r["arm"] == real[0] and r.get("mask_area") is not None
    ]
    notes = list(stats["notes"])
    if found < expected:
        notes.insert(0, f"{found} of {expected} maps exist so far: statistics use those.")
    unreadable = sum(raw is None for raw in raws.values())
    if unreadable:
        notes.append(
            f"The raw files of {unreadable} map(s) could not be read: their stored metrics "
            "are used without the degenerate-map check."
        )
    if len(real) < 2:
        notes.append("One arm has maps: there is no difference between arms to report.")
    if not chance:
        notes.append(
            "No image of this study has a ground-truth mask: mask energy, pointing and the "
            "shuffled-mask baseline need masks (import images with masks)."
        )
    notes.append(MODEL_NULLS_NOTE)
    return {
        "study_id": study.id,
        "available": True,
        "target": target,
        "maps": found,
        "maps_expected": expected,
        "metrics": list(stats["metrics"]),
        "n_bootstrap": int(stats["n_bootstrap"]),
        "ci_level": float(stats["ci_level"]),
        "arms": stats["arms"],
        "paired": stats["paired"],
        "mask_area_mean": sum(chance) / len(chance) if chance else None,
        "pairs_read_as": PAIRS_READ_AS,
        "notes": notes,
    }
