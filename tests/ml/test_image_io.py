"""load_image: format sniffing, DICOM pixel pipeline, PHI whitelist, clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import make_dicom
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, JPEG2000Lossless, RLELossless

from ml.data import ImageLoadError, load_image


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_png_8bit_gray_and_sniffing_ignores_extension(tmp_path: Path) -> None:
    arr = np.array([[0, 128], [255, 64]], dtype=np.uint8)
    path = tmp_path / "looks_like.jpg"
    path.write_bytes(_png(arr))
    img = load_image(path)
    assert img.source_format == "png" and img.modality == "OT"
    assert img.array.dtype == np.float32 and img.array.shape == (2, 2)
    np.testing.assert_allclose(img.array, arr / 255.0, atol=1e-6)
    np.testing.assert_array_equal(img.display, arr)


def test_png_16bit_keeps_precision() -> None:
    arr = np.array([[0, 1000], [65535, 30000]], dtype=np.uint16)
    img = load_image(_png(arr), filename="x16.png")
    np.testing.assert_allclose(img.array, arr / 65535.0, atol=1e-6)


def test_rgb_jpeg_and_gray_rgb_png() -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    img = load_image(buf.getvalue())
    assert img.source_format == "jpeg" and img.array.shape == (8, 8, 3)
    assert abs(float(img.array[..., 0].mean()) - 200 / 255) < 0.03
    gray_as_rgb = np.repeat(np.full((4, 4, 1), 77, np.uint8), 3, axis=2)
    assert load_image(_png(gray_as_rgb)).array.shape == (4, 4)


def test_dicom_modality_lut_window_and_monochrome1() -> None:
    stored = np.array([[0, 100], [200, 400]], dtype=np.uint16)
    # slope 2, intercept -100 → values -100, 100, 300, 700; window centre 300 width 401:
    # LINEAR window: (v - (c - 0.5)) / (w - 1) + 0.5 → -0.5.., 0.00125, 0.50125, 1.50125 → clip.
    data = make_dicom(stored, slope=2.0, intercept=-100.0, window=(300.0, 401.0))
    img = load_image(data, filename="chest.dcm")
    expected = np.clip((np.array([[-100, 100], [300, 700]]) - 299.5) / 400.0 + 0.5, 0, 1)
    np.testing.assert_allclose(img.array, expected, atol=1e-6)
    assert img.window_center == 300.0 and img.window_width == 401.0
    assert img.modality == "CR" and img.source_format == "dicom"
    inverted = load_image(
        make_dicom(
            stored, slope=2.0, intercept=-100.0, window=(300.0, 401.0), photometric="MONOCHROME1"
        )
    )
    np.testing.assert_allclose(inverted.array, 1.0 - expected, atol=1e-6)
    np.testing.assert_array_equal(img.display, np.round(expected * 255).astype(np.uint8))


def test_dicom_without_window_uses_full_range_and_meta_is_phi_free() -> None:
    stored = np.array([[10, 20], [30, 50]], dtype=np.uint16)
    img = load_image(make_dicom(stored))
    np.testing.assert_allclose(img.array, (stored - 10) / 40.0, atol=1e-6)
    assert img.meta["Modality"] == "CR" and img.meta["Rows"] == 2
    assert img.meta["ViewPosition"] == "PA"
    text = repr(img.meta)
    for secret in ("Doe", "SECRET-123", "19700101", "ACC999", "General Hospital", "20240101"):
        assert secret not in text
    assert not {"PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID"} & set(img.meta)


def test_multiframe_takes_middle_frame_or_the_requested_one() -> None:
    frames = np.stack([np.full((3, 3), v, np.uint16) for v in (0, 1000, 2000)])
    frames[:, 0, 0] = 4000  # give each frame a range so min-max is defined
    data = make_dicom(frames)
    mid = load_image(data)
    assert mid.meta["NumberOfFrames"] == 3 and mid.meta["frame"] == 1
    np.testing.assert_allclose(mid.array[1, 1], 0.0, atol=1e-6)  # 1000 is the minimum of frame 1
    first = load_image(data, frame=0)
    assert first.meta["frame"] == 0
    with pytest.raises(ImageLoadError, match="frame 5 out of range"):
        load_image(data, frame=5)


@pytest.mark.parametrize("uid", [RLELossless, JPEG2000Lossless])
def test_compressed_dicom_decodes(uid: str) -> None:
    stored = np.arange(4096, dtype=np.uint16).reshape(64, 64) % 1000
    img = load_image(make_dicom(stored, compress=uid))
    np.testing.assert_allclose(img.array, stored / 999.0, atol=1e-6)  # lossless
    assert img.meta["TransferSyntaxUID"] == uid


def test_transfer_syntax_without_decoder_is_a_clear_error() -> None:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((8, 8), np.uint16))))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00" * 16])
    ds["PixelData"].is_undefined_length = True
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(
        ImageLoadError, match=r"video\.dcm: cannot decode .*MPEG2.*no working decoder"
    ):
        load_image(buf.getvalue(), filename="video.dcm")


def test_corrupt_and_unsupported_inputs_name_the_file(tmp_path: Path) -> None:
    good = make_dicom(np.zeros((4, 4), np.uint16))
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(good[:140] + b"\x00\xff" * 10)
    with pytest.raises(ImageLoadError, match=r"broken\.dcm"):
        load_image(bad)
    with pytest.raises(ImageLoadError, match=r"trunc\.png: corrupt"):
        load_image(_png(np.zeros((16, 16), np.uint8))[:40], filename="trunc.png")
    with pytest.raises(ImageLoadError, match=r"notes\.txt: unsupported image format"):
        load_image(b"hello world", filename="notes.txt")
    with pytest.raises(ImageLoadError, match=r"nowhere\.png: file not found"):
        load_image(tmp_path / "nowhere.png")
