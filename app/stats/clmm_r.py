"""The ordinal mixed model, fitted by R's `ordinal::clmm` in a subprocess.

Likert scores are ordered categories, so the model a reviewer expects is the cumulative link
mixed model `score ~ arm + (1|rater) + (1|case)` (plus `(1 + arm|rater)` as a sensitivity
analysis). R's `ordinal` package is the reference implementation; radsal does not re-implement
it but runs R:

1. the item's first-reading scores are written as CSV to a fresh temporary directory;
2. `r/clmm.R`, filled in exactly as `radsal export --format r` fills it in, is written next to
   it and run with `Rscript --vanilla clmm.R --json=result.json` (no R code lives in Python
   strings: what runs here is the file a researcher exports and can rerun);
3. the JSON it writes (odds ratios with Wald 95% CIs, thresholds, variance components, the
   likelihood-ratio test, R and package versions, warnings) is returned as a dict.

The function never raises: R missing, a bad input, a failing or too slow fit each come back as
`status` ("ok", "partial", "skipped", "unavailable", "failed") with a `message` that says what
happened and, when R is missing, how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from app.stats.frames import clean, primary

R_SCRIPT = Path(__file__).resolve().parents[2] / "r" / "clmm.R"
INSTALL_HINT = "apt-get install r-base-core r-cran-ordinal r-cran-lme4"
UNAVAILABLE = (
    "R is not available, so the ordinal mixed model (ordinal::clmm) was not fitted. "
    f"Install it with: {INSTALL_HINT} (then restart radsal); everything else in the analysis "
    "does not need R."
)
DEFAULT_TIMEOUT_S = 1800.0
DATA_COLUMNS = ("rater", "case", "arm", "item", "score", "is_repeat")
Progress = Callable[[str], None]


def rscript() -> str | None:
    """Path of Rscript (`RADSAL_RSCRIPT` overrides the PATH lookup; empty = treat as absent)."""
    override = os.environ.get("RADSAL_RSCRIPT")
    if override is not None:
        return override or None
    return shutil.which("Rscript")


def _r_literal(value: str) -> str:
    """A value safe inside an R double-quoted string or a comment: no control characters
    (a newline would end the comment and start R code), backslashes and quotes escaped."""
    text = "".join(ch for ch in str(value) if ch >= " " and ch != "\x7f")
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_script(values: Mapping[str, str]) -> str:
    """`r/clmm.R` with its {{PLACEHOLDERS}} filled in (the export and the runner both use it)."""
    text = R_SCRIPT.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", _r_literal(value))
    return text


def precheck(scores: pd.DataFrame, item: str, reference: str) -> str | None:
    """Why the model cannot be fitted on these scores (None when it can), without calling R."""
    rows = primary(scores[scores["item"] == item]) if len(scores) else scores
    rows = rows[rows["score"].notna()] if len(rows) else rows
    if not len(rows):
        return f"no scores for item {item!r}: nothing to fit."
    arms = set(rows["arm"].astype(str))
    if reference not in arms:
        return f"the reference arm {reference!r} has no scores: no odds ratio can be estimated."
    if len(arms) < 2:
        return "only one arm has scores: there is no arm effect to estimate."
    if rows["score"].nunique() < 2:
        return "every map got the same score: an ordinal model needs two or more score levels."
    if rows["rater"].nunique() < 2:
        return "one rater: a random rater effect needs at least two raters."
    if rows["case"].nunique() < 2:
        return "one case: a random case effect needs at least two cases."
    return None


def _base(item: str, reference: str) -> dict[str, Any]:
    return {
        "status": "skipped",
        "message": None,
        "available": rscript() is not None,
        "engine": "R ordinal::clmm (Laplace approximation), run by Rscript",
        "script": "r/clmm.R",
        "item": item,
        "reference_arm": reference,
        "software": None,
        "data": None,
        "primary": None,
        "sensitivity": None,
        "seconds": None,
        "retryable": False,  # True: a time-out or crash, worth trying again (never cached)
    }


def _run(
    cmd: list[str], cwd: str, timeout_s: float, progress: Progress | None
) -> tuple[int, str, bool]:
    """Run R, forwarding its `[radsal] ...` step lines to `progress`; (rc, output, timed_out)."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("[radsal] ") and progress is not None:
                progress(line[len("[radsal] ") :].strip())
        rc = proc.wait()
    finally:
        timer.cancel()
    return rc, "".join(lines), timed_out.is_set()


def fit_clmm(
    scores: pd.DataFrame,
    *,
    item: str,
    reference: str,
    scale: int = 5,
    sensitivity: bool = True,
    lrt: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit the CLMM (and its sensitivity model) for one item in R; never raises."""
    out = _base(item, reference)
    try:
        problem = precheck(scores, item, reference)
        if problem is not None:
            out["message"] = problem
            return out
        exe = rscript()
        if exe is None:
            out["status"], out["message"] = "unavailable", UNAVAILABLE
            return out
        with tempfile.TemporaryDirectory(prefix="radsal-clmm-") as tmp:
            rows = scores[scores["item"] == item]
            data = pd.DataFrame({c: rows[c] for c in DATA_COLUMNS if c in rows.columns})
            if "is_repeat" not in data.columns:
                data["is_repeat"] = False
            data.to_csv(Path(tmp) / "data.csv", index=False)
            script = render_script(
                {
                    "STUDY_ID": "-",
                    "STUDY_NAME": "radsal analysis",
                    "EXPORTED_AT": "-",
                    "CSV_FILE": "data.csv",
                    "ITEM": item,
                    "SCALE": str(int(scale)),
                    "REFERENCE_ARM": reference,
                }
            )
            (Path(tmp) / "clmm.R").write_text(script, encoding="utf-8")
            cmd = [exe, "--vanilla", "clmm.R", "--json=result.json"]
            if not sensitivity:
                cmd.append("--sensitivity=no")
            if not lrt:
                cmd.append("--lrt=no")
            started = time.perf_counter()
            rc, log, timed_out = _run(cmd, tmp, timeout_s, progress)
            out["seconds"] = time.perf_counter() - started
            result_file = Path(tmp) / "result.json"
            if timed_out:
                out["status"], out["retryable"] = "failed", True
                out["message"] = f"the R fit took longer than {timeout_s:g} s and was stopped."
                return out
            if not result_file.exists():
                out["status"], out["retryable"] = "failed", True
                out["message"] = f"R exited with status {rc} without a result: {_tail(log)}"
                return out
            result = json.loads(result_file.read_text(encoding="utf-8"))
        return _merge(out, result, rc, log)
    except Exception as exc:  # the analysis must never fail because of R
        out["status"], out["retryable"] = "failed", True
        out["message"] = f"running R failed: {type(exc).__name__}: {exc}"
        return out


def _tail(log: str, n: int = 600) -> str:
    text = " ".join(log.split())
    return text[-n:] if text else "(no output)"


def _merge(out: dict[str, Any], result: Mapping[str, Any], rc: int, log: str) -> dict[str, Any]:
    for key in ("software", "data", "primary", "sensitivity"):
        out[key] = result.get(key)
    # R's JSON writer turns one-element vectors into scalars; the lists here are lists.
    for section in (out["primary"], out["sensitivity"]):
        if isinstance(section, dict):
            for key in ("warnings", "arm_effects", "thresholds", "random_effects"):
                if key in section and not isinstance(section[key], list):
                    section[key] = [] if section[key] is None else [section[key]]
    error = result.get("error")
    primary_ok = isinstance(out["primary"], dict) and not out["primary"].get("error")
    sens = out["sensitivity"]
    sens_failed = isinstance(sens, dict) and bool(sens.get("error"))
    if error or not primary_ok:
        out["status"] = "failed"
        out["message"] = f"R: {error or 'the primary model failed'}"
    elif sens_failed:
        out["status"] = "partial"
        out["message"] = f"the sensitivity model failed in R: {sens['error']}"
    elif rc != 0:
        out["status"] = "failed"
        out["message"] = f"R exited with status {rc}: {_tail(log)}"
    else:
        out["status"] = "ok"
    return clean(out)  # type: ignore[no-any-return]


def r_versions(timeout_s: float = 30.0) -> dict[str, Any]:
    """R and package versions, for the methods paragraph; `available` False without R."""
    exe = rscript()
    if exe is None:
        return {"available": False, "message": UNAVAILABLE}
    try:
        done = subprocess.run(
            [
                exe,
                "--vanilla",
                "-e",
                "cat(R.version$major, R.version$minor, "
                "tryCatch(as.character(packageVersion('ordinal')), error=function(e) ''))",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"available": False, "message": f"running R failed: {exc}"}
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) < 2:
        return {"available": False, "message": f"R did not report its version: {done.stderr}"}
    return {
        "available": True,
        "R": f"{parts[0]}.{parts[1]}",
        "ordinal": parts[2] if len(parts) > 2 else None,
    }
