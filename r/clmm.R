# radsal: cumulative link mixed model for study {{STUDY_ID}} ("{{STUDY_NAME}}").
# Generated {{EXPORTED_AT}} by `radsal export --format r`. Put this script next to the tidy
# export ({{CSV_FILE}}, from `radsal export {{STUDY_ID}} --format csv -o {{CSV_FILE}}`) and run
#   Rscript clmm.R
# Options (all optional): --csv=FILE --item=KEY --reference=ARM --scale=N --json=OUT.json
#   --sensitivity=no (skip the random-slope fit) --lrt=no (skip the likelihood-ratio test)
# Needs R with the `ordinal` package (Debian/Ubuntu: apt-get install r-base-core r-cran-ordinal;
# elsewhere: install.packages("ordinal")).
#
# This is the very script radsal runs for its analysis page, `radsal analyze` and the report
# (with --json); what you run here is what radsal ran.
#
# Primary model: ordinal::clmm(score ~ arm + (1|rater) + (1|case)), logit link: the
# proportional-odds model for Likert scores with crossed random intercepts for raters and
# cases. The arm coefficient is a log cumulative odds ratio: exp(coef) > 1 means the arm's maps
# got higher scores than the reference arm ("{{REFERENCE_ARM}}").
# Sensitivity model: score ~ arm + (1 + arm | rater) + (1 | case), letting the arm effect vary
# between raters (a random arm slope per rater).

option <- function(name, default) {
  args <- commandArgs(trailingOnly = TRUE)
  prefix <- paste0("--", name, "=")
  hit <- args[startsWith(args, prefix)]
  if (length(hit) > 0) substring(hit[length(hit)], nchar(prefix) + 1) else default
}
csv_file <- option("csv", "{{CSV_FILE}}")
item <- option("item", "{{ITEM}}")
reference <- option("reference", "{{REFERENCE_ARM}}")
scale <- as.integer(option("scale", "{{SCALE}}"))
json_file <- option("json", "")
run_sensitivity <- option("sensitivity", "yes") != "no"
run_lrt <- option("lrt", "yes") != "no"

# -- a small JSON writer (base R has none; jsonlite is not a dependency) ------------------
json_string <- function(s) {
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  s <- gsub("\r", "\\r", s, fixed = TRUE)
  s <- gsub("\t", "\\t", s, fixed = TRUE)
  paste0("\"", s, "\"")
}
to_json <- function(x) {
  if (is.null(x)) return("null")
  if (is.list(x)) {
    if (!is.null(names(x))) {
      keys <- names(x)
      parts <- vapply(seq_along(x), function(i) {
        paste0(json_string(keys[i]), ":", to_json(x[[i]]))
      }, "")
      return(paste0("{", paste(parts, collapse = ","), "}"))
    }
    return(paste0("[", paste(vapply(x, to_json, ""), collapse = ","), "]"))
  }
  if (length(x) != 1) return(to_json(as.list(unname(x))))
  if (is.na(x)) return("null")
  if (is.logical(x)) return(if (x) "true" else "false")
  if (is.numeric(x)) {
    if (!is.finite(x)) return("null")
    return(formatC(x, digits = 17, format = "g"))
  }
  json_string(as.character(x))
}

result <- list(
  software = list(
    R = paste(R.version$major, R.version$minor, sep = "."),
    ordinal = NULL
  ),
  input = list(csv = csv_file, item = item, reference_arm = reference, scale = scale),
  data = NULL,
  primary = NULL,
  sensitivity = NULL,
  error = NULL
)
write_result <- function() {
  if (nzchar(json_file)) writeLines(to_json(result), json_file, useBytes = TRUE)
}
fail <- function(message) {
  result$error <<- message
  write_result()
  cat("radsal clmm: ", message, "\n", sep = "", file = stderr())
  quit(status = 2, save = "no")
}

if (!requireNamespace("ordinal", quietly = TRUE)) {
  fail(paste("R package 'ordinal' is not installed: apt-get install r-cran-ordinal",
             "(or install.packages(\"ordinal\") in R)"))
}
suppressPackageStartupMessages(library(ordinal))
result$software$ordinal <- as.character(packageVersion("ordinal"))
result$software$ucminf <- as.character(packageVersion("ucminf"))

if (!file.exists(csv_file)) fail(paste0("data file '", csv_file, "' not found"))
d <- read.csv(csv_file, stringsAsFactors = FALSE)
needed <- c("rater", "case", "arm", "item", "score", "is_repeat")
if (!all(needed %in% names(d))) {
  fail(paste("the data lack columns:", paste(setdiff(needed, names(d)), collapse = ", ")))
}
d <- d[d$item == item & !as.logical(d$is_repeat) & !is.na(d$score), ]
# practice, catch and flagged rows are in the export but never analysed (radsal's `analysed`)
if ("analysed" %in% names(d)) d <- d[as.logical(d$analysed), ]
if (nrow(d) == 0) fail(paste0("no scores for item '", item, "' in ", csv_file))

d$score <- factor(d$score, levels = seq_len(scale), ordered = TRUE)
d$score <- droplevels(d$score)
d$arm <- factor(d$arm)
d$rater <- factor(d$rater)
d$case <- factor(d$case)
result$data <- list(
  n_obs = nrow(d),
  n_raters = nlevels(d$rater),
  n_cases = nlevels(d$case),
  arms = as.list(levels(d$arm)),
  levels = as.list(as.integer(levels(d$score)))
)
if (!(reference %in% levels(d$arm))) fail(paste0("the reference arm '", reference, "' has no scores"))
if (nlevels(d$arm) < 2) fail("only one arm has scores: there is no arm effect to estimate")
if (nlevels(d$score) < 2) fail("every map got the same score: an ordinal model needs two or more levels")
if (nlevels(d$rater) < 2) fail("one rater: a random rater effect needs at least two raters")
if (nlevels(d$case) < 2) fail("one case: a random case effect needs at least two cases")
d$arm <- relevel(d$arm, ref = reference)

# Fit a model, keeping its warnings; an error becomes a message instead of a crash.
fit_model <- function(formula) {
  warnings <- character(0)
  started <- proc.time()[["elapsed"]]
  fit <- withCallingHandlers(
    tryCatch(clmm(formula, data = d, link = "logit", Hess = TRUE, nAGQ = 1),
             error = function(e) e),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    }
  )
  list(fit = fit, warnings = warnings, seconds = proc.time()[["elapsed"]] - started)
}

describe_fit <- function(res, formula_text) {
  out <- list(model = formula_text, warnings = as.list(res$warnings), seconds = res$seconds,
              error = NULL)
  fit <- res$fit
  if (inherits(fit, "error")) {
    out$error <- conditionMessage(fit)
    return(out)
  }
  se_all <- suppressWarnings(sqrt(diag(vcov(fit))))
  z <- qnorm(0.975)
  arm_terms <- names(fit$beta)[startsWith(names(fit$beta), "arm")]
  out$arm_effects <- lapply(arm_terms, function(term) {
    est <- unname(fit$beta[term])
    se <- unname(se_all[term])
    list(term = term, arm = substring(term, 4), log_odds_ratio = est, se = se,
         odds_ratio = exp(est), ci_low = exp(est - z * se), ci_high = exp(est + z * se),
         p_value = 2 * pnorm(-abs(est / se)))
  })
  out$thresholds <- lapply(names(fit$alpha), function(name) {
    list(threshold = name, estimate = unname(fit$alpha[name]), se = unname(se_all[name]))
  })
  vc <- VarCorr(fit)
  out$random_effects <- list()
  for (group in names(vc)) {
    m <- vc[[group]]
    terms <- rownames(m)
    for (i in seq_along(terms)) {
      out$random_effects[[length(out$random_effects) + 1]] <- list(
        group = group, term = terms[i], variance = m[i, i], sd = sqrt(m[i, i]))
    }
    corr <- attr(m, "correlation")
    if (!is.null(corr) && nrow(corr) > 1) {
      out$random_effects[[length(out$random_effects) + 1]] <- list(
        group = group, term = paste(terms[1], terms[2], sep = ":"), correlation = corr[1, 2])
    }
  }
  eig <- tryCatch(eigen(fit$Hessian, only.values = TRUE)$values, error = function(e) NA)
  out$log_likelihood <- as.numeric(logLik(fit))
  out$aic <- AIC(fit)
  out$n_parameters <- length(fit$coefficients) + length(fit$ST)
  out$condition_hessian <- if (all(is.finite(eig)) && min(eig) > 0) max(eig) / min(eig) else NA
  out$converged <- isTRUE(fit$optRes$convergence == 0) && isTRUE(min(eig) > 0)
  out$fit <- fit
  out
}

step <- function(text) cat("[radsal] ", text, "\n", sep = "")

# A fit that R could not summarise (e.g. a singular Hessian) is a message, not a crash.
describe <- function(res, formula_text) {
  tryCatch(describe_fit(res, formula_text), error = function(e) {
    list(model = formula_text, warnings = as.list(res$warnings), seconds = res$seconds,
         error = paste("summarising the fit failed:", conditionMessage(e)))
  })
}

primary_text <- "score ~ arm + (1 | rater) + (1 | case)"
step("fitting the primary model")
primary <- describe(fit_model(score ~ arm + (1 | rater) + (1 | case)), primary_text)
if (!is.null(primary$fit)) {
  cat("Primary model:", primary_text, "\n")
  print(summary(primary$fit))
  if (run_lrt) {
    step("fitting the null model for the likelihood-ratio test")
    null_fit <- fit_model(score ~ 1 + (1 | rater) + (1 | case))
    if (inherits(null_fit$fit, "error")) {
      primary$lrt <- list(error = conditionMessage(null_fit$fit))
    } else {
      stat <- 2 * (as.numeric(logLik(primary$fit)) - as.numeric(logLik(null_fit$fit)))
      df <- length(primary$fit$beta)
      primary$lrt <- list(chisq = stat, df = df, p_value = pchisq(stat, df, lower.tail = FALSE))
      cat(sprintf("\nLikelihood-ratio test of the arm effect: chisq = %.3f, df = %d, p = %.4g\n",
                  stat, df, primary$lrt$p_value))
    }
  }
  primary$fit <- NULL
}
if (!is.null(primary$arm_effects)) {
  cat("\nArm effects (odds ratios vs '", reference, "', Wald 95% CI):\n", sep = "")
  print(do.call(rbind, lapply(primary$arm_effects, as.data.frame)), row.names = FALSE,
        digits = 4)
}
result$primary <- primary

if (run_sensitivity) {
  sens_text <- "score ~ arm + (1 + arm | rater) + (1 | case)"
  step("fitting the sensitivity model")
  sens <- describe(fit_model(score ~ arm + (1 + arm | rater) + (1 | case)), sens_text)
  if (!is.null(sens$fit)) {
    cat("\nSensitivity model (random arm slope per rater):", sens_text, "\n")
    print(summary(sens$fit))
    sens$fit <- NULL
  }
  result$sensitivity <- sens
}
if (!is.null(primary$error)) result$error <- paste("the primary model failed:", primary$error)
write_result()
step("done")
