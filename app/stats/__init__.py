"""Reader-study statistics: pure functions on pandas DataFrames.

Nothing here touches the database, FastAPI or `ml/`, so the same code serves the web page, the
CLI, the standalone report and a researcher's notebook. Input frames are described in
`app.stats.frames`; every function returns plain, JSON-serialisable dicts.
"""

from app.stats.agreement import (
    icc,
    inter_rater_agreement,
    intra_rater_agreement,
    krippendorff_alpha,
)
from app.stats.bootstrap import headline_intervals
from app.stats.clmm_r import fit_clmm
from app.stats.descriptives import arm_descriptives, likert_distribution
from app.stats.frames import PREFERENCE_COLUMNS, SCORE_COLUMNS, primary, validate_scores
from app.stats.mixed import fit_crossed_lmm
from app.stats.mrmc import mrmc_mean_difference, obuchowski_rockette
from app.stats.paired import (
    friedman_and_pairwise,
    paired_comparison,
    per_rater_differences,
    rank_biserial,
    wilcoxon_pratt,
)
from app.stats.power import power_from_study, power_grid
from app.stats.preference import blinding_check, preference_test
from app.stats.quality import rater_quality
from app.stats.vgc import vgc_analysis

__all__ = [
    "PREFERENCE_COLUMNS",
    "SCORE_COLUMNS",
    "arm_descriptives",
    "blinding_check",
    "fit_clmm",
    "fit_crossed_lmm",
    "friedman_and_pairwise",
    "headline_intervals",
    "icc",
    "inter_rater_agreement",
    "intra_rater_agreement",
    "krippendorff_alpha",
    "likert_distribution",
    "mrmc_mean_difference",
    "obuchowski_rockette",
    "paired_comparison",
    "per_rater_differences",
    "power_from_study",
    "power_grid",
    "preference_test",
    "primary",
    "rank_biserial",
    "rater_quality",
    "validate_scores",
    "vgc_analysis",
    "wilcoxon_pratt",
]
