"""Turn a seed-layout state dict into a radsal/1 file (``radsal import-checkpoint``)."""

from __future__ import annotations

from pathlib import Path

from ml.checkpoint.io import load_checkpoint, save_checkpoint

__all__ = ["import_checkpoint"]


def import_checkpoint(
    src: str | Path,
    out: str | Path,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    image_size: int | None = None,
    in_channels: int | None = None,
) -> tuple[str, dict[str, object]]:
    """Load ``src`` (any supported layout), verify it, write radsal/1 to ``out``.

    Returns (sha256 of the new file, its metadata). The weights are copied unchanged, so the
    new file reproduces the source model's outputs exactly.
    """
    loaded = load_checkpoint(
        src,
        arch=arch,
        num_classes=num_classes,
        class_names=class_names,
        image_size=image_size,
        in_channels=in_channels,
    )
    meta = loaded.meta
    train = dict(meta["train"])
    train.setdefault("imported_from_sha256", loaded.sha256)
    digest = save_checkpoint(
        out,
        loaded.model,
        arch=meta["arch"],
        num_classes=meta["num_classes"],
        class_names=meta["class_names"],
        in_channels=meta["in_channels"],
        image_size=meta["image_size"],
        normalize=meta["normalize"],
        dual_bn=meta["dual_bn"],
        train=train,
    )
    return digest, {**meta, "train": train}
