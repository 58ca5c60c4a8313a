# radsal: cumulative link mixed model for study {{STUDY_ID}} ("{{STUDY_NAME}}").
# Generated {{EXPORTED_AT}} by `radsal export --format r`. Put this script next to the tidy
# export ({{CSV_FILE}}, from `radsal export {{STUDY_ID}} --format csv -o {{CSV_FILE}}`) and run
#   Rscript clmm.R
#
# Model: ordinal::clmm(score ~ arm + (1|rater) + (1|case)), logit link: the proportional-odds
# model for Likert scores with crossed random intercepts for raters and cases. The arm
# coefficient is a log cumulative odds ratio: exp(coef) > 1 means the arm's maps got higher
# scores than the reference arm ("{{REFERENCE_ARM}}"). radsal's in-app linear mixed model is an
# approximation of this model; report this one in a paper.

if (!requireNamespace("ordinal", quietly = TRUE)) install.packages("ordinal")
library(ordinal)

d <- read.csv("{{CSV_FILE}}", stringsAsFactors = FALSE)
d <- d[d$item == "{{ITEM}}" & !as.logical(d$is_repeat) & !is.na(d$score), ]
if (nrow(d) == 0) stop("no scores for item '{{ITEM}}' in {{CSV_FILE}}")

d$score <- factor(d$score, levels = 1:{{SCALE}}, ordered = TRUE)
d$score <- droplevels(d$score)
d$arm <- relevel(factor(d$arm), ref = "{{REFERENCE_ARM}}")
d$rater <- factor(d$rater)
d$case <- factor(d$case)

fit <- clmm(score ~ arm + (1 | rater) + (1 | case), data = d, link = "logit", Hess = TRUE,
            nAGQ = 1)
print(summary(fit))

arm_terms <- grep("^arm", names(coef(fit)), value = TRUE)
est <- coef(fit)[arm_terms]
se <- sqrt(diag(vcov(fit)))[arm_terms]
or_table <- data.frame(
  term = arm_terms,
  log_odds_ratio = est,
  odds_ratio = exp(est),
  ci_low = exp(est - qnorm(0.975) * se),
  ci_high = exp(est + qnorm(0.975) * se),
  p_value = 2 * pnorm(-abs(est / se))
)
cat("\nArm effects (odds ratios vs '{{REFERENCE_ARM}}', Wald 95% CI):\n")
print(or_table, row.names = FALSE, digits = 4)

cat("\nRandom-effect standard deviations:\n")
print(VarCorr(fit))

# Likelihood-ratio test of the arm effect.
fit0 <- clmm(score ~ 1 + (1 | rater) + (1 | case), data = d, link = "logit", nAGQ = 1)
print(anova(fit0, fit))
