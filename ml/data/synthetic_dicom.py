"""Synthetic CT and MR cases written as real DICOM, so CT/MR reading can be tried end to end.

The phantom is :func:`ml.data.synthetic.render_case`'s (body, two lung fields, ribs,
mediastinum, a lesion with its exact mask); this module only turns its [0, 1] intensities into
what a scanner would store:

* **CT** — Hounsfield units (air −1000, lung ≈ −850, soft tissue ≈ 40, rib ≈ 700; a nodule
  reaches soft-tissue density, a diffuse opacity ground glass), stored as unsigned 12-bit
  values with ``RescaleIntercept`` −1024 / ``RescaleSlope`` 1, and two window presets in the
  header (lung first, then mediastinum), as a CT console writes them;
* **MR** — unsigned 16-bit signal with no rescale and one window from the image's own range.

Each case is a one-slice series of its own study (CT Image Storage / MR Image Storage SOP
classes, explicit VR little endian, patient position and orientation, pixel spacing), so
pydicom and other DICOM tools read the files; identifiers are synthetic ("SYNTH^…").
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from ml.data.synthetic import CLASSES, render_case

__all__ = ["CT_WINDOWS", "DICOM_MODALITIES", "intensity_to_hu", "make_dicom_dataset", "write_case"]

DICOM_MODALITIES = ("ct", "mr")
# (centre, width) in HU, in the order the header lists them: the first is the default.
CT_WINDOWS = {"lung": (-600.0, 1500.0), "mediastinum": (40.0, 400.0)}
_CT_INTERCEPT = -1024.0

# Piecewise-linear intensity → HU through the phantom's tissue levels.
_LEVELS = np.array([0.0, 0.08, 0.27, 0.6, 0.75, 1.0])
_HU = np.array([-1000.0, -1000.0, -850.0, 40.0, 200.0, 700.0])


def intensity_to_hu(img01: np.ndarray) -> np.ndarray:
    """The phantom's [0, 1] intensities as Hounsfield units (float)."""
    return np.interp(np.asarray(img01, dtype=np.float64), _LEVELS, _HU)


def _dataset(modality: str, rows: int, cols: int, index: int) -> Dataset:
    sop_class = CTImageStorage if modality == "ct" else MRImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = f"SYNTH^{index:05d}"
    ds.PatientID = f"SYNTH{index:05d}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "radsal synthetic"
    ds.Modality = modality.upper()
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    spacing = 350.0 / max(rows, cols)  # a 35 cm field of view
    ds.PixelSpacing = [round(spacing, 4), round(spacing, 4)]
    ds.SliceThickness = 1.0 if modality == "ct" else 3.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    return ds


def write_case(path: Path, img01: np.ndarray, modality: str, index: int = 0) -> Path:
    """Write one phantom image as a CT or MR DICOM file at ``path``."""
    if modality not in DICOM_MODALITIES:
        raise ValueError(f"modality must be one of {DICOM_MODALITIES}, got {modality!r}")
    rows, cols = img01.shape
    ds = _dataset(modality, rows, cols, index)
    if modality == "ct":
        stored = np.clip(np.rint(intensity_to_hu(img01) - _CT_INTERCEPT), 0, 4095)
        ds.BitsStored, ds.HighBit = 12, 11
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _CT_INTERCEPT, 1.0, "HU"
        ds.KVP = 120
        ds.WindowCenter = [c for c, _ in CT_WINDOWS.values()]
        ds.WindowWidth = [w for _, w in CT_WINDOWS.values()]
        ds.WindowCenterWidthExplanation = [name.upper() for name in CT_WINDOWS]
    else:
        stored = np.clip(np.rint(np.asarray(img01, dtype=np.float64) * 1200.0), 0, 65535)
        ds.BitsStored, ds.HighBit = 16, 15
        ds.MagneticFieldStrength = 1.5
        ds.EchoTime, ds.RepetitionTime = 90.0, 3000.0
        lo, hi = (float(v) for v in np.percentile(stored, [1.0, 99.0]))
        ds.WindowCenter, ds.WindowWidth = round((lo + hi) / 2.0, 1), round(max(hi - lo, 1.0), 1)
    ds.PixelData = stored.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_dicom_dataset(
    out_dir: Path,
    *,
    modality: str,
    n_train: int,
    n_val: int,
    n_test: int = 0,
    image_size: int = 64,
    seed: int = 0,
    classes: tuple[str, ...] = CLASSES,
    lesion_contrast: float = 1.0,
) -> Path:
    """:func:`ml.data.synthetic.make_lesion_dataset`'s layout with ``.dcm`` images.

    ``{train,val,test}/<class>/<split>_<i>.dcm``, 0/255 PNG masks under ``masks/`` (same
    relative path, ``.png``) and ``labels.csv`` (``path``, ``split``, ``label``, ``mask``).
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []
    index = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(n):
            kind = classes[i % len(classes)]
            img, mask = render_case(kind, image_size, rng, contrast=lesion_contrast)
            rel = Path(split) / kind / f"{split}_{i:05d}.dcm"
            mask_rel = (Path("masks") / rel).with_suffix(".png")
            write_case(out_dir / rel, img, modality, index)
            (out_dir / mask_rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(out_dir / mask_rel)
            rows.append(
                {"path": rel.as_posix(), "split": split, "label": kind, "mask": mask_rel.as_posix()}
            )
            index += 1
    with (out_dir / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "split", "label", "mask"])
        writer.writeheader()
        writer.writerows(rows)
    return out_dir
