"""Synthetic CT/MR DICOM: real files (pydicom reads them), HU through the rescale, windows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ml.data import load_image
from ml.data.synthetic import render_case
from ml.data.synthetic_dicom import CT_WINDOWS, intensity_to_hu, make_dicom_dataset, write_case


def test_ct_case_stores_hu_through_rescale_with_lung_and_mediastinum_windows(
    tmp_path: Path,
) -> None:
    img, mask = render_case("nodule", 64, np.random.default_rng(3))
    path = write_case(tmp_path / "ct.dcm", img, "ct")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    assert float(ds.RescaleIntercept) == -1024.0 and float(ds.RescaleSlope) == 1.0
    assert [float(c) for c in ds.WindowCenter] == [-600.0, 40.0]
    hu = ds.pixel_array.astype(np.float64) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(hu, np.clip(np.rint(intensity_to_hu(img)), -1024, 3071))
    assert hu.min() >= -1024 and hu[mask].mean() > hu[~mask].mean()  # the nodule is denser

    loaded = load_image(path)
    assert loaded.source is not None and loaded.source.units == "HU"
    assert loaded.source.window == CT_WINDOWS["lung"] and loaded.source.window_source == "dicom"
    assert loaded.source.values.dtype == np.int16
    np.testing.assert_array_equal(loaded.source.values, hu.astype(np.int16))
    assert loaded.meta["Modality"] == "CT" and "PatientName" not in loaded.meta


def test_mr_case_and_a_dataset_the_loaders_read(tmp_path: Path) -> None:
    root = make_dicom_dataset(tmp_path / "mr", modality="mr", n_train=3, n_val=3, image_size=32)
    rows = list(csv.DictReader((root / "labels.csv").open()))
    assert len(rows) == 6 and all(r["path"].endswith(".dcm") for r in rows)
    assert all((root / r["mask"]).is_file() for r in rows)
    first = load_image(root / rows[0]["path"])
    assert first.modality == "MR" and first.source is not None and first.source.units == ""
    assert first.array.shape == (32, 32) and first.source.values.dtype == np.int16
    with pytest.raises(ValueError, match="modality"):
        write_case(tmp_path / "x.dcm", np.zeros((4, 4)), "pet")


def test_default_windows_for_files_without_window_tags() -> None:
    """No window tags: robust percentiles of the modality values; MONOCHROME1 asks to invert;
    signed pixels keep their sign; a VOI LUT gives the range it covers."""
    from tests.ml.dicom_factory import make_dicom

    stored = np.arange(10000, dtype=np.uint16).reshape(100, 100)
    plain = load_image(make_dicom(stored, slope=1.0, intercept=-1000.0, modality="CT"))
    assert plain.source is not None and plain.source.window_source == "percentile"
    c, w = plain.source.window
    assert abs(c - (4999.5 - 1000.0)) < 1.0 and 9800 < w < 9950
    assert plain.source.units == "HU" and not plain.source.invert
    mono1 = load_image(make_dicom(stored, photometric="MONOCHROME1"))
    assert mono1.source is not None and mono1.source.invert
