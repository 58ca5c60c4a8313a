"""The ordinal mixed model for the analysis: R in a subprocess, cached, background-capable.

Fitting `ordinal::clmm` with crossed random effects takes seconds for a pilot and minutes for a
6 x 2,000 x 2 study (the random-slope sensitivity model is the slow one), so a page must not
wait for it. Results are cached per *data*: the key is a hash of the item's scores and of the R
script, stored as JSON under `<data_dir>/analysis/`, so a study whose ratings did not change is
never refitted and a new rating invalidates the cache by itself.

Modes (`ClmmMode`):
* ``off``: not requested (the benchmark's in-app analysis);
* ``wait``: fit now and cache (CLI, report from the shell, tests);
* ``background``: return the cached result, or start the fit in a background thread and
  return ``status: "running"`` with the step R is on; the page says to reload (the page, the
  report and the API never wait for R).

The background thread lives in the web process: with several server processes each may fit
the same data once (the cache file is written atomically, so the results agree).

Without R the result says how to install it (`app.stats.clmm_r.UNAVAILABLE`); nothing here
raises into the analysis.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from app.stats.clmm_r import (
    DATA_COLUMNS,
    R_SCRIPT,
    UNAVAILABLE,
    Progress,
    fit_clmm,
    precheck,
    rscript,
)
from app.stats.frames import primary

ClmmMode = Literal["off", "wait", "background"]
# Items with at most this many scores are fitted inline even in "background" mode. 0: never:
# three clmm fits of even 50 scores take 10-30 s on a busy machine, too long for a page.
INLINE_MAX_OBS = 0
_LOCK = threading.Lock()
_RUNNING: dict[str, dict[str, Any]] = {}  # cache file -> {"started", "step"} of a running fit


def _rows(scores: pd.DataFrame, item: str) -> pd.DataFrame:
    rows = primary(scores[scores["item"] == item]) if len(scores) else scores
    cols = [c for c in DATA_COLUMNS if c in rows.columns]
    return rows[cols].sort_values(["rater", "case", "arm"]).reset_index(drop=True)


def cache_key(rows: pd.DataFrame, item: str, reference: str, scale: int) -> str:
    """Hash of what the fit depends on: the scores, the model settings and the R script."""
    h = hashlib.sha256()
    h.update(rows.to_csv(index=False).encode())
    h.update(f"\0{item}\0{reference}\0{scale}\0".encode())
    h.update(R_SCRIPT.read_bytes())
    return h.hexdigest()[:32]


def _cache_file(data_dir: Path, study_id: int, key: str) -> Path:
    return data_dir / "analysis" / f"study-{study_id}" / f"clmm-{key}.json"


def _store(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader sees the old file or the whole new one


def _fit_and_store(
    path: Path, key: str, rows: pd.DataFrame, report: Progress | None = None, **kw: Any
) -> dict[str, Any]:
    def progress(step: str) -> None:
        with _LOCK:
            if key in _RUNNING:
                _RUNNING[key]["step"] = step
        if report is not None:
            report(step)

    result = fit_clmm(rows, progress=progress, **kw)
    result["fitted_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if result["status"] != "unavailable" and not result.get("retryable"):
        try:
            _store(path, result)
        except OSError as exc:  # a read-only data dir costs the cache, not the result
            result["cache_error"] = str(exc)
    return result


def _background(path: Path, key: str, rows: pd.DataFrame, **kw: Any) -> dict[str, Any]:
    with _LOCK:
        state = _RUNNING.get(key)
        if state is None:
            state = {"started": time.time(), "step": "starting R"}
            _RUNNING[key] = state

            def run() -> None:
                try:
                    _fit_and_store(path, key, rows, **kw)
                finally:
                    with _LOCK:
                        _RUNNING.pop(key, None)

            threading.Thread(target=run, name=f"clmm-{key[:8]}", daemon=True).start()
        step, started = state["step"], state["started"]
    return {
        "status": "running",
        "message": (
            f"The ordinal mixed model is being fitted in R in the background ({len(rows)} "
            f"scores; running for {time.time() - started:.0f} s, step: {step}). Reload the "
            "page (or download the report again) in a moment to see it; the rest of the "
            "analysis does not wait for it."
        ),
        "step": step,
    }


def clmm_for_item(
    data_dir: Path | None,
    study_id: int,
    scores: pd.DataFrame,
    *,
    item: str,
    reference: str,
    scale: int,
    mode: ClmmMode = "background",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The CLMM section of one item's analysis (see the module docstring for `mode`).

    `progress(step)` hears R's steps when the fit runs in this thread (CLI progress lines).
    """
    base: dict[str, Any] = {
        "item": item,
        "reference_arm": reference,
        "mode": mode,
        "available": rscript() is not None,
    }
    if mode == "off":
        return {
            **base,
            "status": "skipped",
            "message": "not computed here (run `radsal analyze` or open the analysis page).",
        }
    problem = precheck(scores, item, reference) if len(scores) else "no scores yet."
    if problem is not None:
        return {**base, "status": "skipped", "message": problem}
    if rscript() is None:
        return {**base, "status": "unavailable", "message": UNAVAILABLE}
    rows = _rows(scores, item)
    key = cache_key(rows, item, reference, scale)
    kw: dict[str, Any] = {"item": item, "reference": reference, "scale": scale}
    if data_dir is None:  # no data directory: nothing to cache in, fit only on request
        if mode == "wait":
            return {**base, **fit_clmm(rows, progress=progress, **kw)}
        return {**base, "status": "skipped", "message": "no data directory to cache the fit in."}
    path = _cache_file(data_dir, study_id, key)
    if path.exists():
        try:
            return {**base, **json.loads(path.read_text(encoding="utf-8")), "cached": True}
        except (OSError, ValueError):
            pass  # a damaged cache file is refitted
    if mode == "wait" or len(rows) <= INLINE_MAX_OBS:
        return {**base, **_fit_and_store(path, str(path), rows, progress, **kw)}
    return {**base, **_background(path, str(path), rows, **kw)}
