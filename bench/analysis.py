"""Export and analysis wall time for a full-size reader study, measured in one run.

Builds a temporary SQLite study of R raters x C cases x 2 arms (default 6 x 2,000: 12,000
rated trials, 24,000 scores; the test suite's `make_open_study` without files), then times
each export format, the full analysis (snapshot load + every statistic) against the 5 s
target, the figures separately, and two design choices against their straightforward
alternatives on the same data:

* crossed LMM: radsal's Henderson/Schur REML vs statsmodels MixedLM (single group with
  variance components) on a subsample statsmodels can still handle;
* rank-biserial bootstrap: count-based (one matrix product) vs re-ranking every resample.

The full analysis includes OR-MRMC, VGC, the two-way bootstrap, power and the rater quality
flags, but not the ordinal mixed model in R, which the page runs cached or in the background:
its primary fit is timed separately at the end (`--no-r` skips it, `--r-cases N` fits a
subsample, `--r-all-fits` adds the likelihood-ratio null and random-slope models).

Example: ``python bench/analysis.py`` (or ``--cases 500`` for a quick look).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.migrate import upgrade_database  # noqa: E402
from app.models import Rating, Trial, User  # noqa: E402
from app.services.results.analysis import analyze_snapshot, analyze_study  # noqa: E402
from app.services.results.export import export_study  # noqa: E402
from app.services.results.formats import stats_frames  # noqa: E402
from app.services.results.report import figures  # noqa: E402
from app.services.results.snapshot import load_snapshot  # noqa: E402
from app.stats.clmm_r import INSTALL_HINT, fit_clmm, rscript  # noqa: E402
from app.stats.mixed import fit_crossed_lmm  # noqa: E402
from app.stats.paired import rank_biserial  # noqa: E402
from tests.factories import make_open_study  # noqa: E402


def build_study(db: Session, data_dir: Path, n_raters: int, n_cases: int, seed: int = 0) -> int:
    """The test suite's two-arm study (no files), closed, rated with rater and case effects
    and a true arm effect (bulk-inserted: 12,000 ratings)."""
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.UTC)
    users = [User(username=f"bench-rater-{i}", role="rater") for i in range(n_raters)]
    db.add_all(users)
    db.flush()
    study = make_open_study(
        db, data_dir, raters=users, n_images=n_cases, seed=seed, name="bench", files=False
    )
    study.status = "closed"
    standard = min(study.arms, key=lambda a: a.position).id
    case_index = {si.image_id: si.position for si in study.images}
    trials = db.execute(
        select(Trial.id, Trial.rater_id, Trial.image_id, Trial.left_arm_id).where(
            Trial.study_id == study.id
        )
    ).all()
    rater_eff = rng.normal(0, 0.4, n_raters)
    case_eff = rng.normal(0, 0.7, n_cases)
    rater_index = {u.id: i for i, u in enumerate(users)}
    ratings = []
    for tid, rid, iid, left_arm in trials:
        base = 2.8 + rater_eff[rater_index[rid]] + case_eff[case_index[iid]]
        std = int(np.clip(np.round(base + rng.normal(0, 0.8)), 1, 5))
        adv = int(np.clip(np.round(base + 0.4 + rng.normal(0, 0.8)), 1, 5))
        ls, rs = (std, adv) if left_arm == standard else (adv, std)
        pref = "left" if ls > rs else "right" if rs > ls else "none"
        ratings.append(
            {
                "trial_id": tid,
                "rater_id": rid,
                "left_score": ls,
                "right_score": rs,
                "scores": {"highlight": {"left": ls, "right": rs}},
                "preference": pref,
                "active_ms": 5000,
                "total_ms": 6000,
                "created_at": now,
                "updated_at": now,
            }
        )
    db.execute(insert(Rating), ratings)
    db.commit()
    return study.id


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Median wall time of `repeat` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def naive_rank_biserial_boot(d: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        s = d[rng.integers(0, d.size, d.size)]
        ranks = stats.rankdata(np.abs(s))
        rp, rm = ranks[s > 0].sum(), ranks[s < 0].sum()
        out[b] = (rp - rm) / (rp + rm)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=6)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (median)")
    parser.add_argument(
        "--lmm-cases", type=int, default=150, help="cases in the statsmodels comparison subsample"
    )
    parser.add_argument("--no-r", action="store_true", help="do not time the R (CLMM) fit")
    parser.add_argument(
        "--r-cases", type=int, default=None, help="cases in the timed R fit (default: all)"
    )
    parser.add_argument(
        "--r-all-fits",
        action="store_true",
        help="also time the likelihood-ratio null model and the random-slope sensitivity model "
        "(about 10 minutes at 6 x 2,000 x 2 on a busy 2-core machine)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        upgrade_database(engine)
        factory = make_sessionmaker(engine)
        t_build, study_id = timed(
            lambda: build_study(factory(), Path(tmp), args.raters, args.cases)
        )
        print(
            f"study: {args.raters} raters x {args.cases} cases x 2 arms "
            f"({args.raters * args.cases} rated trials), built in {t_build:.1f} s"
        )
        db = factory()
        rows = []
        for fmt in ("csv", "wide", "json", "mrmc", "r"):
            t, out = timed(partial(export_study, db, study_id, fmt), args.repeat)
            rows.append((f"export {fmt}", t, f"{len(out[0]) / 1e6:.1f} MB"))
        t_snap, snap = timed(lambda: load_snapshot(db, study_id), args.repeat)
        rows.append(("load snapshot (1 SELECT)", t_snap, ""))
        t_stats, result = timed(lambda: analyze_snapshot(snap, n_boot=args.n_boot), args.repeat)
        rows.append(("statistics only", t_stats, ""))
        t_full, _ = timed(lambda: analyze_study(db, study_id, n_boot=args.n_boot), args.repeat)
        rows.append(("FULL ANALYSIS (load + stats)", t_full, "target <= 5 s"))
        t_png, figs = timed(lambda: figures(result, "png"))
        rows.append((f"figures PNG ({len(figs)})", t_png, "not in the timed analysis"))
        t_svg, _ = timed(lambda: figures(result, "svg"))
        rows.append((f"figures SVG ({len(figs)})", t_svg, ""))
        print(f"\n{'step':<32}{'seconds':>9}  note")
        for name, t, note in rows:
            print(f"{name:<32}{t:>9.2f}  {note}")

        scores, _prefs = stats_frames(snap)
        lmm = result["items"][0]["mixed_model"]["fixed"][1]
        print(
            f"\nLMM arm effect {lmm['estimate']:.3f} [{lmm['ci_low']:.3f}, {lmm['ci_high']:.3f}]"
            f" (simulated shift 0.4 before rounding/clipping)"
        )

        print("\nside by side (same data, same answers):")
        sub_cases = sorted(scores["case"].unique())[: args.lmm_cases]
        sub = scores[scores["case"].isin(sub_cases)]
        t_ours, ours = timed(lambda: fit_crossed_lmm(sub, ["standard", "dual-BN clean"]))
        t_sm, ref = timed(lambda: _statsmodels_lmm(sub))
        print(
            f"  crossed LMM, {len(sub)} scores: radsal {t_ours:.2f} s vs statsmodels "
            f"{t_sm:.2f} s -> {t_sm / t_ours:.0f}x; arm effect {ours['fixed'][1]['estimate']:.4f}"
            f" vs {ref:.4f}"
        )
        d = (
            scores.pivot_table(index=["rater", "case"], columns="arm", values="score")
            .eval("`dual-BN clean` - standard")
            .to_numpy(float)
        )
        n_naive = 200
        t_fast, _ = timed(lambda: rank_biserial(d, n_boot=n_naive))
        t_slow, _ = timed(lambda: naive_rank_biserial_boot(d, n_naive))
        print(
            f"  rank-biserial bootstrap, {d.size} diffs x {n_naive} resamples: counts "
            f"{t_fast:.3f} s vs re-ranking {t_slow:.2f} s -> {t_slow / t_fast:.0f}x"
        )
        if not args.no_r:
            time_r_fit(scores, args.r_cases, all_fits=args.r_all_fits)
        db.close()
        engine.dispose()


def time_r_fit(scores: pd.DataFrame, n_cases: int | None, *, all_fits: bool = False) -> None:
    """Time the ordinal mixed model in R: the primary fit, and with `all_fits` the
    likelihood-ratio null model and the random-slope sensitivity model as the page runs them.
    Not part of the in-app analysis, which runs R cached / in the background."""
    if rscript() is None:
        print(f"\nR fit: not timed, Rscript not found ({INSTALL_HINT})")
        return
    if n_cases is not None:
        keep = sorted(scores["case"].unique())[:n_cases]
        scores = scores[scores["case"].isin(keep)]
    n_obs = int((scores["item"] == "highlight").sum())
    t0 = time.perf_counter()
    res = fit_clmm(
        scores,
        item="highlight",
        reference="standard",
        timeout_s=3600,
        sensitivity=all_fits,
        lrt=all_fits,
    )
    total = time.perf_counter() - t0
    prim = (res.get("primary") or {}).get("seconds") or 0.0
    sens = (res.get("sensitivity") or {}).get("seconds") or 0.0
    if all_fits:
        print(
            f"\nR ordinal::clmm, {n_obs} scores ({res['status']}): primary {prim:.1f} s, "
            f"LRT null model {max(total - prim - sens, 0):.1f} s (incl. R start-up), "
            f"random-slope sensitivity {sens:.1f} s, total {total:.1f} s (a background job on "
            "the page)"
        )
    else:
        print(
            f"\nR ordinal::clmm primary fit, {n_obs} scores ({res['status']}): {prim:.1f} s "
            f"({total:.1f} s with R start-up and I/O); --r-all-fits adds the LRT null and "
            "sensitivity models"
        )
    for e in (res.get("primary") or {}).get("arm_effects") or []:
        print(f"  OR {e['odds_ratio']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]")
    if res.get("message"):
        print(f"  {res['message']}")


def _statsmodels_lmm(sub: pd.DataFrame) -> float:
    import statsmodels.api as sm

    frame = sub.assign(g=1, is_adv=(sub["arm"] == "dual-BN clean").astype(float))
    model = sm.MixedLM.from_formula(
        "score ~ is_adv",
        groups="g",
        data=frame,
        vc_formula={"rater": "0 + C(rater)", "case": "0 + C(case)"},
    )
    return float(model.fit(reml=True).params["is_adv"])


if __name__ == "__main__":
    main()
