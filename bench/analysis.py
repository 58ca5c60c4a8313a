"""Export and analysis wall time for a full-size reader study, measured in one run.

Builds a temporary SQLite study of R raters x C cases x 2 arms (default 6 x 2,000: 12,000
rated trials, 24,000 scores), then times each export format, the full analysis (snapshot
load + every statistic) against the 5 s target, the figures separately, and two design
choices against their straightforward alternatives on the same data:

* crossed LMM: radsal's Henderson/Schur REML vs statsmodels MixedLM (single group with
  variance components) on a subsample statsmodels can still handle;
* rank-biserial bootstrap: count-based (one matrix product) vs re-ranking every resample.

Example: ``python bench/analysis.py`` (or ``--cases 500`` for a quick look).
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.db import make_engine, make_sessionmaker
from app.migrate import upgrade_database
from app.models import Arm, Checkpoint, Image, Rating, Study, StudyImage, StudyRater, Trial, User
from app.services.results.analysis import analyze_snapshot, analyze_study
from app.services.results.export import export_study
from app.services.results.formats import stats_frames
from app.services.results.report import figures
from app.services.results.snapshot import load_snapshot
from app.stats.mixed import fit_crossed_lmm
from app.stats.paired import rank_biserial


def build_study(db: Session, n_raters: int, n_cases: int, seed: int = 0) -> int:
    """Bulk-insert a rated two-arm study with rater and case effects and a true arm effect."""
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.UTC)
    study = Study(name="bench", seed=seed, status="closed", items=[], saliency={})
    db.add(study)
    ckpts = [
        Checkpoint(
            name=n,
            arch="resnet18",
            num_classes=1,
            image_size=128,
            sha256=secrets.token_hex(32),
            file_path=f"{n}.pt",
        )
        for n in ("standard", "dual-bn")
    ]
    db.add_all(ckpts)
    db.flush()
    arms = [
        Arm(
            study_id=study.id,
            checkpoint_id=ckpts[0].id,
            method="gradient",
            label="standard",
            position=0,
        ),
        Arm(
            study_id=study.id,
            checkpoint_id=ckpts[1].id,
            bn_route="clean",
            method="gradient",
            label="dual-BN clean",
            position=1,
        ),
    ]
    users = [User(username=f"bench-rater-{i}", role="rater") for i in range(n_raters)]
    db.add_all([*arms, *users])
    db.flush()
    img0 = int(
        db.execute(
            insert(Image).returning(Image.id),
            [
                {
                    "sha256": secrets.token_hex(32),
                    "source_filename": f"case{i}.png",
                    "width": 64,
                    "height": 64,
                    "display_path": "x",
                    "thumb_path": "x",
                    "input_path": "x",
                    "labels": {"pneumonia": i % 2},
                }
                for i in range(n_cases)
            ],
        )
        .scalars()
        .all()[0]
    )
    image_ids = np.arange(img0, img0 + n_cases)
    db.execute(
        insert(StudyImage),
        [
            {"study_id": study.id, "image_id": int(i), "position": p}
            for p, i in enumerate(image_ids)
        ],
    )
    db.execute(insert(StudyRater), [{"study_id": study.id, "user_id": u.id} for u in users])
    trials = []
    for r, user in enumerate(users):
        order = rng.permutation(n_cases)
        for pos, c in enumerate(order):
            first = (pos + r) % 2  # counterbalanced sides
            trials.append(
                {
                    "token": secrets.token_hex(12),
                    "study_id": study.id,
                    "rater_id": user.id,
                    "image_id": int(image_ids[c]),
                    "left_arm_id": arms[first].id,
                    "right_arm_id": arms[1 - first].id,
                    "position": pos,
                }
            )
    trial_ids = db.execute(
        insert(Trial).returning(Trial.id, Trial.rater_id, Trial.image_id, Trial.left_arm_id), trials
    ).all()
    rater_eff = rng.normal(0, 0.4, n_raters)
    case_eff = rng.normal(0, 0.7, n_cases)
    rater_index = {u.id: i for i, u in enumerate(users)}
    ratings = []
    for tid, rid, iid, left_arm in trial_ids:
        base = 2.8 + rater_eff[rater_index[rid]] + case_eff[iid - img0]
        std = int(np.clip(np.round(base + rng.normal(0, 0.8)), 1, 5))
        adv = int(np.clip(np.round(base + 0.4 + rng.normal(0, 0.8)), 1, 5))
        ls, rs = (std, adv) if left_arm == arms[0].id else (adv, std)
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
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        upgrade_database(engine)
        factory = make_sessionmaker(engine)
        t_build, study_id = timed(lambda: build_study(factory(), args.raters, args.cases))
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
        db.close()
        engine.dispose()


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
