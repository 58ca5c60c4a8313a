"""The experiment's report: one self-contained HTML file (tables, and every image inlined).

Everything is read back from the files the stages wrote (``models/*/metrics.jsonl`` and
``selection.json``, ``eval/*/report.json`` and plots, ``maps/statistics.json`` and the contact
sheet), so the report can be rebuilt from a finished run and shows nothing the files do not.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml.evaluation.plots import plot_robustness

__all__ = ["write_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child{text-align:left}
.warn{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
.note{color:#555;font-size:13px}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0}
.row{display:flex;gap:.5em;flex-wrap:wrap}.row img{width:32%}
code{background:#f4f4f4;padding:0 3px}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return html.escape(str(v))


def _ci(mean: Any, lo: Any, hi: Any) -> str:
    if lo is None or hi is None:
        return _fmt(mean)
    return f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p class='note'>({html.escape(alt)}: not written)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _warn(items: Sequence[str]) -> str:
    return "".join(f"<div class='warn'>⚠ {html.escape(w)}</div>" for w in items)


def _json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _training(out: Path, label: str) -> str:
    folder = out / "models" / label
    history = [
        json.loads(line)
        for line in (folder / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    selection = _json(folder / "selection.json")
    cols = [
        ("epoch", "epoch"),
        ("train_loss", "train loss"),
        ("val_loss", "val loss"),
        ("val_auroc", "val AUROC"),
        ("val_accuracy", "val acc"),
        ("val_predicted_classes", "pred. classes"),
        ("bn_mean_shift", "BN mean shift"),
        ("map_spearman", "route map ρ"),
    ]
    cols = [c for c in cols if any(c[0] in h for h in history)]
    rows = [
        [_fmt(h.get(k)) for k, _ in cols] + ["★" if h["epoch"] == selection.get("epoch") else ""]
        for h in history
    ]
    text = (
        f"<h3>{html.escape(label)}</h3><p>best.pt = epoch {_fmt(selection.get('epoch'))} "
        f"by {_fmt(selection.get('metric'))} ({_fmt(selection.get('value'))})</p>"
    )
    return (
        text
        + _warn(selection.get("warnings", []))
        + _table([n for _, n in cols] + ["selected"], rows)
    )


def _classification(reports: dict[str, dict[str, Any]]) -> str:
    rows = []
    for label, rep in reports.items():
        for route, r in rep.get("routes", {}).items():
            per = "; ".join(
                f"{html.escape(n)} {_ci(c['auroc'], c['ci_low'], c['ci_high'])}"
                for n, c in r["per_class"].items()
            )
            robust = ", ".join(
                f"ε {_fmt(x['eps'], 4)}: {_fmt(x['macro_auroc'])}" for x in r["robust"]
            )
            rows.append(
                [
                    html.escape(label),
                    route,
                    _fmt(r["macro_auroc"]),
                    _fmt(r["accuracy"]),
                    per,
                    robust,
                ]
            )
    return _table(
        [
            "model",
            "BN route",
            "macro AUROC",
            "accuracy",
            "AUROC per class [95 % CI]",
            "robust AUROC",
        ],
        rows,
    )


def _divergence(rep: dict[str, Any]) -> str:
    div = rep.get("dual_bn_divergence")
    if not div:
        return ""
    keys = [
        "bn_mean_shift",
        "bn_log_var_ratio",
        "bn_affine_rel_diff",
        "map_spearman",
        "prediction_disagreement",
        "prob_gap",
    ]
    table = _table(keys, [[_fmt(div.get(k)) for k in keys]])
    return (
        "<h2>Did dual BN work? Branch divergence</h2>"
        + table
        + _warn([div["warning"]] if div.get("warning") else [])
    )


def _maps(out: Path) -> str:
    stats = _json(out / "maps" / "statistics.json")
    if not stats:
        return "<p class='note'>(no map statistics)</p>"
    metrics = list(stats["metrics"])
    rows = []
    for arm in stats["arms"]:
        cells = [html.escape(arm["arm"]), html.escape(arm["kind"]), str(arm["n_degenerate"])]
        for m in metrics:
            v = arm["metrics"].get(m) or {}
            cells.append(_ci(v.get("mean"), v.get("ci_low"), v.get("ci_high")))
        rows.append(cells)
    per_arm = _table(["arm", "kind", "degenerate", *metrics], rows)
    prow = [
        [
            html.escape(p["b"]),
            html.escape(p["a"]),
            html.escape(p["metric"]),
            str(p["n"]),
            _ci(p["mean_diff"], p["ci_low"], p["ci_high"]),
            _fmt(p["wilcoxon_p"]),
        ]
        for p in stats["paired"]
        if p["metric"] in ("mask_energy", "pointing", "gini", "deletion_auc", "insertion_auc")
    ]
    paired = _table(["b", "a", "metric", "n", "mean b − a [95 % CI]", "Wilcoxon p"], prow)
    chance = stats.get("mask_area_mean")
    return (
        "<h2>Saliency maps</h2>"
        f"<p>Means with case-bootstrap 95 % CIs ({stats['n_bootstrap']} resamples). A uniform "
        f"map's mask energy equals the mask area (mean {_fmt(chance)}); the shuffled-mask rows "
        "score each map against another case's mask, the chance level that counts.</p>"
        + per_arm
        + _warn(stats.get("notes", []))
        + "<h3>Paired differences</h3>"
        + paired
        + "<h3>Contact sheet</h3>"
        + _img(out / "maps" / "contact_sheet.png", "contact sheet")
    )


def write_report(out: Path, data: str) -> Path:
    """Write ``out/report.html`` from a finished (or partly finished) experiment folder."""
    state = _json(out / "experiment.json")
    found = {p.parent.name: _json(p) for p in sorted((out / "eval").glob("*/report.json"))}
    order = [label for label in ("standard", "dual-bn") if label in found]
    reports = {label: found[label] for label in [*order, *sorted(set(found) - set(order))]}
    curves = {}
    for label, rep in reports.items():
        for route, r in rep.get("routes", {}).items():
            curves[f"{label} ({route})"] = [
                {k: (math.nan if v is None else v) for k, v in row.items()} for row in r["robust"]
            ]
    if curves:
        norm = next(iter(reports.values())).get("attack", {}).get("norm", "linf")
        plot_robustness(out / "robustness.png", curves, norm)
    first = next(iter(reports.values()), {})
    split = (first.get("train") or {}).get("split") or {}
    split_rows = [
        [html.escape(k), _fmt(split.get("sizes", {}).get(k)), _fmt(split.get("masked", {}).get(k))]
        for k in ("train", "val", "test")
        if k in split.get("sizes", {})
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>radsal experiment: {html.escape(str(data))}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>Standard vs dual-BN: {html.escape(str(data))}</h1>",
        "<h2>Split</h2>",
        f"<p>{_fmt(split.get('method'))} split, held-out split for all numbers below: "
        f"<b>{_fmt(split.get('heldout'))}</b>; images with masks held out: "
        f"{_fmt(split.get('mask_split'))}. Digest <code>{_fmt(split.get('digest'))}</code>.</p>",
        _table(["split", "images", "with mask"], split_rows),
        "<h2>Training and model selection</h2>",
        *(_training(out, label) for label in reports),
        "<h2>Classification on the held-out split</h2>",
        _classification(reports),
        _img(out / "robustness.png", "robustness"),
        "<div class='row'>",
        *(
            _img(out / "eval" / label / f"roc_{route}.png", f"ROC {label} {route}")
            for label, rep in reports.items()
            for route in rep.get("routes", {})
        ),
        "</div>",
        _divergence(reports.get("dual-bn", {})),
        _maps(out),
        "<h2>Settings</h2>",
        f"<pre>{html.escape(json.dumps(state.get('settings', {}), indent=2))}</pre>",
        "</body></html>",
    ]
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
