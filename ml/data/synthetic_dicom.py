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
pydicom and other DICOM tools read the files (tests/ml/test_dicom_interop.py checks them with
dicom3tools' IOD validator ``dciodvfy`` and with DCMTK); identifiers are synthetic ("SYNTH^…").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from ml.data.synthetic import CLASSES, make_lesion_dataset

__all__ = [
    "CT_WINDOWS",
    "DICOM_MODALITIES",
    "intensity_to_hu",
    "make_dicom_dataset",
    "new_dataset",
    "set_pixels",
    "write_case",
]

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


def new_dataset(sop_class: UID) -> Dataset:
    """An empty instance of ``sop_class`` with its file meta (explicit VR little endian) and
    fresh SOP instance and study UIDs: the part of a header every file written here needs,
    shared with the tests' hand-made DICOM files so both stay valid Part 10 files."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    return ds


def set_pixels(
    ds: Dataset, pixels: np.ndarray, *, bits_stored: int, photometric: str = "MONOCHROME2"
) -> None:
    """Write the Image Pixel module: unsigned grey ``pixels`` (H×W, or F×H×W for multi-frame),
    allocated as wide as their dtype, of which ``bits_stored`` carry the value."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()


def _dataset(modality: str, rows: int, cols: int, index: int) -> Dataset:
    ds = new_dataset(CTImageStorage if modality == "ct" else MRImageStorage)
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
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
    ds.AcquisitionNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    spacing = 350.0 / max(rows, cols)  # a 35 cm field of view
    ds.PixelSpacing = [round(spacing, 4), round(spacing, 4)]
    ds.SliceThickness = 1.0 if modality == "ct" else 3.0
    return ds


def write_case(path: Path, img01: np.ndarray, modality: str, index: int = 0) -> Path:
    """Write one phantom image as a CT or MR DICOM file at ``path``."""
    if modality not in DICOM_MODALITIES:
        raise ValueError(f"modality must be one of {DICOM_MODALITIES}, got {modality!r}")
    rows, cols = img01.shape
    ds = _dataset(modality, rows, cols, index)
    if modality == "ct":
        stored = np.clip(np.rint(intensity_to_hu(img01) - _CT_INTERCEPT), 0, 4095)
        bits = 12
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _CT_INTERCEPT, 1.0, "HU"
        ds.KVP = 120
        ds.WindowCenter = [c for c, _ in CT_WINDOWS.values()]
        ds.WindowWidth = [w for _, w in CT_WINDOWS.values()]
        ds.WindowCenterWidthExplanation = [name.upper() for name in CT_WINDOWS]
    else:
        stored = np.clip(np.rint(np.asarray(img01, dtype=np.float64) * 1200.0), 0, 65535)
        bits = 16
        # A conventional 2D spin-echo T2 acquisition: the MR Image module's Type 1/2 fields.
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType = "2D"
        ds.MagneticFieldStrength = 1.5
        ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength = 90.0, 3000.0, 1
        lo, hi = (float(v) for v in np.percentile(stored, [1.0, 99.0]))
        ds.WindowCenter, ds.WindowWidth = round((lo + hi) / 2.0, 1), round(max(hi - lo, 1.0), 1)
    set_pixels(ds, stored.astype(np.uint16), bits_stored=bits)
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
    return make_lesion_dataset(
        out_dir,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        image_size=image_size,
        seed=seed,
        classes=classes,
        lesion_contrast=lesion_contrast,
        write_image=lambda path, img01, index: write_case(path, img01, modality, index),
        suffix=".dcm",
    )
