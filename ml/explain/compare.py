"""Compare checkpoints' saliency maps on one data set: the engine behind ``radsal saliency``.

Every arm (checkpoint + BN route) goes through :func:`ml.explain.pipeline.explain_batch` —
the same compute → post-process → render → metrics → provenance pipeline as a study's
generation job, so a map here is byte-for-byte the map raters would see. On top of it this
module adds what only an ML engineer needs: faithfulness curves, the randomisation check,
overlays and a contact sheet. Outputs under ``out_dir``:

* ``<arm>/fields/<case>.npy`` (the map field raters are served, see ``ml.explain.field``),
  ``<arm>/heatmaps/<case>.png`` (RGBA, alpha = map, rendered from the field at display size),
  ``<arm>/overlays/<case>.png``, ``<arm>/raw/<case>.npy`` (float16, model-input resolution),
  ``<arm>/provenance.json``;
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
from ml.explain.field import render_field_png
from ml.explain.metrics import deletion_auc, insertion_auc
from ml.explain.pipeline import MapSettings, explain_batch
from ml.explain.provenance import jsonable, provenance
from ml.explain.render import render_overlay_png
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

    def map_settings(self) -> MapSettings:
        """The settings of the shared pipeline (what a study would fix for all arms)."""
        return MapSettings(
            method=self.method,
            params=self.params,
            target=self.target,
            postprocess=self.postprocess,
            postprocess_params=self.postprocess_params,
            colormap=self.colormap,
        )


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
    settings = config.map_settings()
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
        params: dict[str, Any] = {}
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
            explained = explain_batch(
                arm.model,
                batch,
                settings,
                class_names=names,
                checkpoint_sha256=arm.sha256,
                display_sizes=[(c.display.shape[0], c.display.shape[1]) for c in chunk],
                route=arm.route,
                labels=labels,
                device=config.device,
                max_batch=config.batch_size,
                multilabel=cases.multilabel,
            )
            compute_ms += explained.compute_ms
            params = explained.params
            faith: dict[str, torch.Tensor] = {}
            if config.faithfulness_steps > 0:
                kw: dict[str, Any] = {
                    "steps": config.faithfulness_steps,
                    "route": arm.route,
                    "multilabel": cases.multilabel,
                    "max_batch": config.batch_size * 4,
                }
                x, raw, tg = batch.inputs, explained.raw, explained.targets
                faith["deletion_auc"] = deletion_auc(arm.model, x, raw, tg, **kw)
                faith["insertion_auc"] = insertion_auc(arm.model, x, raw, tg, **kw)
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
            (arm_dir / "heatmaps").mkdir(parents=True, exist_ok=True)
            (arm_dir / "overlays").mkdir(parents=True, exist_ok=True)
            (arm_dir / "raw").mkdir(parents=True, exist_ok=True)
            (arm_dir / "fields").mkdir(parents=True, exist_ok=True)
            for i, case in enumerate(chunk):
                m = explained.maps[i]
                shown = (int(case.display.shape[0]), int(case.display.shape[1]))
                (arm_dir / "heatmaps" / f"{case.case_id}.png").write_bytes(
                    render_field_png(m.field, size=shown, colormap=config.colormap)
                )
                (arm_dir / "overlays" / f"{case.case_id}.png").write_bytes(
                    render_overlay_png(
                        case.display,
                        m.map01(shown),
                        colormap=config.colormap,
                        opacity=config.opacity,
                    )
                )
                (arm_dir / "fields" / f"{case.case_id}.npy").write_bytes(m.field_npy)
                (arm_dir / "raw" / f"{case.case_id}.npy").write_bytes(m.raw_npy)
                pred = m.predicted
                row: dict[str, Any] = {
                    "case_id": case.case_id,
                    "arm": arm.label,
                    "checkpoint_sha256": arm.sha256,
                    "route": arm.route or "clean",
                    "method": config.method,
                    "target": m.target_name,
                    "target_source": m.target_source,
                    "label": "+".join(
                        n for n, v in zip(cases.class_names, case.label, strict=True) if v > 0.5
                    ),
                    "pred": names[pred],
                    "prob_target": float(explained.probs[i, m.targets].mean()),
                    "correct": None,
                    **m.metrics,
                }
                if not cases.multilabel and labels is not None:
                    row["correct"] = float(labels[i, pred] > 0.5)
                for key, vals in faith.items():
                    row[key] = float(vals[i])
                arm_rows.append(row)
                if lo + i < n_sheet:
                    sheet_maps.setdefault(arm.label, []).append(m.map01(shown))
                    g, me = m.metrics["gini"], m.metrics["mask_energy"]
                    cap = f"{names[pred]} {m.probs[pred]:.2f} · G {g:.2f}"
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
            params=params,
            target=config.target,
            compute_ms=compute_ms,
            device=config.device,
            postprocess=settings.postprocess_record(),
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
