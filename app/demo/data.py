"""The demo's data: synthetic lesions or the user's own images, as one normalised CSV.

ml's data loaders read the CSV (path, split, label, mask; absolute paths) for training and
evaluation; the study's cases are drawn from its test split. A user's folder or CSV is
normalised here once, so every later step sees one format whatever the source was, and a
data set's licence attribution travels with it to the study's instructions.
"""

from __future__ import annotations

import csv
import hashlib
import random
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from app.demo.manifest import fingerprint
from app.demo.options import DataError
from ml.data.synthetic import make_lesion_dataset
from ml.data.synthetic_dicom import make_dicom_dataset

NIH_ATTRIBUTION = (
    "Images: NIH ChestX-ray8/14, provided by the NIH Clinical Center "
    "(https://nihcc.app.box.com/v/ChestXray-NIHCC). Wang X, Peng Y, Lu L, Lu Z, Bagheri M, "
    "Summers RM. ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on "
    "Weakly-Supervised Classification and Localization of Common Thorax Diseases. "
    "IEEE CVPR 2017, pp. 3462-3471."
)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".tif", ".tiff"})
FIELDS = ("path", "split", "label", "mask")


def prepare_dataset(
    out_dir: Path,
    *,
    source: Path | None,
    n_train: int,
    n_test: int,
    image_size: int,
    seed: int,
    modality: str = "xray",
) -> dict[str, Any]:
    """Write ``out_dir/demo.csv`` and describe it (classes, split sizes, attribution).

    ``source`` None generates synthetic lesions (with masks) into ``out_dir``; otherwise the
    user's folder or CSV is read where it lies: images are never copied. ``modality`` "ct" or
    "mr" writes the synthetic cases as DICOM files (``ml.data.synthetic_dicom``).
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if source is None:
        n_val = max(16, n_train // 5)
        make = (
            make_lesion_dataset
            if modality == "xray"
            else partial(make_dicom_dataset, modality=modality)
        )
        made = make(
            out_dir, n_train=n_train, n_val=n_val, n_test=n_test, image_size=image_size, seed=seed
        )
        root = Path(made)
        rows = _read_rows(root / "labels.csv", root)
        attribution = ""
    else:
        rows, attribution = read_user_data(source, seed=seed)
    csv_path = out_dir / "demo.csv"
    _write_rows(csv_path, rows)
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    if counts["train"] == 0 or counts["val"] == 0:
        raise DataError(f"The data set needs train and val images; found {counts}.")
    classes = sorted({r["label"] for r in rows})
    if len(classes) < 2:
        raise DataError(f"The data set needs at least two classes; found {classes}.")
    return {
        "csv": str(csv_path),
        "classes": classes,
        "counts": counts,
        "source": "synthetic" if source is None else str(source),
        "modality": modality if source is None else "",
        "attribution": attribution,
        "fingerprint": fingerprint(rows),
    }


def _read_rows(csv_path: Path, root: Path) -> list[dict[str, str]]:
    """Rows of a labels CSV with absolute paths (path, split, label, mask)."""
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        mask = row.get("mask") or ""
        out.append(
            {
                "path": str((root / row["path"]).resolve()),
                "split": row.get("split", "") or "train",
                "label": str(row["label"]),
                "mask": str((root / mask).resolve()) if mask else "",
            }
        )
    return out


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_user_data(source: Path, *, seed: int) -> tuple[list[dict[str, str]], str]:
    """The user's images as (path, split, label, mask) rows, plus an attribution line.

    Accepts a folder with train/ and val/ (optional test/) holding one folder per class, or a
    CSV (or a folder holding labels.csv) with a path column (`path` or `file`), a label column
    (`class`, `label`) and optional `split`, `mask`/`box_mask` and `patient_id` columns. Without
    a split column the images are split 70/15/15 by patient (or by image), reproducibly.
    """
    source = source.expanduser().resolve()
    if not source.exists():
        raise DataError(f"--data {source}: no such file or folder.")
    if source.is_dir() and (source / "train").is_dir() and (source / "val").is_dir():
        return _folder_rows(source), _attribution(source)
    csv_path = source if source.is_file() else source / "labels.csv"
    if not csv_path.is_file():
        raise DataError(
            f"--data {source}: expected a folder with train/ and val/ class folders, "
            "a CSV file, or a folder holding labels.csv."
        )
    root = csv_path.parent
    with csv_path.open(newline="") as fh:
        table = list(csv.DictReader(fh))
    if not table:
        raise DataError(f"{csv_path} has no rows.")
    columns = set(table[0])
    path_col = next((c for c in ("path", "file", "filename", "image") if c in columns), None)
    label_col = next((c for c in ("class", "label", "finding") if c in columns), None)
    if path_col is None or label_col is None:
        raise DataError(
            f"{csv_path}: needs a path column (path/file) and a label column (class/label); "
            f"found {sorted(columns)}."
        )
    mask_col = next((c for c in ("mask", "box_mask") if c in columns), None)
    rows = []
    for row in table:
        group = row.get("patient_id") or row[path_col]
        split = (row.get("split") or "").strip() or _split_for(group, seed)
        mask = (row.get(mask_col) or "").strip() if mask_col else ""
        rows.append(
            {
                "path": str((root / row[path_col]).resolve()),
                "split": split,
                "label": str(row[label_col]).strip(),
                "mask": str((root / mask).resolve()) if mask else "",
            }
        )
    missing = [r["path"] for r in rows if not Path(r["path"]).is_file()]
    if missing:
        raise DataError(f"{len(missing)} image(s) listed in {csv_path} are missing: {missing[0]}")
    return rows, _attribution(root)


def _split_for(group: str, seed: int) -> str:
    """70/15/15 by a stable hash, so one patient's images never straddle two splits."""
    bucket = int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "val" if bucket < 85 else "test"


def _folder_rows(root: Path) -> list[dict[str, str]]:
    rows = []
    for split in ("train", "val", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for image in sorted(class_dir.iterdir()):
                if image.suffix.lower() in IMAGE_SUFFIXES:
                    rows.append(
                        {"path": str(image), "split": split, "label": class_dir.name, "mask": ""}
                    )
    return rows


def _attribution(root: Path) -> str:
    """The credit line a data set's licence asks for, shown to raters with its images."""
    for name in ("LICENSE-NOTES.md", "LICENSE.md", "NOTICE", "ATTRIBUTION.md", "README.md"):
        path = root / name
        if path.is_file():
            text = path.read_text(errors="replace")
            if "ChestX-ray8" in text or "NIH Clinical Center" in text:
                return NIH_ATTRIBUTION
            return f"Images: see {name} of the data set for their source and licence."
    return ""


def choose_study_rows(rows: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    """`n` cases the models never trained on: the test split, topped up from val when it is
    too small; classes interleaved and cases with a lesion mask first, so the study shows
    every class and has maps that mask metrics can measure."""
    pool = [r for r in rows if r["split"] == "test"]
    if len(pool) < n:
        pool += [r for r in rows if r["split"] == "val"]
    rng = random.Random(seed)
    by_class: dict[str, list[dict[str, str]]] = {}
    for row in sorted(pool, key=lambda r: r["path"]):
        by_class.setdefault(row["label"], []).append(row)
    for members in by_class.values():
        rng.shuffle(members)
        # Stable: test before val, then cases with a mask first.
        members.sort(key=lambda r: (r["split"] != "test", not r["mask"]))
    chosen: list[dict[str, str]] = []
    while len(chosen) < n and any(by_class.values()):
        for members in by_class.values():
            if members and len(chosen) < n:
                chosen.append(members.pop(0))
    return chosen
