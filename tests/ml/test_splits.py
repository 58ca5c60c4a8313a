"""Splits a map study can trust: patient-disjoint, stratified, masked images held out, recorded
in the checkpoint and rebuilt by ``evaluate`` (which defaults to the held-out split)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.data import build_datasets
from ml.evaluation import evaluate_checkpoint
from ml.training import TrainConfig, train


def _patients_csv(root: Path, *, n_patients: int = 60, masked: int = 10) -> Path:
    """Two images per patient, class ``b`` one patient in three, the first ``masked``
    ``b`` patients with a mask on both images; no split column."""
    root.mkdir(parents=True, exist_ok=True)
    img = np.zeros((8, 8), np.uint8)
    Image.fromarray(img).save(root / "m.png")
    rows = []
    n_masked = 0
    for p in range(n_patients):
        label = "b" if p % 3 == 0 else "a"
        has_mask = label == "b" and n_masked < masked
        n_masked += has_mask
        for k in range(2):
            name = f"p{p:03d}_{k}.png"
            Image.fromarray(img + p).save(root / name)
            rows.append(
                {
                    "path": name,
                    "label": label,
                    "patient_id": f"P{p}",
                    "mask": "m.png" if has_mask else "",
                }
            )
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def _patients(ds: object) -> set[str]:
    return {s.path.name.split("_")[0] for s in ds.samples}  # type: ignore[attr-defined]


def test_split_is_patient_disjoint_stratified_and_keeps_masks_in_test(tmp_path: Path) -> None:
    root = _patients_csv(tmp_path / "d", masked=6)
    bundle = build_datasets(root, 8, 1, augment=None, val_fraction=0.2, test_fraction=0.2)
    train, val, test = bundle.train, bundle.val, bundle.split("test")
    assert not _patients(train) & _patients(val)
    assert not _patients(train) & _patients(test)
    assert not _patients(val) & _patients(test)
    assert sum(s.mask_path is not None for s in test.samples) == 12  # all 6 masked patients
    assert all(s.mask_path is None for s in train.samples + val.samples)
    # Stratified: of 40 a and 20 b patients, 20 % each go to val and to test (a: 8 + 8,
    # b: 4 + 4); the 6 masked b patients all go to test, the surplus of 2 comes out of b's
    # validation share, so train keeps exactly its 60 % of each class.
    groups = {name: len(_patients(bundle.split(name))) for name in ("train", "val", "test")}
    assert groups == {"train": 36, "val": 10, "test": 14}
    train_b = Counter(s.target for s in train.samples)[bundle.class_names.index("b")]
    assert train_b == 2 * 12  # 12 of the 20 b patients
    record = bundle.info["split"]
    assert record["heldout"] == "test" and record["mask_split"] == "test"
    assert record["masked"] == {"train": 0, "val": 0, "test": 12}
    again = build_datasets(root, 8, 1, augment=None, val_fraction=0.2, test_fraction=0.2)
    assert again.info["split"]["digest"] == record["digest"]
    other = build_datasets(root, 8, 1, augment=None, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert other.info["split"]["digest"] != record["digest"]


@pytest.mark.parametrize(("mask_split", "where"), [("val", "val"), ("auto", "val")])
def test_masks_go_to_validation_without_a_test_split(
    tmp_path: Path, mask_split: str, where: str
) -> None:
    root = _patients_csv(tmp_path / "d")
    bundle = build_datasets(root, 8, 1, augment=None, mask_split=mask_split)
    assert bundle.test is None and bundle.info["split"]["heldout"] == "val"
    assert sum(s.mask_path is not None for s in bundle.split(where).samples) == 20


def test_masks_on_most_images_fall_back_to_a_plain_split_and_say_so(tmp_path: Path) -> None:
    root = _patients_csv(tmp_path / "d", masked=20)  # every b patient: more than held out
    bundle = build_datasets(root, 8, 1, augment=None, val_fraction=0.1)
    record = bundle.info["split"]
    assert record["mask_split"] == "none" and "masks ignored" in record["note"]
    forced = build_datasets(root, 8, 1, augment=None, val_fraction=0.1, mask_split="val")
    assert all(s.mask_path is None for s in forced.train.samples)


def test_real_nih_boxes_all_land_in_the_test_split(nih_dir: Path) -> None:
    bundle = build_datasets(nih_dir, 32, 1, augment=None, val_fraction=0.2, test_fraction=0.2)
    rows = {r["file"]: r for r in csv.DictReader((nih_dir / "labels.csv").open())}

    def patients(name: str) -> set[str]:
        ds = bundle.split(name)
        return {rows[f"images/{s.path.name}"]["patient_id"] for s in ds.samples}

    assert not patients("train") & patients("test") and not patients("val") & patients("test")
    assert not patients("train") & patients("val")
    assert bundle.info["split"]["masked"] == {"train": 0, "val": 0, "test": 43}
    share = {n: np.mean([s.target for s in bundle.split(n).samples]) for n in ("train", "val")}
    assert abs(share["train"] - 0.5) < 0.05  # stratified: train keeps the 50 % pneumonia


def test_checkpoint_records_the_split_and_evaluate_uses_its_heldout_split(
    synthetic32: Path, tmp_path: Path
) -> None:
    rows = list(csv.DictReader((synthetic32 / "labels.csv").open()))
    data = tmp_path / "data"
    data.mkdir()
    table = [
        {"path": str(synthetic32 / r["path"]), "label": r["label"], "patient_id": str(i // 2)}
        for i, r in enumerate(rows)
    ]
    with (data / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    cfg = TrainConfig(
        data=str(data),
        out=str(tmp_path / "run"),
        arch="resnet_tiny",
        epochs=1,
        image_size=32,
        batch_size=32,
        augment="none",
        test_fraction=0.25,
        threads=1,
    )
    res = train(cfg, progress=False)
    report = evaluate_checkpoint(res.best_path, data, eps=[], n_bootstrap=10, progress=False)
    bundle = build_datasets(data, 32, 1, augment=None, test_fraction=0.25)
    assert report["split"] == "test" and report["n_images"] == len(bundle.split("test"))
    assert report["split_check"] == "same split as in training"
    assert report["train"]["split"]["digest"] == bundle.info["split"]["digest"]
    # The data set changed under the checkpoint: evaluate says the split is no longer the same.
    with (data / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table[:-20])
    changed = evaluate_checkpoint(res.best_path, data, eps=[], n_bootstrap=10, progress=False)
    assert changed["split_check"].startswith("the data set's split differs")
