"""Build small DICOM files in memory for tests (no test data downloads).

The header's skeleton and pixel module come from the product's synthetic DICOM writer
(:mod:`ml.data.synthetic_dicom`); this adds what the tests vary and the PHI they check is
never shown.
"""

from __future__ import annotations

import io

import numpy as np
from pydicom.uid import SecondaryCaptureImageStorage

from ml.data.synthetic_dicom import new_dataset, set_pixels


def make_dicom(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    modality: str = "CR",
    bits: int = 16,
    compress: str | None = None,
) -> bytes:
    """A DICOM file with the given stored pixel values (2-D, or F×H×W for multi-frame) and PHI."""
    ds = new_dataset(SecondaryCaptureImageStorage)
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-123"
    ds.PatientBirthDate = "19700101"
    ds.AccessionNumber = "ACC999"
    ds.InstitutionName = "General Hospital"
    ds.StudyDate = "20240101"
    ds.Modality = modality
    ds.ViewPosition = "PA"
    set_pixels(
        ds,
        pixels.astype(np.uint16 if bits == 16 else np.uint8),
        bits_stored=bits,
        photometric=photometric,
    )
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if compress is not None:
        ds.compress(compress)  # e.g. JPEG2000Lossless (encoded by pylibjpeg)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
