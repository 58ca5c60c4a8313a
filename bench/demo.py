"""`radsal demo`: wall time of each build step; a fresh build side by side with a re-run, and
(with ``--compare-threads``) with a fresh build on two torch threads instead of one.

Runs the real command (a subprocess each time, as a newcomer runs it, with ``--no-serve``) in
temporary data directories: a fresh build, then a re-run on the finished demo, which must reuse
every step. Step seconds come from the demo's own manifest (``demo.json``); the process wall
and CPU time include start-up and imports.

    python bench/demo.py                            # the defaults a newcomer gets
    python bench/demo.py --compare-threads -- --epochs 1
    python bench/demo.py --data ../shared/data/nih-cxr-pneumonia
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    label: str
    wall: float
    cpu: float
    timings: dict[str, float]
    reused: list[str]


def run_demo(label: str, data_dir: Path, extra: list[str]) -> Run:
    """One `radsal demo --no-serve`. CPU seconds (user + system of the child) depend less on
    other load on the machine than wall time, so both are reported."""
    env = {**os.environ, "RADSAL_DATA_DIR": str(data_dir), "RADSAL_DATABASE_URL": ""}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app.cli.main", "demo", "--no-serve", "--no-progress", *extra],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = json.loads((data_dir / "demo.json").read_text())["last_run"]
    return Run(label, wall, cpu, dict(last["timings"]), list(last["reused"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", default=None, help="passed to `radsal demo --data`")
    parser.add_argument(
        "--compare-threads", action="store_true", help="also a fresh build with --threads 2"
    )
    parser.add_argument("extra", nargs="*", help="more `radsal demo` options (after --)")
    args = parser.parse_args()
    extra = [*(["--data", args.data] if args.data else []), *args.extra]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="radsal-bench-demo-") as tmp:
        runs.append(run_demo("fresh", Path(tmp) / "a", [*extra, "--threads", "1"]))
        runs.append(run_demo("re-run", Path(tmp) / "a", [*extra, "--threads", "1"]))
        if args.compare_threads:
            runs.append(run_demo("fresh 2 thr", Path(tmp) / "b", [*extra, "--threads", "2"]))
    print(f"radsal demo {' '.join(extra) or '(defaults)'}, --threads 1 unless noted")
    print(f"{'step':<16}" + "".join(f"{r.label:>13}" for r in runs))
    for step in runs[0].timings:
        print(f"{step:<16}" + "".join(f"{r.timings.get(step, 0.0):>13.1f}" for r in runs))
    rows = [
        ("steps total", [sum(r.timings.values()) for r in runs]),
        ("process wall", [r.wall for r in runs]),
        ("process CPU", [r.cpu for r in runs]),
    ]
    for name, values in rows:
        print(f"{name:<16}" + "".join(f"{v:>13.1f}" for v in values))
    fresh, rerun = runs[0], runs[1]
    print(
        f"re-run / fresh wall: {rerun.wall / fresh.wall:.3f} "
        f"(steps reused: {len(rerun.reused)}/{len(rerun.timings)})"
    )
    if args.compare_threads:
        two = runs[2]
        print(f"2 threads / 1 thread, fresh wall: {two.wall / fresh.wall:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
