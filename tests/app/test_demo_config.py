"""The demo's settings have one source each: its options' defaults are `DemoOptions`', and its
training configs are ml's `TrainConfig` defaults changed only where the demo means to."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app.cli.main import build_parser
from app.demo.models import train_config, training_key
from app.demo.options import DemoOptions
from ml.training import TrainConfig


def test_demo_cli_defaults_are_demo_options_defaults() -> None:
    args = build_parser().parse_args(["demo"])
    defaults = DemoOptions()
    for field in dataclasses.fields(DemoOptions):
        if field.name != "progress":
            assert getattr(args, field.name) == getattr(defaults, field.name), field.name
    assert args.no_progress is False


def test_demo_training_changes_only_what_it_means_to(tmp_path: Path) -> None:
    options = DemoOptions()
    config = train_config(options, data="d.csv", out=tmp_path, mode="dual", device="cpu")
    base = TrainConfig(data="d.csv", out=str(tmp_path))
    changed = {
        f.name
        for f in dataclasses.fields(TrainConfig)
        if getattr(config, f.name) != getattr(base, f.name)
    }
    assert changed == {
        # the run itself
        "mode", "device",
        # the user's `radsal demo` options
        "arch", "epochs", "image_size", "batch_size",
        # the demo's deliberate choices: a short PGD, a short schedule, no augmentation
        "eps", "steps", "lr", "bn_momentum", "augment",
    }  # fmt: skip
    assert (config.arch, config.epochs, config.eps) == (
        options.arch,
        options.epochs,
        options.attack_eps,
    )


def test_a_trained_models_key_covers_every_training_setting(tmp_path: Path) -> None:
    """A change to any training setting, an ml default included, retrains the demo's model;
    where the run writes and which device it uses do not."""
    config = train_config(DemoOptions(), data="d.csv", out=tmp_path, mode="standard", device="cpu")
    key = training_key(config, "fp")
    assert training_key(dataclasses.replace(config, weight_decay=0.5), "fp") != key
    assert training_key(dataclasses.replace(config, channels_last=False), "fp") != key
    assert training_key(config, "other data") != key
    moved = dataclasses.replace(config, out=str(tmp_path / "elsewhere"), device="cuda")
    assert training_key(moved, "fp") == key
