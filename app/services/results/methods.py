"""The generated methods paragraph: the design and the tests actually run, in words.

Kept apart from the report so the analysis can attach it without importing report rendering.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any


def _join(words: list[str]) -> str:
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _versions() -> str:
    parts = []
    for pkg in ("scipy", "statsmodels", "krippendorff", "scikit-learn"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts)


def _r_software(analysis: Mapping[str, Any]) -> dict[str, Any] | None:
    """R and package versions of the first CLMM that R fitted, None when none was."""
    for item in analysis.get("items", []):
        clmm = item.get("clmm") or {}
        if clmm.get("status") in ("ok", "partial") and clmm.get("software"):
            return dict(clmm["software"])
    return None


def _plan_text(analysis: Mapping[str, Any]) -> str:
    pre = analysis.get("preregistration")
    if not pre:
        return ""
    plan = pre["plan"]
    if plan.get("registered"):
        when = f" on {plan['registered_at'][:10]}" if plan.get("registered_at") else ""
        return (
            f"The primary analysis, registered{when} before the study opened, was the "
            f"{plan['label']} for item \u201c{pre['item']}\u201d at a two-sided alpha of "
            f"{plan['alpha']:g}; all other analyses are secondary."
        )
    return (
        "No analysis plan was registered before the study opened; the "
        f"{plan['label']} is reported as the primary analysis by default."
    )


def methods_paragraph(analysis: Mapping[str, Any]) -> str:
    """A methods paragraph generated from the design and the tests actually run."""
    study = analysis["study"]
    arms = [a["label"] for a in study["arms"]]
    likert = [i for i in study["items"] if i.get("kind") == "likert"]
    has_pref = any(i.get("kind") == "preference" for i in study["items"])
    boot = analysis.get("bootstrap", {})
    n_rated = study["n_rated"]
    text = [
        f"{study['n_raters']} raters each read {study['n_cases']} cases in a blinded, paired "
        f"design comparing {len(arms)} saliency-map conditions ({_join(arms)}). "
        "Every trial showed the image with two maps side by side, labelled only A and B, with "
        "the left/right position counterbalanced within each rater and the order of cases "
        f"randomised per rater (seed {study['seed']}).",
    ]
    if likert:
        item_text = _join(
            [f"\u201c{i['question']}\u201d (1\u2013{i.get('scale', 5)})" for i in likert]
        )
        count = "one Likert item" if len(likert) == 1 else f"{len(likert)} Likert items"
        text.append(f"Raters scored each map on {count}: {item_text}.")
    if has_pref:
        text.append("They also stated which map they preferred, or no preference.")
    text.append(
        f"{n_rated} of {study['n_trials']} assigned trials were rated and analysed"
        + (f"; a fraction of {study['repeat_fraction']:g} of trials were repeated with sides "
           "flipped to measure intra-rater reliability" if study["repeat_fraction"] else "")
        + ". Repeated readings were excluded from all primary analyses."
    )  # fmt: skip
    if len(arms) >= 2:
        ref = arms[0]
        text.append(
            "Scores are summarised per arm as mean (SD) and median (IQR). Mean paired "
            "differences are given with 95% confidence intervals robust to clustering by case "
            "(cluster-robust standard errors). Paired score "
            f"differences (each arm minus {ref}) per rater and case were tested with the "
            "two-sided Wilcoxon signed-rank test with Pratt's treatment of zero differences; "
            "the effect size is the matched-pairs rank-biserial correlation with a 95% "
            f"percentile bootstrap confidence interval ({boot.get('n_boot', 0)} resamples of "
            "cases). The same test was repeated on per-case means over raters and within each "
            "rater."
        )
        if len(arms) > 2:
            text.append(
                "Because the study had more than two arms, Friedman's test over complete "
                "(rater, case) blocks preceded pairwise Wilcoxon tests with Holm's correction."
            )
        if has_pref:
            text.append(
                "Preferences were tested against no preference with a two-sided exact binomial "
                "test, excluding \u201cno preference\u201d answers (reported separately); a "
                "side-bias check tested whether the left map was preferred more often than the "
                "right."
            )
        text.append(
            "Inter-rater agreement was measured per arm and over all maps with Krippendorff's "
            "alpha (ordinal metric, missing ratings allowed) and with the two-way random-"
            "effects, absolute-agreement intraclass correlation for single and average raters "
            "(ICC(2,1), ICC(2,k); Shrout & Fleiss 1979) with F-based 95% confidence intervals."
        )
        if study["repeat_fraction"]:
            text.append(
                "Intra-rater agreement between first and repeated readings was measured with "
                "quadratically weighted Cohen's kappa."
            )
        text.append(
            "To let conclusions generalise to new readers as well as new cases, the mean score "
            "difference was analysed with the Obuchowski\u2013Rockette method with jackknife "
            "covariance estimates and Hillis's denominator degrees of freedom (readers and cases "
            "random), and visual grading characteristics (VGC) analysis (B\u00e5th & M\u00e5nsson "
            "2007) gave the AUC_VGC per rater and pooled over raters. Confidence intervals of "
            "the AUC_VGC, the mean scores, the mean difference and the rank-biserial correlation "
            f"also come from a two-way bootstrap resampling readers and cases "
            f"({boot.get('n_boot', 0)} resamples)."
        )
        text.append(
            "A linear mixed model with arm as a fixed effect and crossed random intercepts for "
            "rater and case was fitted by REML."
        )
        r_sw = _r_software(analysis)
        if r_sw:
            text.append(
                "Scores were analysed as ordinal with a cumulative link mixed model (logit link, "
                "Laplace approximation) with arm as a fixed effect and crossed random intercepts "
                f"for rater and case, fitted with R {r_sw.get('R')} and the ordinal package "
                f"{r_sw.get('ordinal')} (clmm); odds ratios are given with Wald 95% confidence "
                "intervals and the arm effect was also tested with a likelihood-ratio test. A "
                "model adding a random arm slope per rater served as sensitivity analysis."
            )
        else:
            text.append(
                "The exported R script fits the corresponding cumulative link mixed model "
                "(ordinal::clmm) for the ordinal scores."
            )
        text.append(
            "Raters were screened for short reading times, little score variation, side bias "
            "and poor agreement with their own repeated readings; no rater was excluded."
        )
        plan_text = _plan_text(analysis)
        if plan_text:
            text.append(plan_text)
    protocol_text = _protocol_text(analysis)  # issue 15: practice, catch, blinding, regions
    if protocol_text:
        text.append(protocol_text)
    r_sw = _r_software(analysis)
    r_text = f", R {r_sw.get('R')} and ordinal {r_sw.get('ordinal')}" if r_sw else ""
    text.append(f"Analyses used radsal with {_versions()}{r_text}.")
    return " ".join(text)


def _protocol_text(analysis: Mapping[str, Any]) -> str:
    """The quality-control protocol in a sentence or two (empty when the study had none)."""
    proto = analysis.get("protocol") or {}
    out = []
    if proto.get("practice", {}).get("n_trials"):
        out.append("Raters first completed practice trials with feedback, which were not analysed.")
    if proto.get("catch"):
        out.append(
            "Catch trials (the same map on both sides; a real map against the map of the same "
            "model with randomised weights) were interleaved, reported per rater and excluded "
            "from the main analysis."
        )
    if proto.get("blinding"):
        out.append(
            "Blinding was checked by asking raters which map came from the named model; "
            "guessing accuracy is compared with chance (exact binomial test, Clopper-Pearson CI)."
        )
    if analysis.get("localisation"):
        out.append(
            "Raters marked the region supporting the finding; each map was scored against it "
            "(energy inside the region, pointing game, IoU of the top 10% of the map) and arms "
            "were compared with the same paired tests."
        )
    if proto.get("flags"):
        out.append(f"{len(proto['flags'])} case reading(s) flagged by raters were excluded.")
    return " ".join(out)
