"""Cases for map comparison: images, display renditions, labels and masks from a data set.

``radsal saliency --data`` accepts the same data sets as training (folder of classes with an
optional ``masks/`` tree, or a CSV with a path column, labels and an optional mask column such
as the NIH subset's ``box_mask``), through :func:`ml.data.build_datasets`. Each case keeps its
original geometry so maps can be drawn back onto the display image pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.data import Sample, build_datasets, load_image
from ml.data.splits import heldout_split, split_options
from ml.explain.pipeline import ModelBatch, prepare_batch

__all__ = ["Case", "CaseSet", "ModelBatch", "heldout_cases", "load_cases", "model_batch"]


@dataclass
class Case:
    """One image: ``label`` is multi-hot over ``CaseSet.class_names``; ``mask`` is H×W bool."""

    case_id: str
    path: Path
    array: np.ndarray
    display: np.ndarray
    label: np.ndarray
    mask: np.ndarray | None


@dataclass
class CaseSet:
    cases: list[Case]
    class_names: list[str]
    multilabel: bool
    root: Path

    def labels_for(self, class_names: Sequence[str]) -> torch.Tensor | None:
        """N×K multi-hot labels in a model's class order (None when no class name matches)."""
        index = {name: i for i, name in enumerate(self.class_names)}
        cols = [index.get(name) for name in class_names]
        if all(c is None for c in cols):
            return None
        out = torch.zeros(len(self.cases), len(class_names))
        for j, c in enumerate(cols):
            if c is not None:
                out[:, j] = torch.tensor([float(case.label[c]) for case in self.cases])
        return out


def _case_id(path: Path, root: Path) -> str:
    base = root if root.is_dir() else root.parent
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = Path(path.name)
    return rel.with_suffix("").as_posix().replace("/", "__")


def _interleave_classes(samples: Sequence[Sample]) -> list[Sample]:
    """Round-robin over classes (in data-set order), so ``--limit N`` shows every class."""

    def key(s: Sample) -> int:
        if isinstance(s.target, int):
            return s.target
        return next((i for i, v in enumerate(s.target) if v > 0.5), -1)

    seen: dict[int, int] = {}
    ranked = []
    for order, s in enumerate(samples):
        k = key(s)
        seen[k] = seen.get(k, -1) + 1
        ranked.append((seen[k], k, order, s))
    return [s for *_, s in sorted(ranked, key=lambda r: r[:3])]


def load_cases(
    data: str | Path,
    *,
    split: str = "val",
    limit: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> CaseSet:
    """``limit`` cases of ``split``, classes interleaved (deterministic), decoded once.

    ``options`` are ``build_datasets`` split arguments (``ml.data.splits.split_options`` of a
    checkpoint's training record), so ``split`` names the same images as in training.
    """
    bundle = build_datasets(
        data, image_size=32, in_channels=1, augment=None, cache=False, **dict(options or {})
    )
    dataset = bundle.split(split)
    samples = _interleave_classes(dataset.samples)
    samples = samples[:limit] if limit is not None else samples
    k = len(bundle.class_names)
    cases = []
    for s in samples:
        img = load_image(s.path)
        label = np.zeros(k, dtype=np.float32)
        if isinstance(s.target, int):
            label[s.target] = 1.0
        else:
            label[:] = np.clip(np.asarray(s.target, dtype=np.float32), 0.0, 1.0)
        mask = None
        if s.mask_path is not None and Path(s.mask_path).is_file():
            m = load_image(s.mask_path).array
            mask = (m if m.ndim == 2 else m.max(axis=2)) > 0.5
        cases.append(
            Case(
                _case_id(Path(s.path), bundle.root),
                Path(s.path),
                img.array,
                img.display,
                label,
                mask,
            )
        )
    return CaseSet(cases, list(bundle.class_names), bundle.multilabel, bundle.root)


def heldout_cases(
    data: str | Path,
    checkpoint_meta: Mapping[str, Any],
    *,
    split: str | None = None,
    limit: int | None = None,
) -> tuple[str, CaseSet]:
    """The split a checkpoint was trained with, rebuilt from what it records, and its cases.

    ``split=None`` takes the checkpoint's held-out split (test when training made one, else
    val), so maps are never measured on the images the model was trained or selected on.
    Returns the split's name with the cases (:func:`load_cases`).
    """
    train_meta = checkpoint_meta.get("train") or {}
    split = split or heldout_split(train_meta)
    return split, load_cases(data, split=split, limit=limit, options=split_options(train_meta))


def model_batch(cases: Sequence[Case], image_size: int, in_channels: int) -> ModelBatch:
    """Letterbox cases (and their masks, identically) into a model's input square."""
    return prepare_batch(
        [c.array for c in cases], image_size, in_channels, masks=[c.mask for c in cases]
    )
