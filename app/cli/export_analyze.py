"""`radsal export STUDY` and `radsal analyze STUDY`: the researcher's exports and statistics
from the shell, through the same services as the web page and the HTTP API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.cli.session import cli_session
from app.errors import DomainError

EXPORT_FORMATS = ("csv", "wide", "json", "mrmc", "r")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    exp = sub.add_parser(
        "export",
        help="export a study's ratings (tidy CSV, wide CSV, JSON, MRMC CSV, R script)",
        description="Export one consistent snapshot of a study's ratings (unblinded).",
    )
    exp.add_argument("study", help="study id or exact name")
    exp.add_argument(
        "--format",
        "-f",
        choices=EXPORT_FORMATS,
        default="csv",
        help="csv: tidy long (default); wide: one row per trial; json: design + ratings; "
        "mrmc: reader,case,modality,score; r: ordinal::clmm script for the csv export",
    )
    exp.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    exp.set_defaults(func=main_export)

    ana = sub.add_parser(
        "analyze",
        help="analyse a study's ratings (tests, agreement, mixed model)",
        description="Analyse the ratings that exist now; warnings say what limits the numbers.",
    )
    ana.add_argument("study", help="study id or exact name")
    ana.add_argument("--json", action="store_true", help="print the full analysis as JSON")
    ana.add_argument("--report", type=Path, default=None, help="also write the HTML report here")
    ana.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (CIs of r)")
    ana.add_argument(
        "--no-r",
        action="store_true",
        help="skip the ordinal mixed model (R's ordinal::clmm); by default it is fitted, "
        "or read from the cache, and the command waits for it",
    )
    ana.set_defaults(func=main_analyze)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Alias of `add_parsers` (the ml CLI convention)."""
    add_parsers(sub)


def resolve_study(db: Session, ref: str) -> int:
    """A study id from an id or an exact, unambiguous name."""
    from sqlalchemy import select

    from app.errors import Invalid, NotFound
    from app.models import Study

    if ref.isdigit():
        return int(ref)
    ids = list(db.scalars(select(Study.id).where(Study.name == ref)))
    if not ids:
        raise NotFound(f"No study named {ref!r}.")
    if len(ids) > 1:
        raise Invalid(
            f"{len(ids)} studies are named {ref!r}; use the id ({', '.join(map(str, ids))})."
        )
    return ids[0]


def main_export(args: argparse.Namespace) -> int:
    from app.services.results.export import export_study

    try:
        with cli_session(readonly=True) as db:
            body, _media, filename = export_study(db, resolve_study(db, args.study), args.format)
    except DomainError as exc:
        print(f"radsal export: {exc.message}", file=sys.stderr)
        return 2
    if args.output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        args.output.write_bytes(body)
        print(
            f"wrote {args.output} ({len(body)} bytes; suggested name {filename})", file=sys.stderr
        )
    return 0


def main_analyze(args: argparse.Namespace) -> int:
    from app.services.results.analysis import analyze_study
    from app.services.results.report import render_report

    def progress(step: str) -> None:
        print(f"radsal analyze: R {step}", file=sys.stderr, flush=True)

    try:
        with cli_session(readonly=True) as db:
            result = analyze_study(
                db,
                resolve_study(db, args.study),
                n_boot=args.n_boot,
                clmm="off" if args.no_r else "wait",
                clmm_progress=progress,
            )
    except DomainError as exc:
        print(f"radsal analyze: {exc.message}", file=sys.stderr)
        return 2
    if args.report is not None:
        args.report.write_text(render_report(result), encoding="utf-8")
        print(f"wrote {args.report}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_text(result))
    return 0


def _f(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: Any) -> str:
    return "–" if value is None else ("<0.001" if value < 0.001 else f"{value:.3f}")


def format_text(a: dict[str, Any]) -> str:
    """A terminal summary of the analysis (the JSON has everything)."""
    s = a["study"]
    lines = [
        f"Study {s['id']} “{s['name']}” ({s['status']}): {s['n_raters']} raters, "
        f"{s['n_cases']} cases, {len(s['arms'])} arms, {s['n_rated']}/{s['n_trials']} trials rated",
    ]
    lines += [f"  warning: {w}" for w in a["warnings"]]
    if a["empty"]:
        return "\n".join(lines)
    for item in a["items"]:
        if not item.get("descriptives"):
            lines.append(f"\nItem {item['key']}: no scores")
            continue
        lines.append(f"\nItem {item['key']} (1–{len(item['levels'])})")
        for d in item["descriptives"]:
            lines.append(
                f"  {d['arm']:<24} n={d['n']:<6} mean {_f(d['mean'])} (SD {_f(d['sd'])})  "
                f"median {_f(d['median'], 1)} (IQR {_f(d['q1'], 1)}–{_f(d['q3'], 1)})"
            )
        for comp in item["comparisons"]:
            rc = comp["rater_case"]
            r = rc["rank_biserial"]
            lines.append(
                f"  {comp['difference']}: mean diff {_f(rc['mean_diff'])}, Wilcoxon (Pratt) "
                f"p={_p(rc['wilcoxon']['p_value'])}, r={_f(r['r'])} "
                f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}] (n={rc['n']} rater×case pairs)"
            )
        if item["multi_arm"]:
            fr = item["multi_arm"]["friedman"]
            lines.append(f"  Friedman chi2={_f(fr['statistic'])} p={_p(fr['p_value'])}")
        ov = item["agreement"]["overall"]
        lines.append(
            f"  agreement: alpha ordinal {_f(ov['alpha_ordinal'], 3)}, ICC(2,1) "
            f"{_f(ov['icc']['icc2_1'], 3)}, ICC(2,k) {_f(ov['icc']['icc2_k'], 3)}"
        )
        intra = item["intra_rater"]["pooled"]
        if intra["n"]:
            lines.append(f"  intra-rater kappa (quadratic) {_f(intra['kappa_quadratic'], 3)}")
        for f in item["mixed_model"]["fixed"][1:]:
            lines.append(
                f"  LMM {f['term']}: {_f(f['estimate'], 3)} [{_f(f['ci_low'], 3)}, "
                f"{_f(f['ci_high'], 3)}] p={_p(f['p_value'])}"
            )
        lines.extend(_reviewer_lines(item))
    lines.extend(_study_lines(a))
    for pref in a["preferences"]:
        pb, sb = pref["prefer_b"], pref["side_bias"]
        lines.append(
            f"\nPreference {pref['arm_b']} vs {pref['arm_a']}: {pref['counts']} — binomial "
            f"p={_p(pb['p_value'])}; left preferred {sb['left_preferred']}/{sb['n']} "
            f"(p={_p(sb['p_value'])})"
        )
    return "\n".join(lines)


def _reviewer_lines(item: dict[str, Any]) -> list[str]:
    """OR-MRMC, CLMM, VGC and power lines of one item."""
    lines: list[str] = []
    rv = item.get("reviewer") or {}
    mrmc = rv.get("mrmc") or {}
    for c in mrmc.get("comparisons") or []:
        lines.append(
            f"  OR-MRMC {c['difference']}: {_f(c['estimate'], 3)} [{_f(c['ci_low'], 3)}, "
            f"{_f(c['ci_high'], 3)}] df={_f(c['df'], 1)} p={_p(c['p_value'])} "
            "(readers and cases random)"
        )
    if mrmc.get("note"):
        lines.append(f"  OR-MRMC: {mrmc['note']}")
    clmm = item.get("clmm") or {}
    effects = (clmm.get("primary") or {}).get("arm_effects") or []
    for e in effects:
        lines.append(
            f"  CLMM (R) {e['arm']}: OR {_f(e['odds_ratio'])} [{_f(e['ci_low'])}, "
            f"{_f(e['ci_high'])}] p={_p(e['p_value'])}"
        )
    for e in (clmm.get("sensitivity") or {}).get("arm_effects") or []:
        lines.append(
            f"  CLMM sensitivity (random arm slope) {e['arm']}: OR {_f(e['odds_ratio'])} "
            f"[{_f(e['ci_low'])}, {_f(e['ci_high'])}]"
        )
    if clmm.get("message"):
        lines.append(f"  CLMM: {clmm['message']}")
    for v in rv.get("vgc") or []:
        if v.get("auc") is not None:
            lines.append(
                f"  VGC {v['comparison']}: AUC {_f(v['auc'], 3)} [{_f(v['ci_low'], 3)}, "
                f"{_f(v['ci_high'], 3)}] (two-way bootstrap)"
            )
        else:
            lines.append(f"  VGC {v['comparison']}: {v['note']}")
    power = rv.get("power") or {}
    if power.get("grid"):
        best = max(power["grid"], key=lambda g: (g["power"], -g["readers"], -g["cases"]))
        lines.append(
            f"  power (effect {_f(power['effect'], 3)}, alpha {power['alpha']}): "
            f"{_f(best['power'])} with {best['readers']} readers x {best['cases']} cases; "
            "full grid: radsal power"
        )
    elif power.get("note"):
        lines.append(f"  power: {power['note']}")
    return lines


def _study_lines(a: dict[str, Any]) -> list[str]:
    """Primary analysis and rater quality flags."""
    lines: list[str] = []
    pre = a.get("preregistration")
    if pre:
        o, plan = pre["outcome"], pre["plan"]
        state = "pre-registered" if plan["registered"] else "default, not pre-registered"
        if o.get("estimate") is not None:
            verdict = (
                ""
                if o.get("significant") is None
                else (" (significant)" if o["significant"] else " (not significant)")
            )
            lines.append(
                f"\nPrimary analysis ({state}): {plan['label']}, item {pre['item']}: "
                f"{o['measure']} {_f(o['estimate'], 3)} [{_f(o['ci_low'], 3)}, "
                f"{_f(o['ci_high'], 3)}] p={_p(o['p_value'])}{verdict} at alpha {plan['alpha']}"
            )
        else:
            lines.append(f"\nPrimary analysis ({state}): {plan['label']}: {o.get('note')}")
    quality = a.get("quality") or {}
    for r in quality.get("raters") or []:
        for flag in r["flags"]:
            lines.append(f"  quality flag, {r['rater']}: {flag}")
    return lines
