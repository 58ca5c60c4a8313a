"""Dual-BN training under DDP: two CPU processes (gloo) launched by torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.checkpoint import load_checkpoint


@pytest.mark.slow
def test_torchrun_two_processes_dual_bn(synthetic32: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "ml.cli.train",
        "--data",
        str(synthetic32),
        "--mode",
        "dual",
        "--arch",
        "resnet_tiny",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--max-steps-per-epoch",
        "2",
        "--eps",
        "0.01",
        "--steps",
        "1",
        "--augment",
        "none",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = load_checkpoint(out / "best.pt")
    assert loaded.meta["dual_bn"] and loaded.meta["train"]["world_size"] == 2
    assert loaded.meta["train"]["mode"] == "dual"
