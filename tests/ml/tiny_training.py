"""The smallest training run the ml tests build on: a tiny ResNet on the 32-px synthetic set, on
CPU with one thread, for two epochs; each test overrides what it is about."""

from __future__ import annotations

from pathlib import Path

from ml.training import TrainConfig


def tiny_config(data: Path, out: Path, **over: object) -> TrainConfig:
    base: dict[str, object] = dict(
        data=str(data),
        out=str(out),
        arch="resnet_tiny",
        epochs=2,
        image_size=32,
        batch_size=16,
        lr=3e-3,
        augment="none",
        eps=0.03,
        steps=2,
        threads=1,
    )
    base.update(over)
    return TrainConfig(**base)  # type: ignore[arg-type]
