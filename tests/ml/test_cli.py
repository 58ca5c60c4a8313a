"""The thin CLIs: train → evaluate → import-checkpoint, and their error messages."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ml.checkpoint import load_checkpoint
from ml.cli import evaluate as evaluate_cli
from ml.cli import import_checkpoint as import_cli
from ml.cli import train as train_cli
from ml.models import create_model
from ml.training import TrainConfig
from ml.training.config import config_defaults


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radsal")
    sub = parser.add_subparsers(dest="command")
    for mod in (train_cli, evaluate_cli, import_cli):
        mod.add_parser(sub)
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


def test_train_then_evaluate(
    synthetic32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    rc = _run(
        [
            "train",
            "--data",
            str(synthetic32),
            "--mode",
            "dual",
            "--arch",
            "resnet_tiny",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "32",
            "--eps",
            "0.01",
            "--steps",
            "1",
            "--augment",
            "none",
            "--threads",
            "1",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["best"] == str(out / "best.pt")
    meta = load_checkpoint(out / "best.pt").meta
    assert meta["dual_bn"] and meta["image_size"] == 32 and meta["train"]["steps"] == 1
    rc = _run(
        [
            "evaluate",
            "--checkpoint",
            str(out / "best.pt"),
            "--data",
            str(synthetic32),
            "--eps",
            "0.01",
            "--steps",
            "1",
            "--bootstrap",
            "20",
            "--no-progress",
            "--out",
            str(tmp_path / "ev"),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "[clean BN]" in text and "[adv BN]" in text and "eps 0.01" in text
    assert (tmp_path / "ev" / "report.json").is_file()


def test_import_checkpoint_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = create_model("resnet_tiny", 2, 1, dual_bn=True).eval()
    sd = {"module." + k.removeprefix("backbone."): v for k, v in seed.state_dict().items()}
    torch.save(sd, tmp_path / "seed.pth")
    rc = _run(
        [
            "import-checkpoint",
            str(tmp_path / "seed.pth"),
            "--class-names",
            "normal,pneumonia",
            "--image-size",
            "32",
            "-o",
            str(tmp_path / "out.pt"),
        ]
    )
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dual_bn"] is True and info["class_names"] == ["normal", "pneumonia"]
    assert load_checkpoint(tmp_path / "out.pt").sha256 == info["sha256"]


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(
        [
            "train",
            "--data",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "o"),
            "--arch",
            "resnet_tiny",
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "radsal train: error:" in err and "missing" in err and "Traceback" not in err
    (tmp_path / "evil.pt").write_bytes(b"not a checkpoint")
    rc = _run(["import-checkpoint", str(tmp_path / "evil.pt"), "-o", str(tmp_path / "x.pt")])
    assert rc == 2 and "corrupt" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_train_cli_defaults_are_train_configs_defaults() -> None:
    """TrainConfig is the one source of training defaults: `radsal train` without options
    builds exactly the dataclass's default config, and its help shows those values."""
    args = _parser().parse_args(["train", "--data", "d", "--out", "o"])
    assert train_cli.config_from_args(args) == TrainConfig(data="d", out="o")
    for name, default in config_defaults().items():
        assert getattr(args, name) == default, name
    # Every option that fills a field takes its default from TrainConfig, none of its own.
    train = train_cli.add_parser(argparse.ArgumentParser().add_subparsers())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for action in train._actions:
        if action.dest in fields and action.dest not in ("data", "out"):
            assert action.default == config_defaults()[action.dest], action.dest
    assert "(default: 224)" in train.format_help()


def test_train_cli_passes_every_option_through_by_name() -> None:
    argv = ["train", "--data", "d", "--out", "o", "--mode", "dual", "--epochs", "3"]
    argv += ["--lr", "0.01", "--workers", "2", "--no-amp", "--no-random-start"]
    argv += ["--normalize-mean", "0.5", "--normalize-std", "0.25", "--label-columns", "a,b"]
    cfg = train_cli.config_from_args(_parser().parse_args(argv))
    assert (cfg.mode, cfg.epochs, cfg.lr, cfg.num_workers) == ("dual", 3, 0.01, 2)
    assert cfg.amp is False and cfg.random_start is False
    assert cfg.normalize == {"mean": [0.5], "std": [0.25]}
    assert cfg.label_columns == ["a", "b"]
    assert cfg.batch_size == TrainConfig.batch_size  # untouched options keep the default
    with pytest.raises(ValueError, match="go together"):
        train_cli.config_from_args(
            _parser().parse_args(["train", "--data", "d", "--out", "o", "--normalize-std", "1"])
        )
