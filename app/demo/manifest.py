"""``<data dir>/demo.json``: what each step was built from and what it produced.

A re-run reuses a step whose inputs are unchanged and whose outputs still exist (`Steps`),
so an interrupted demo resumes and a finished one starts serving within seconds. The file
also keeps the demo accounts' passwords (mode 0600) so a re-run can print them again; that is
a convenience of a local demo, not a pattern for production.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from app.config import Settings
from app.demo.progress import StepLog

MANIFEST_NAME = "demo.json"
DEMO_DIR_NAME = "demo"
MANIFEST_VERSION = 1


def fingerprint(value: Any) -> str:
    """A short stable hash of JSON-able inputs: what the manifest compares."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_path(settings: Settings) -> Path:
    return settings.data_dir / MANIFEST_NAME


def demo_dir(settings: Settings) -> Path:
    """Where the demo keeps its own files (data set, training runs, evaluation reports)."""
    return settings.data_dir / DEMO_DIR_NAME


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load_manifest(settings: Settings) -> dict[str, Any]:
    """The recorded demo, or an empty one (also when the file is from another version)."""
    path = manifest_path(settings)
    if not path.is_file():
        return {"version": MANIFEST_VERSION, "steps": {}}
    data = json.loads(path.read_text())
    if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("steps"), dict):
        return {"version": MANIFEST_VERSION, "steps": {}}
    return dict(data)


def save_manifest(settings: Settings, manifest: Mapping[str, Any]) -> None:
    """Write atomically and owner-only: the file holds the demo accounts' passwords."""
    path = manifest_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2, default=str)  # keep step order
    os.replace(tmp, path)


class Steps:
    """Runs a step unless the manifest says it was built from the same inputs and still exists."""

    def __init__(self, settings: Settings, manifest: dict[str, Any], log: StepLog) -> None:
        self.settings = settings
        self.manifest = manifest
        self.log = log

    def run(
        self,
        name: str,
        title: str,
        key: Mapping[str, Any],
        build: Callable[[], dict[str, Any]],
        still_valid: Callable[[dict[str, Any]], bool],
    ) -> dict[str, Any]:
        entry = self.manifest["steps"].get(name)
        fp = fingerprint(key)
        if entry and entry.get("key") == fp and still_valid(entry["result"]):
            self.log.reuse(name, title)
            return dict(entry["result"])
        with self.log.step(name, title):
            result = build()
        self.manifest["steps"][name] = {
            "key": fp,
            "result": result,
            "seconds": self.log.timings[name],
            "at": now_iso(),
        }
        save_manifest(self.settings, self.manifest)
        return result
