"""`radsal power`: power of the next study over a readers x cases grid, by simulation.

From a finished or pilot study's variance components (`radsal power STUDY`) or from stated
ones (`radsal power --reader-var ... --case-var ... --residual-var ... --effect ...`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.cli.session import cli_session
from app.errors import DomainError
from app.stats.power import (
    ANALYSES,
    DEFAULT_CASES,
    DEFAULT_READERS,
    DEFAULT_SEED,
    DEFAULT_SIMS,
    Components,
    power_grid,
)


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from exc
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "power",
        help="power of the next study over readers x cases (simulated)",
        description="Simulate the primary analysis on studies like this one (or like stated "
        "variance components) and print the power for each number of readers and cases.",
    )
    p.add_argument("study", nargs="?", help="pilot/finished study id or exact name")
    p.add_argument("--item", default=None, help="Likert item (default: the first)")
    p.add_argument("--arm", default=None, help="arm compared with the reference (default: 2nd)")
    p.add_argument(
        "--effect",
        type=float,
        default=None,
        help="target mean score difference (default: the study's observed one)",
    )
    p.add_argument(
        "--readers",
        type=_ints,
        default=list(DEFAULT_READERS),
        help="comma-separated numbers of readers",
    )
    p.add_argument(
        "--cases", type=_ints, default=list(DEFAULT_CASES), help="comma-separated numbers of cases"
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="significance level (default: the study's pre-registered one, or 0.05)",
    )
    p.add_argument(
        "--analysis",
        choices=sorted(ANALYSES),
        default=None,
        help="analysis to simulate (default: the study's primary one)",
    )
    p.add_argument("--n-sim", type=int, default=DEFAULT_SIMS, help="simulated studies per cell")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (reproducible)")
    p.add_argument(
        "--reader-var",
        type=float,
        default=None,
        help="stated reader x arm variance of the score difference",
    )
    p.add_argument(
        "--case-var",
        type=float,
        default=None,
        help="stated case x arm variance of the score difference",
    )
    p.add_argument(
        "--residual-var",
        type=float,
        default=None,
        help="stated residual variance of the score difference",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=main_power)


def _stated(args: argparse.Namespace) -> dict[str, Any] | None:
    given = [args.reader_var, args.case_var, args.residual_var]
    if all(v is None for v in given):
        return None
    if any(v is None for v in given) or args.effect is None:
        raise ValueError(
            "stated components need --reader-var, --case-var, --residual-var and --effect"
        )
    comps = Components(args.reader_var, args.case_var, args.residual_var, source="stated")
    return power_grid(
        comps,
        args.effect,
        readers=args.readers,
        cases=args.cases,
        alpha=0.05 if args.alpha is None else args.alpha,
        n_sim=args.n_sim,
        seed=args.seed,
        analysis=args.analysis or "or_mrmc",
    )


def main_power(args: argparse.Namespace) -> int:
    from app.cli.export_analyze import resolve_study
    from app.services.results.power import power_for_study

    try:
        result = _stated(args)
        if result is None:
            if not args.study:
                raise ValueError("give a STUDY, or stated components (see --help)")
            with cli_session(readonly=True) as db:
                result = power_for_study(
                    db,
                    resolve_study(db, args.study),
                    item=args.item,
                    arm=args.arm,
                    effect=args.effect,
                    readers=args.readers,
                    cases=args.cases,
                    alpha=args.alpha,
                    n_sim=args.n_sim,
                    seed=args.seed,
                    analysis=args.analysis,
                )
    except DomainError as exc:
        print(f"radsal power: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"radsal power: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_power(result))
    return 0 if result.get("grid") else 1


def format_power(result: dict[str, Any]) -> str:
    """Power table: one row per number of readers, one column per number of cases."""
    lines = []
    comps = result.get("components") or {}
    if result.get("study"):
        s = result["study"]
        lines.append(f"Study {s['id']} “{s['name']}”, item {s['item']}: {result.get('comparison')}")
    if comps:
        lines.append(
            f"variance components ({comps.get('source')}): reader {comps['reader']:.4f}, "
            f"case {comps['case']:.4f}, residual {comps['residual']:.4f}"
        )
    if result.get("grid"):
        lines.append(
            f"{result['analysis_label']}; effect {result['effect']:+.3f} points "
            f"({result.get('effect_source', 'stated')}), alpha {result['alpha']}, "
            f"{result['n_sim']} simulated studies per cell, seed {result['seed']}"
        )
        cases = result["cases"]
        lines.append("readers \\ cases " + "".join(f"{c:>8}" for c in cases))
        power = {(g["readers"], g["cases"]): g["power"] for g in result["grid"]}
        for r in result["readers"]:
            lines.append(f"{r:>15} " + "".join(f"{power[(r, c)]:>8.2f}" for c in cases))
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)
