"""``radsal saliency`` on trained checkpoints: named arms, the held-out split, statistics with
null baselines, --threads, and the warning about explaining another class than the truth."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest
import torch

from ml.cli import saliency as saliency_cli
from ml.training import TrainConfig, train


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="radsal")
    saliency_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def two_runs(synthetic32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for name, mode in (("nih-std", "standard"), ("nih-dual", "dual")):
        cfg = TrainConfig(
            data=str(synthetic32),
            out=str(root / name),
            mode=mode,
            arch="resnet_tiny",
            epochs=1,
            image_size=32,
            augment="none",
            eps=0.01,
            steps=1,
            threads=1,
        )
        train(cfg, progress=False)
    return root


def test_arms_are_named_and_measured_on_the_heldout_split_with_nulls(
    synthetic32: Path, two_runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "maps"
    argv = ["saliency", "--data", str(synthetic32), "--out", str(out), "--route", "adv"]
    for name in ("nih-std", "nih-dual"):
        argv += ["--checkpoint", str(two_runs / name / "best.pt")]
    argv += ["--limit", "12", "--threads", "2", "--bootstrap", "100", "--no-progress"]
    argv += ["--faithfulness-steps", "0", "--sanity-cases", "0"]
    assert _run(argv) == 0
    assert torch.get_num_threads() == 2
    captured = capsys.readouterr()
    assert "split test: 12 cases" in captured.out  # the folder's test split: held out
    assert (out / "nih-std").is_dir() and (out / "nih-dual-adv").is_dir()  # no best / best-2
    assert "nih-std · shuffled masks" in captured.out and "Wilcoxon p" in captured.out
    stats = json.loads((out / "statistics.json").read_text())
    arms = [a["arm"] for a in stats["arms"]]
    assert arms[:2] == ["nih-std", "nih-dual-adv"]
    assert {"null-random-weights", "null-untrained"} <= set(arms)
    assert (out / "nulls" / "null-untrained" / "raw").is_dir()
    pairs = {(p["a"], p["b"]) for p in stats["paired"]}
    assert ("nih-std", "nih-dual-adv") in pairs and ("null-untrained", "nih-std") in pairs
    with (out / "metrics.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["arm"] == "nih-std"]
    wrong = [r for r in rows if r["label"] != "normal" and r["target"] != r["label"]]
    # A one-epoch model predicts "nodule" for the opacity images too: explaining the predicted
    # class there measures another class's map against the lesion mask, and that is said.
    assert len(wrong) == 4
    assert "WARNING: nih-std: 4 of 8 images with a mask were explained" in captured.err
    assert "--target ground_truth" in captured.err

    argv_named = [*argv, "--label", "A", "--label", "B", "--no-nulls", "--split", "val"]
    argv_named[argv_named.index(str(out))] = str(tmp_path / "named")
    assert _run(argv_named) == 0
    assert "split val: 12 cases" in capsys.readouterr().out
    assert (tmp_path / "named" / "A").is_dir() and (tmp_path / "named" / "B").is_dir()
    assert not (tmp_path / "named" / "nulls").exists()
