"""A map comparison with its statistics: real arms, null baselines, CIs and paired tests.

:func:`compare_with_statistics` is what ``radsal saliency`` and ``radsal experiment`` run: the
arms given, plus (``nulls=True``) a randomised-weights copy of the first arm and an untrained
model of each architecture, all through :func:`ml.explain.compare.run_comparison` (the one
map pipeline); then each real arm's shuffled-mask baseline, degenerate maps flagged, and
:func:`ml.evaluation.map_stats.compare_arms` over every pair that answers a question: real arm
vs real arm, and each real arm vs each of its nulls. Writes ``statistics.json`` and
``statistics.csv`` next to the comparison's own files; the null models' maps go to ``nulls/``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ml.evaluation.map_nulls import (
    SHUFFLED,
    mark_degenerate,
    permuted_weights,
    shuffled_mask_rows,
    untrained_copy,
)
from ml.evaluation.map_stats import compare_arms
from ml.explain.cases import CaseSet
from ml.explain.compare import Arm, CompareConfig, run_comparison
from ml.explain.provenance import jsonable

__all__ = [
    "NULL_RANDOM",
    "NULL_UNTRAINED",
    "compare_with_statistics",
    "null_arms",
    "wrong_class_notes",
]

NULL_RANDOM = "null-random-weights"
NULL_UNTRAINED = "null-untrained"


def null_arms(arms: Sequence[Arm], seed: int = 0) -> list[Arm]:
    """A randomised-weights copy of the first arm, and one untrained model per architecture."""
    if not arms:
        return []
    first = arms[0]
    out = [
        Arm(
            NULL_RANDOM
            if len({a.meta["arch"] for a in arms}) == 1
            else f"{NULL_RANDOM}-{first.label}",
            permuted_weights(first.model, seed),
            first.meta,
            f"{NULL_RANDOM}:{first.sha256}",
            first.route,
        )
    ]
    seen: set[str] = set()
    for arm in arms:
        arch = str(arm.meta["arch"])
        if arch in seen:
            continue
        seen.add(arch)
        label = (
            NULL_UNTRAINED
            if len({a.meta["arch"] for a in arms}) == 1
            else f"{NULL_UNTRAINED}-{arch}"
        )
        out.append(
            Arm(
                label,
                untrained_copy(arm.model, seed),
                arm.meta,
                f"{NULL_UNTRAINED}:{arch}",
                arm.route,
            )
        )
    return out


def compare_with_statistics(
    arms: Sequence[Arm],
    cases: CaseSet,
    out_dir: str | Path,
    config: CompareConfig,
    *,
    nulls: bool = True,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the comparison (with null arms) and its statistics; ``report["statistics"]``."""
    out = Path(out_dir)
    report = run_comparison(arms, cases, out, config)
    rows: list[dict[str, Any]] = report["rows"]
    mark_degenerate(out, rows)
    extra = null_arms(arms, seed) if nulls else []
    null_rows: list[dict[str, Any]] = []
    if extra:
        # In their own folder, so the comparison's own files (metrics.csv, summary.csv, the
        # contact sheet) stay about the real arms; no randomisation check for a null model.
        null_report = run_comparison(extra, cases, out / "nulls", replace(config, sanity_cases=0))
        null_rows = null_report["rows"]
        mark_degenerate(out / "nulls", null_rows)
        report["null_summary"] = null_report["summary"]
    kinds = {a.label: "model" for a in arms}
    kinds.update(
        {
            a.label: (
                "null: random weights" if a.label.startswith(NULL_RANDOM) else "null: untrained"
            )
            for a in extra
        }
    )
    all_rows = [*rows, *null_rows]
    shuffled: list[str] = []
    for arm in arms:
        srows = shuffled_mask_rows(
            out,
            arm.label,
            cases,
            image_size=int(arm.meta["image_size"]),
            in_channels=int(arm.meta["in_channels"]),
            postprocess_mode=config.postprocess,
            postprocess_params=config.postprocess_params,
            seed=seed,
        )
        if srows:
            name = f"{arm.label} · {SHUFFLED}"
            kinds[name] = "null: shuffled masks"
            shuffled.append(name)
            all_rows.extend(srows)
    labels = [a.label for a in arms]
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    for a in labels:
        name = f"{a} · {SHUFFLED}"
        if name in shuffled:
            pairs.append((name, a))
        pairs.extend((n.label, a) for n in extra)
    stats = compare_arms(
        all_rows,
        arms=[*labels, *shuffled, *(a.label for a in extra)],
        pairs=pairs,
        kinds=kinds,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    chance = [
        r["mask_area"] for r in rows if r["arm"] == labels[0] and r.get("mask_area") is not None
    ]
    stats["mask_area_mean"] = sum(chance) / len(chance) if chance else None
    stats["pairs_read_as"] = "mean_diff = b - a over the cases both arms have"
    if config.target == "predicted":
        stats["notes"].extend(wrong_class_notes(rows, cases, labels))
    (out / "statistics.json").write_text(json.dumps(jsonable(stats), indent=2) + "\n")
    _write_stats_csv(out / "statistics.csv", stats)
    report["statistics"] = stats
    report["null_arms"] = [a.label for a in extra]
    return report


def wrong_class_notes(
    rows: Sequence[dict[str, Any]], cases: CaseSet, arms: Sequence[str]
) -> list[str]:
    """With ``--target predicted``: per arm, the masked cases whose explained class is not
    their ground truth (a misclassified pneumonia explained as "normal"), which would make
    their mask metrics measure the map of another class."""
    masked = {c.case_id for c in cases.cases if c.mask is not None and c.mask.any()}
    notes = []
    for arm in arms:
        hits = [
            r
            for r in rows
            if r["arm"] == arm
            and r["case_id"] in masked
            and r.get("label")
            and r.get("target") not in str(r["label"]).split("+")
        ]
        if hits:
            n_masked = sum(1 for r in rows if r["arm"] == arm and r["case_id"] in masked)
            example = hits[0]
            notes.append(
                f"{arm}: {len(hits)} of {n_masked} images with a mask were explained for the "
                f"predicted class, not their ground truth (e.g. {example['case_id']}: "
                f"'{example['target']}' explained, truth '{example['label']}'); their mask "
                "metrics measure another class's map (use --target ground_truth)"
            )
    return notes


def _write_stats_csv(path: Path, stats: dict[str, Any]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "row",
                "arm_or_b",
                "a",
                "kind",
                "metric",
                "n",
                "mean",
                "ci_low",
                "ci_high",
                "wilcoxon_p",
            ]
        )
        for arm in stats["arms"]:
            for metric, v in arm["metrics"].items():
                w.writerow(
                    [
                        "arm",
                        arm["arm"],
                        "",
                        arm["kind"],
                        metric,
                        v["n"],
                        v["mean"],
                        v["ci_low"],
                        v["ci_high"],
                        "",
                    ]
                )
        for p in stats["paired"]:
            w.writerow(
                [
                    "paired",
                    p["b"],
                    p["a"],
                    "b - a",
                    p["metric"],
                    p["n"],
                    p["mean_diff"],
                    p["ci_low"],
                    p["ci_high"],
                    p["wilcoxon_p"],
                ]
            )
