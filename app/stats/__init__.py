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
from app.stats.descriptives import arm_descriptives, likert_distribution
from app.stats.frames import PREFERENCE_COLUMNS, SCORE_COLUMNS, primary, validate_scores
from app.stats.mixed import fit_crossed_lmm
from app.stats.paired import (
    friedman_and_pairwise,
    paired_comparison,
    per_rater_differences,
    rank_biserial,
    wilcoxon_pratt,
)
from app.stats.preference import blinding_check, preference_test

__all__ = [
    "PREFERENCE_COLUMNS",
    "SCORE_COLUMNS",
    "arm_descriptives",
    "blinding_check",
    "fit_crossed_lmm",
    "friedman_and_pairwise",
    "icc",
    "inter_rater_agreement",
    "intra_rater_agreement",
    "krippendorff_alpha",
    "likert_distribution",
    "paired_comparison",
    "per_rater_differences",
    "preference_test",
    "primary",
    "rank_biserial",
    "validate_scores",
    "wilcoxon_pratt",
]
