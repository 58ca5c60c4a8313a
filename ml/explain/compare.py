"""Compare checkpoints' saliency maps on one data set: the engine behind ``radsal saliency``.

Every arm (checkpoint + BN route) goes through the same steps — compute, post-process, render,
measure — so the outputs differ only where the models differ. Outputs under ``out_dir``:

* ``<arm>/heatmaps/<case>.png`` (RGBA, alpha = map), ``<arm>/overlays/<case>.png``,
  ``<arm>/raw/<case>.npy`` (float16, model-input resolution), ``<arm>/provenance.json``;
* ``metrics.csv`` / ``metrics.json``: one row per case × arm; ``summary.csv``: means per arm;
* ``contact_sheet.png``: image | map per arm, for the first cases (masks outlined).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ml.explain.cases import CaseSet, model_batch
from ml.explain.contact_sheet import SheetRow, make_contact_sheet
from ml.explain.engine import compute_saliency
from ml.explain.metrics import deletion_auc, insertion_auc, map_metrics
from ml.explain.postprocess import postprocess
from ml.explain.provenance import jsonable, provenance
from ml.explain.render import render_heatmaps_png, render_overlay_png, save_raw_map
from ml.explain.sanity import randomization_check

__all__ = ["SUMMARY_METRICS", "Arm", "CompareConfig", "run_comparison"]

SUMMARY_METRICS = (
    "accuracy",
    "gini",
    "entropy",
    "tv",
    "mask_energy",
    "mask_area",
    "pointing",
    "deletion_auc",
    "insertion_auc",
)


@dataclass
class Arm:
    """One condition: a loaded model, its metadata and the BN route to explain through."""

    label: str
    model: torch.nn.Module
    meta: Mapping[str, Any]
    sha256: str
    route: str | None = None


@dataclass
class CompareConfig:
    method: str = "gradient"
    params: dict[str, Any] = field(default_factory=dict)
    target: str = "predicted"
    postprocess: str = "clip_std"
    postprocess_params: dict[str, Any] = field(default_factory=dict)
    colormap: str = "jet"
    opacity: float = 0.5
    batch_size: int = 32
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    faithfulness_steps: int = 16  # 0 disables deletion/insertion AUC
    sanity_cases: int = 8  # 0 disables the randomisation check
    sheet_rows: int = 6
    progress: bool = True


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else None


def run_comparison(
    arms: Sequence[Arm], cases: CaseSet, out_dir: str | Path, config: CompareConfig
) -> dict[str, Any]:
    """Compute, render and measure maps for every arm; return ``{"summary", "rows"}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not cases.cases:
        raise ValueError("no cases to explain (empty split or --limit 0)")
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    sheet_maps: dict[str, list[np.ndarray]] = {}
    sheet_caps: dict[str, list[str]] = {}
    n_sheet = min(config.sheet_rows, len(cases.cases))
    for arm in arms:
        meta = arm.meta
        size, channels = int(meta["image_size"]), int(meta["in_channels"])
        names = list(meta["class_names"])
        labels_all = cases.labels_for(names)
        if config.target == "ground_truth" and labels_all is None:
            raise ValueError(
                f"{arm.label}: target 'ground_truth' but the model's classes {names} do not "
                f"match the data set's {cases.class_names}"
            )
        arm_dir = out / arm.label
        arm_rows: list[dict[str, Any]] = []
        compute_ms = 0.0
        wall = time.perf_counter()
        sanity: list[float] = []
        bar = tqdm(
            total=len(cases.cases),
            desc=f"saliency {arm.label}",
            unit="map",
            disable=not config.progress,
            leave=False,
        )
        for lo in range(0, len(cases.cases), config.batch_size):
            chunk = cases.cases[lo : lo + config.batch_size]
            batch = model_batch(chunk, size, channels)
            labels = labels_all[lo : lo + len(chunk)] if labels_all is not None else None
            res = compute_saliency(
                arm.model,
                batch.inputs,
                method=config.method,
                target=config.target,
                labels=labels,
                class_names=names,
                route=arm.route,
                params=config.params,
                device=config.device,
                max_batch=config.batch_size,
                multilabel=cases.multilabel,
            )
            compute_ms += res.compute_ms
            maps01 = postprocess(res.maps, config.postprocess, **config.postprocess_params)
            metrics = map_metrics(maps01, batch.masks, raw_maps=res.maps)
            faith: dict[str, torch.Tensor] = {}
            if config.faithfulness_steps > 0:
                kw: dict[str, Any] = {
                    "steps": config.faithfulness_steps,
                    "route": arm.route,
                    "multilabel": cases.multilabel,
                    "max_batch": config.batch_size * 4,
                }
                x = batch.inputs
                faith["deletion_auc"] = deletion_auc(arm.model, x, res.maps, res.targets, **kw)
                faith["insertion_auc"] = insertion_auc(arm.model, x, res.maps, res.targets, **kw)
            if config.sanity_cases > len(sanity):
                take = min(config.sanity_cases - len(sanity), len(chunk))
                check = randomization_check(
                    arm.model,
                    batch.inputs[:take],
                    method=config.method,
                    target=config.target,
                    labels=labels[:take] if labels is not None else None,
                    class_names=names,
                    route=arm.route,
                    params=config.params,
                    max_batch=config.batch_size,
                )
                sanity.extend(check["spearman"])
            # Back onto each case's own display geometry, then encode the batch in parallel.
            originals = [
                np.clip(box.to_original(m), 0.0, 1.0)
                for box, m in zip(batch.boxes, maps01, strict=True)
            ]
            heatmaps = render_heatmaps_png(originals, colormap=config.colormap)
            (arm_dir / "heatmaps").mkdir(parents=True, exist_ok=True)
            (arm_dir / "overlays").mkdir(parents=True, exist_ok=True)
            for i, case in enumerate(chunk):
                map_orig = originals[i]
                (arm_dir / "heatmaps" / f"{case.case_id}.png").write_bytes(heatmaps[i])
                (arm_dir / "overlays" / f"{case.case_id}.png").write_bytes(
                    render_overlay_png(
                        case.display, map_orig, colormap=config.colormap, opacity=config.opacity
                    )
                )
                save_raw_map(arm_dir / "raw" / f"{case.case_id}.npy", res.maps[i])
                pred = int(res.probs[i].argmax())
                tgt = res.targets[i]
                row: dict[str, Any] = {
                    "case_id": case.case_id,
                    "arm": arm.label,
                    "checkpoint_sha256": arm.sha256,
                    "route": arm.route or "clean",
                    "method": config.method,
                    "target": res.target_names[i],
                    "target_source": res.target_sources[i],
                    "label": "+".join(
                        n for n, v in zip(cases.class_names, case.label, strict=True) if v > 0.5
                    ),
                    "pred": names[pred],
                    "prob_target": float(res.probs[i, tgt].mean()),
                    "correct": None,
                    **metrics[i],
                }
                if not cases.multilabel and labels is not None:
                    row["correct"] = float(labels[i, pred] > 0.5)
                for key, vals in faith.items():
                    row[key] = float(vals[i])
                arm_rows.append(row)
                if lo + i < n_sheet:
                    sheet_maps.setdefault(arm.label, []).append(map_orig)
                    g, me = metrics[i]["gini"], metrics[i]["mask_energy"]
                    cap = f"{names[pred]} {float(res.probs[i, pred]):.2f} · G {g:.2f}"
                    sheet_caps.setdefault(arm.label, []).append(
                        cap + (f" · in-mask {me:.2f}" if me is not None else "")
                    )
            bar.update(len(chunk))
        bar.close()
        wall_s = time.perf_counter() - wall
        prov = provenance(
            checkpoint_sha256=arm.sha256,
            route=arm.route,
            method=config.method,
            params=res.params,
            target=config.target,
            compute_ms=compute_ms,
            device=config.device,
            postprocess={"mode": config.postprocess, **config.postprocess_params},
        )
        (arm_dir / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")
        entry: dict[str, Any] = {
            "arm": arm.label,
            "n": len(arm_rows),
            "route": arm.route or "clean",
        }
        entry["accuracy"] = _mean([r["correct"] for r in arm_rows])
        for key in SUMMARY_METRICS[1:]:
            entry[key] = _mean([r.get(key) for r in arm_rows])
        entry["randomization_spearman"] = _mean(sanity)
        entry["compute_ms_per_map"] = compute_ms / len(arm_rows)
        entry["maps_per_s_end_to_end"] = len(arm_rows) / wall_s
        summary.append(entry)
        rows.extend(arm_rows)

    _write_csv(out / "metrics.csv", rows)
    _write_csv(out / "summary.csv", summary)
    report = {
        "method": config.method,
        "params": jsonable(config.params),
        "target": config.target,
        "postprocess": {"mode": config.postprocess, **config.postprocess_params},
        "split_root": str(cases.root),
        "summary": summary,
        "rows": rows,
    }
    (out / "metrics.json").write_text(json.dumps(jsonable(report), indent=2) + "\n")
    sheet = [
        SheetRow(
            display=cases.cases[i].display,
            maps=[sheet_maps[a.label][i] for a in arms],
            title=cases.cases[i].case_id[-28:],
            captions=[sheet_caps[a.label][i] for a in arms],
            mask=cases.cases[i].mask,
        )
        for i in range(n_sheet)
    ]
    make_contact_sheet(
        sheet,
        [a.label for a in arms],
        out / "contact_sheet.png",
        colormap=config.colormap,
        opacity=config.opacity,
        suptitle=f"{config.method} · target {config.target} · {config.postprocess}",
    )
    return report


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
