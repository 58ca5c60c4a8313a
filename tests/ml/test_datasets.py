"""Data sets (folder, CSV, CheXpert policies), letterboxing and the synthetic generator."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.data import DatasetError, ImageLoadError, build_datasets, prepare_input
from ml.data.synthetic import make_lesion_dataset


def test_synthetic_dataset_layout_masks_and_determinism(tmp_path: Path) -> None:
    a = make_lesion_dataset(tmp_path / "a", n_train=6, n_val=3, image_size=32, seed=5)
    b = make_lesion_dataset(tmp_path / "b", n_train=6, n_val=3, image_size=32, seed=5)
    rows = list(csv.DictReader((a / "labels.csv").open()))
    assert [r["label"] for r in rows[:3]] == ["normal", "nodule", "opacity"]
    assert {r["split"] for r in rows} == {"train", "val"}
    for r in rows:
        img = np.array(Image.open(a / r["path"]))
        mask = np.array(Image.open(a / r["mask"]))
        assert img.shape == (32, 32) and mask.shape == (32, 32)
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask.any()) == (r["label"] != "normal")
        assert np.array_equal(img, np.array(Image.open(b / r["path"])))
    # A nodule is small and round, an opacity large: mask areas say so.
    areas = {k: [] for k in ("nodule", "opacity")}  # type: dict[str, list[int]]
    for r in rows:
        if r["label"] in areas:
            areas[r["label"]].append(int((np.array(Image.open(a / r["mask"])) > 0).sum()))
    assert max(areas["nodule"]) < min(areas["opacity"])


def test_folder_layout_gives_multiclass_with_masks(synthetic32: Path) -> None:
    bundle = build_datasets(synthetic32, 32, 1, augment="none")
    assert bundle.layout == "folder" and not bundle.multilabel
    assert bundle.class_names == ["nodule", "normal", "opacity"]
    assert len(bundle.train) == 150 and len(bundle.val) == 60 and bundle.test is not None
    x, y = bundle.train[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    assert y.dtype == torch.long
    rec = bundle.train.samples[0]
    assert rec.path.is_file() and rec.mask_path is not None and rec.mask_path.is_file()
    assert bundle.class_names[rec.target] == rec.path.parent.name  # type: ignore[index]


def test_csv_multiclass_from_label_names(synthetic32: Path) -> None:
    bundle = build_datasets(synthetic32 / "labels.csv", 32, 3, augment="none")
    assert bundle.layout == "csv" and not bundle.multilabel
    assert len(bundle.train) == 150 and bundle.train[0][0].shape == (3, 32, 32)


def _write_chexpert(tmp_path: Path) -> Path:
    img = tmp_path / "img"
    img.mkdir()
    rows = []
    values = [("1", "0", ""), ("-1", "1", "0"), ("0", "-1", "1"), ("", "", "-1")]
    for i, (a, b, c) in enumerate(values * 2):
        Image.fromarray(np.full((10, 20), i * 20, np.uint8)).save(img / f"{i}.png")
        rows.append(
            {
                "Path": f"img/{i}.png",
                "Sex": "F",
                "Age": str(40 + i),
                "Atelectasis": a,
                "Edema": b,
                "Effusion": c,
                "split": "train" if i < 4 else "valid",
            }
        )
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("zeros", [0.0, 1.0, 0.0]), ("ones", [1.0, 1.0, 0.0]), ("ignore", [-1.0, 1.0, 0.0])],
)
def test_chexpert_csv_uncertainty_policies(
    tmp_path: Path, policy: str, expected: list[float]
) -> None:
    bundle = build_datasets(_write_chexpert(tmp_path), 16, 1, augment="none", uncertainty=policy)
    assert bundle.multilabel and bundle.class_names == ["Atelectasis", "Edema", "Effusion"]
    assert len(bundle.train) == 4 and len(bundle.val) == 4
    _, y = bundle.train[1]
    assert y.tolist() == expected
    assert bundle.train[0][1].tolist() == [1.0, 0.0, 0.0]  # blank = not mentioned = 0


def test_csv_errors_name_the_file_and_columns(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("image_name,finding\na.png,x\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: no image path column.*image_name, finding"):
        build_datasets(bad, 16, 1)
    with pytest.raises(DatasetError, match=r"label column.*Nope not found"):
        build_datasets(_write_chexpert(tmp_path), 16, 1, label_columns=["Nope"])
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label,split\nghost.png,a,train\nghost2.png,b,val\n")
    with pytest.raises(DatasetError, match=r"2 image file\(s\) not found: .*ghost\.png"):
        build_datasets(missing, 16, 1)
    with pytest.raises(DatasetError, match="does not exist"):
        build_datasets(tmp_path / "nope", 16, 1)


def test_corrupt_image_in_dataset_names_the_file(tmp_path: Path) -> None:
    root = make_lesion_dataset(tmp_path / "d", n_train=3, n_val=3, image_size=16)
    victim = next((root / "train" / "normal").iterdir())
    victim.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    bundle = build_datasets(root, 16, 1, augment="none")
    idx = next(i for i, s in enumerate(bundle.train.samples) if s.path == victim)
    with pytest.raises(ImageLoadError, match=victim.name):
        bundle.train[idx]


def test_prepare_input_letterbox_round_trip() -> None:
    arr = np.zeros((20, 40), np.float32)
    arr[:, 30:] = 1.0  # right quarter bright
    x, box = prepare_input(arr, 16, 1)
    assert x.shape == (1, 16, 16)
    assert box.side == 40 and box.pad_top == 10 and box.pad_left == 0
    assert float(x[0, :3].max()) == 0.0 and float(x[0, -3:].max()) == 0.0  # padding rows
    back = box.to_original(x[0])
    assert back.shape == (20, 40)
    assert back[:, 33:].mean() > 0.9 and back[:, :26].mean() < 0.05
    rgb, _ = prepare_input(np.stack([arr] * 3, axis=2), 16, 1)
    assert torch.allclose(rgb, x, atol=1e-5)  # gray RGB → luminance equals gray
    three, _ = prepare_input(arr, 16, 3)
    assert three.shape == (3, 16, 16) and torch.equal(three[0], three[2])


def test_augmentation_changes_train_items_only(synthetic32: Path) -> None:
    bundle = build_datasets(synthetic32, 32, 1, augment="paper")
    torch.manual_seed(1)
    a, _ = bundle.train[0]
    b, _ = bundle.train[0]
    assert not torch.equal(a, b)
    assert torch.equal(bundle.val[0][0], bundle.val[0][0])


def test_real_nih_csv_splits_by_patient(nih_dir: Path) -> None:
    bundle = build_datasets(nih_dir, 64, 1, augment="none")
    assert bundle.class_names == ["normal", "pneumonia"] and not bundle.multilabel
    assert len(bundle.train) + len(bundle.val) == 400
    rows = {r["file"]: r for r in csv.DictReader((nih_dir / "labels.csv").open())}

    def patients(ds: object) -> set[str]:
        return {rows[f"images/{s.path.name}"]["patient_id"] for s in ds.samples}  # type: ignore[attr-defined]

    assert not patients(bundle.train) & patients(bundle.val)
    assert sum(s.mask_path is not None for s in bundle.train.samples + bundle.val.samples) == 43
    x, y = bundle.val[0]
    assert x.shape == (1, 64, 64) and int(y) in (0, 1)


def test_marker_shortcut_marks_only_its_class(tmp_path: Path) -> None:
    root = make_lesion_dataset(
        tmp_path / "m", n_train=6, n_val=0, image_size=32, marker_class="opacity"
    )
    for row in csv.DictReader((root / "labels.csv").open()):
        corner = np.array(Image.open(root / row["path"]))[1:3, 1:3]
        assert (corner.min() > 230) == (row["label"] == "opacity")
