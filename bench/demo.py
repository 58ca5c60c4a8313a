"""`radsal demo`: wall time of each build step, a fresh build side by side with a re-run.

Runs the real command twice in a temporary data directory (a subprocess each time, exactly as
a newcomer runs it, with ``--no-serve``): first from nothing, then again on the finished
demo, which must reuse every step. Prints each step's seconds from the demo's own manifest
(``demo.json``), the process wall time (imports included) and the re-run/fresh ratio.

    python bench/demo.py                       # the defaults a newcomer gets
    python bench/demo.py --data ../shared/data/nih-cxr-pneumonia
    python bench/demo.py -- --image-size 32 --epochs 1   # extra `radsal demo` options
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_demo(data_dir: Path, extra: list[str]) -> tuple[float, dict[str, Any]]:
    """One `radsal demo --no-serve`; returns its wall time and the manifest's last run."""
    env = {**os.environ, "RADSAL_DATA_DIR": str(data_dir), "RADSAL_DATABASE_URL": ""}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app.cli.main", "demo", "--no-serve", "--no-progress", *extra],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    manifest = json.loads((data_dir / "demo.json").read_text())
    return wall, dict(manifest["last_run"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="passed to `radsal demo --data`")
    parser.add_argument("extra", nargs="*", help="more `radsal demo` options (after --)")
    args = parser.parse_args()
    extra = [*(["--data", args.data] if args.data else []), *args.extra]
    with tempfile.TemporaryDirectory(prefix="radsal-bench-demo-") as tmp:
        data_dir = Path(tmp) / "data"
        fresh_wall, fresh = run_demo(data_dir, extra)
        rerun_wall, rerun = run_demo(data_dir, extra)
    print(
        f"radsal demo {' '.join(extra) or '(defaults)'}; torch threads: "
        f"{os.environ.get('OMP_NUM_THREADS', 'default')}"
    )
    print(f"{'step':<16}{'fresh s':>10}{'re-run s':>10}")
    for step, seconds in fresh["timings"].items():
        again = rerun["timings"].get(step, 0.0)
        print(f"{step:<16}{seconds:>10.1f}{again:>10.1f}")
    fresh_total = sum(fresh["timings"].values())
    rerun_total = sum(rerun["timings"].values())
    print(f"{'steps total':<16}{fresh_total:>10.1f}{rerun_total:>10.1f}")
    print(f"{'process wall':<16}{fresh_wall:>10.1f}{rerun_wall:>10.1f}")
    print(
        f"re-run / fresh (wall): {rerun_wall / fresh_wall:.3f}; "
        f"steps reused on re-run: {len(rerun['reused'])}/{len(rerun['timings'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
