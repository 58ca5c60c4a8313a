"""Data sets for training, evaluation and map metrics.

Two layouts (DESIGN.md "Contract"):

* a folder with ``train/``, ``val/`` (optional ``test/``), one sub-folder per class → multi-class
  (softmax/CE). An optional ``masks/`` tree mirroring the image paths gives lesion masks.
* a CSV with a path column and label columns → multi-label (sigmoid/BCE), CheXpert-style values
  1 / 0 / -1 (uncertain) / blank (not mentioned = 0), uncertain handled by a policy
  (``zeros`` as in the paper, ``ones``, or ``ignore`` = masked out of the loss as -1).
  A CSV whose labels are one column of class names (``label`` or ``class``) is multi-class.
  A ``split`` column assigns splits; without one, a seeded split by ``patient_id`` (when
  present, so one patient never lands in two splits) is made.

Every item is ``(C×S×S tensor in [0,1], target)``; ``dataset.samples`` lists the records
(``path``, ``target``, ``mask_path``) that map metrics need.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ml.data.errors import DatasetError
from ml.data.image_io import load_image
from ml.data.splits import group_split, split_digest
from ml.data.transforms import AugmentConfig, build_augment, prepare_input

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetBundle",
    "ImageDataset",
    "Sample",
    "build_datasets",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
_PATH_COLUMNS = ("path", "Path", "file", "filename", "image", "image_path")
_MASK_COLUMNS = ("mask", "mask_path", "box_mask")
_CLASS_COLUMNS = ("label", "class", "Label", "Class")
_SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
_GROUP_COLUMNS = ("patient_id", "PatientID", "patient")
_UNCERTAINTY = ("zeros", "ones", "ignore")
CACHE_LIMIT_BYTES = 1 << 30  # per split: letterboxed float32 tensors kept in memory up to 1 GiB


@dataclass(frozen=True)
class Sample:
    """One image record; ``target`` is a class index, or per-label floats (-1 = ignore)."""

    path: Path
    target: int | list[float]
    mask_path: Path | None = None
    split: str = "train"


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Decodes, letterboxes and (optionally) augments images; caches the letterboxed tensors.

    The cache holds pre-augmentation tensors, so small data sets are decoded once per process
    (``cache=None``: only when the whole split fits in ``CACHE_LIMIT_BYTES``, so a CheXpert-size
    data set is never pulled into memory)
    and augmentation stays random per epoch.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        image_size: int,
        in_channels: int,
        multilabel: bool,
        num_classes: int,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        cache: bool | None = None,
    ) -> None:
        self.samples = list(samples)
        self.image_size = image_size
        self.in_channels = in_channels
        self.multilabel = multilabel
        self.num_classes = num_classes
        self.transform = transform
        if cache is None:
            cache = len(self.samples) * in_channels * image_size**2 * 4 <= CACHE_LIMIT_BYTES
        self.cache = cache
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> torch.Tensor:
        """The letterboxed C×S×S tensor of sample ``index`` without augmentation."""
        if index in self._cache:
            return self._cache[index]
        image = load_image(self.samples[index].path)
        tensor, _ = prepare_input(image.array, self.image_size, self.in_channels)
        if self.cache:
            self._cache[index] = tensor
        return tensor

    def target_tensor(self, index: int) -> torch.Tensor:
        target = self.samples[index].target
        if self.multilabel:
            return torch.tensor(target, dtype=torch.float32)
        return torch.tensor(target, dtype=torch.long)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.load(index)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.target_tensor(index)

    def targets(self) -> torch.Tensor:
        """All targets stacked (N for multi-class, N×K for multi-label)."""
        return (
            torch.stack([self.target_tensor(i) for i in range(len(self))])
            if len(self)
            else (
                torch.zeros(0, self.num_classes)
                if self.multilabel
                else torch.zeros(0, dtype=torch.long)
            )
        )


@dataclass
class DatasetBundle:
    """The splits of one data set plus what a model needs to know about its labels."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
    class_names: list[str]
    multilabel: bool
    root: Path
    layout: str  # "folder" | "csv"
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> ImageDataset:
        ds = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if ds is None:
            raise DatasetError(f"{self.root}: data set has no {name!r} split")
        return ds


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _folder_samples(root: Path) -> tuple[dict[str, list[Sample]], list[str]]:
    train_dir = root / "train"
    class_names = sorted(
        d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith(".")
    )
    if len(class_names) < 2:
        raise DatasetError(f"{train_dir}: need at least two class folders, found {class_names}")
    splits: dict[str, list[Sample]] = {}
    for split in ("train", "val", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            if split == "val":
                raise DatasetError(f"{root}: folder layout needs train/ and val/ (val/ is missing)")
            continue
        extra = sorted(
            d.name for d in split_dir.iterdir() if d.is_dir() and d.name not in class_names
        )
        if extra:
            raise DatasetError(f"{split_dir}: class folders {extra} do not exist in train/")
        samples = []
        for idx, cls in enumerate(class_names):
            cls_dir = split_dir / cls
            if not cls_dir.is_dir():
                continue
            for path in _images_in(cls_dir):
                rel = path.relative_to(root)
                mask = (root / "masks" / rel).with_suffix(".png")
                samples.append(Sample(path, idx, mask if mask.is_file() else None, split))
        if not samples:
            raise DatasetError(f"{split_dir}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
        splits[split] = samples
    return splits, class_names


def _is_label_value(v: str) -> bool:
    return v.strip() in ("", "1", "0", "-1", "1.0", "0.0", "-1.0")


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    if p.is_absolute():
        return p
    for candidate in (base / p, base.parent / p):
        if candidate.exists():
            return candidate
    return base / p


def _csv_samples(
    csv_path: Path,
    *,
    path_column: str | None,
    label_columns: Sequence[str] | None,
    uncertainty: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    mask_split: str,
    stratify: bool,
) -> tuple[dict[str, list[Sample]], list[str], bool, dict[str, Any]]:
    if uncertainty not in _UNCERTAINTY:
        raise DatasetError(
            f"unknown uncertainty policy {uncertainty!r}; choose from {_UNCERTAINTY}"
        )
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: cannot read CSV ({exc})") from None
    if not rows:
        raise DatasetError(f"{csv_path}: CSV has no rows")
    pcol = path_column or next((c for c in _PATH_COLUMNS if c in columns), None)
    if pcol is None or pcol not in columns:
        raise DatasetError(
            f"{csv_path}: no image path column "
            f"(looked for {path_column or ', '.join(_PATH_COLUMNS)}); "
            f"columns are: {', '.join(columns)}"
        )
    mcol = next((c for c in _MASK_COLUMNS if c in columns), None)
    reserved = {pcol, "split", mcol, *_GROUP_COLUMNS}
    multilabel: bool
    class_col: str | None = None
    if label_columns:
        missing = [c for c in label_columns if c not in columns]
        if missing:
            raise DatasetError(
                f"{csv_path}: label column(s) {', '.join(missing)} not found; columns are: "
                f"{', '.join(columns)}"
            )
        labels = list(label_columns)
        if len(labels) == 1 and not all(_is_label_value(r[labels[0]]) for r in rows):
            class_col, multilabel, labels = labels[0], False, []
        else:
            multilabel = True
    else:
        named = [
            c
            for c in _CLASS_COLUMNS
            if c in columns and not all(_is_label_value(r[c]) for r in rows)
        ]
        if named:
            class_col, multilabel = named[0], False
            labels = []
        else:
            labels = [
                c
                for c in columns
                if c not in reserved
                and c not in _CLASS_COLUMNS
                and all(_is_label_value(r[c]) for r in rows)
            ]
            if not labels and "label" in columns:
                class_col, multilabel = "label", False
            elif not labels:
                raise DatasetError(
                    f"{csv_path}: no label columns found (expected 1/0/-1/blank columns or a "
                    f"'label' column of class names); columns are: {', '.join(columns)}"
                )
            else:
                multilabel = True
    if class_col is not None:
        class_names = sorted({r[class_col].strip() for r in rows if r[class_col].strip()})
        if len(class_names) < 2:
            raise DatasetError(f"{csv_path}: column {class_col!r} has fewer than two classes")
    else:
        class_names = labels

    base = csv_path.parent
    if "split" in columns:
        raw_splits = [r["split"].strip().lower() for r in rows]
        bad = sorted({s for s in raw_splits if s not in _SPLIT_ALIASES})
        if bad:
            raise DatasetError(f"{csv_path}: unknown split value(s) {bad}; use train/val/test")
        splits_of = [_SPLIT_ALIASES[s] for s in raw_splits]
        record: dict[str, Any] = {"method": "column"}
    else:
        gcol = next((c for c in _GROUP_COLUMNS if c in columns), None)
        keys = [r[gcol] if gcol else r[pcol] for r in rows]
        strata = [
            r[class_col].strip() if class_col else "|".join(r[c].strip() for c in labels)
            for r in rows
        ]
        masked = [bool(mcol and (r.get(mcol) or "").strip()) for r in rows]
        splits_of, record = group_split(
            keys,
            strata,
            masked,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=seed,
            mask_split=mask_split,
            stratify=stratify,
        )
        record["group_column"] = gcol

    out: dict[str, list[Sample]] = {}
    missing_files: list[str] = []
    for row, split in zip(rows, splits_of, strict=True):
        path = _resolve(base, row[pcol].strip())
        if not path.is_file():
            missing_files.append(str(path))
            continue
        target: int | list[float]
        if class_col is not None:
            name = row[class_col].strip()
            if not name:
                raise DatasetError(f"{csv_path}: empty {class_col!r} for {row[pcol]}")
            target = class_names.index(name)
        else:
            target = []
            for c in labels:
                v = row[c].strip()
                value = float(v) if v else 0.0
                if value == -1.0:
                    value = {"zeros": 0.0, "ones": 1.0, "ignore": -1.0}[uncertainty]
                target.append(value)
        mask = row.get(mcol, "").strip() if mcol else ""
        mask_path = _resolve(base, mask) if mask else None
        out.setdefault(split, []).append(Sample(path, target, mask_path, split))
    if missing_files:
        more = f" (+{len(missing_files) - 3} more)" if len(missing_files) > 3 else ""
        raise DatasetError(
            f"{csv_path}: {len(missing_files)} image file(s) not found: "
            f"{', '.join(missing_files[:3])}{more}"
        )
    return out, class_names, multilabel, record


def build_datasets(
    path: str | Path,
    image_size: int,
    in_channels: int,
    augment: AugmentConfig | str | None = "light",
    *,
    path_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    uncertainty: str = "zeros",
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    mask_split: str = "auto",
    stratify: bool = True,
    seed: int = 0,
    cache: bool | None = None,
) -> DatasetBundle:
    """Open a folder-of-classes tree or a CSV (see module doc) as train/val(/test) datasets.

    Augmentation applies to ``train`` only. A directory without ``train/`` but with a single
    ``*.csv`` (or ``labels.csv``) is read as that CSV. A CSV without a ``split`` column is
    split by :func:`ml.data.splits.group_split` (patient-disjoint, stratified, masked images
    held out); ``bundle.info["split"]`` records how, for the checkpoint.
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: data path does not exist")
    if root.is_dir() and (root / "train").is_dir():
        splits, class_names = _folder_samples(root)
        multilabel, layout = False, "folder"
        record: dict[str, Any] = {"method": "folder"}
    else:
        if root.is_dir():
            csvs = (
                [root / "labels.csv"]
                if (root / "labels.csv").is_file()
                else sorted(root.glob("*.csv"))
            )
            if len(csvs) != 1:
                raise DatasetError(
                    f"{root}: expected train/ and val/ class folders or one labels CSV "
                    f"(found {len(csvs)} CSV files)"
                )
            csv_path = csvs[0]
        else:
            csv_path = root
        splits, class_names, multilabel, record = _csv_samples(
            csv_path,
            path_column=path_column,
            label_columns=label_columns,
            uncertainty=uncertainty,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=seed,
            mask_split=mask_split,
            stratify=stratify,
        )
        layout = "csv"
        for required in ("train", "val"):
            if not splits.get(required):
                raise DatasetError(f"{csv_path}: no rows in the {required!r} split")
    common = {
        "image_size": image_size,
        "in_channels": in_channels,
        "multilabel": multilabel,
        "num_classes": len(class_names),
        "cache": cache,
    }
    train = ImageDataset(splits["train"], transform=build_augment(augment), **common)  # type: ignore[arg-type]
    val = ImageDataset(splits["val"], **common)  # type: ignore[arg-type]
    test = ImageDataset(splits["test"], **common) if splits.get("test") else None  # type: ignore[arg-type]
    info = {k: len(v) for k, v in splits.items()}
    base = root if root.is_dir() else root.parent
    record.update(
        sizes=info,
        masked={k: sum(s.mask_path is not None for s in v) for k, v in splits.items()},
        heldout="test" if test is not None else "val",
        digest=split_digest(
            [(_relative(s.path, base), name) for name, v in splits.items() for s in v]
        ),
    )
    return DatasetBundle(
        train, val, test, class_names, multilabel, root, layout, {"sizes": info, "split": record}
    )


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def class_counts(dataset: ImageDataset) -> np.ndarray:
    """Positives per class (multi-label) or items per class (multi-class)."""
    t = dataset.targets()
    if dataset.multilabel:
        return (t == 1).sum(0).numpy()
    return np.bincount(t.numpy(), minlength=dataset.num_classes)
