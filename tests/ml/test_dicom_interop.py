"""The synthetic CT/MR DICOM files as independent DICOM implementations see them.

pydicom wrote the files, so pydicom reading them back proves little. Here David Clunie's IOD
validator (``dciodvfy``, Debian's dicom3tools) checks every file against the CT Image / MR
Image IOD, DCMTK's ``dcmdump`` parses the header, and DCMTK's renderer ``dcm2pnm`` applies the
rescale and the first window: its grey levels must equal radsal's own display rendition, so HU
and window presets mean the same thing to another implementation as to radsal.

Outside CI a missing tool skips with the apt line that installs it; under CI=true it fails, so
a CI image without the tools cannot pass by running nothing (``.ci/run`` installs them).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ml.data import load_image
from ml.data.synthetic_dicom import CT_WINDOWS, make_dicom_dataset

_APT = "apt-get install -y dicom3tools dcmtk"
_SOP_CLASS = {"ct": "CTImageStorage", "mr": "MRImageStorage"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian: {_APT})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module", params=["ct", "mr"])
def series(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[Path]]:
    """A few tiny cases of one modality (normal and lesion classes) from the product's
    generator, as ``(modality, files)``."""
    modality = str(request.param)
    root = make_dicom_dataset(
        tmp_path_factory.mktemp(f"interop-{modality}"),
        modality=modality,
        n_train=3,
        n_val=1,
        image_size=48,
        seed=5,
    )
    files = [root / row["path"] for row in csv.DictReader((root / "labels.csv").open())]
    assert len(files) == 4 and all(f.suffix == ".dcm" for f in files)
    return modality, files


def test_dciodvfy_finds_no_errors_in_the_iod(series: tuple[str, list[Path]]) -> None:
    """Every file conforms to its IOD: no Error line (missing Type 1/2 attributes, wrong VR,
    bad UID, SOP class mismatch…); warnings are shown if it ever fails."""
    modality, files = series
    dciodvfy = _tool("dciodvfy")
    iod = {"ct": "CTImage", "mr": "MRImage"}[modality]
    for path in files:
        result = _run(dciodvfy, str(path))
        lines = (result.stdout + result.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        warnings = [line for line in lines if line.startswith("Warning")]
        assert not errors, f"{path.name}: dciodvfy errors {errors}; warnings {warnings}"
        # dciodvfy names the IOD it recognised first: the file is checked as CT/MR, not as a
        # generic object.
        assert lines and lines[0].strip() == iod, f"{path.name}: dciodvfy says {lines}"


def _dump_value(dump: str, tag: str) -> str:
    """The value column of ``tag`` in dcmdump's output (``[...]`` strings, ``=Name`` UIDs)."""
    match = re.search(rf"^\({tag}\) \w\w (\[[^\]]*\]|=\S+)", dump, re.MULTILINE)
    assert match, f"dcmdump shows no ({tag})"
    return match.group(1).strip("[]=")


def test_dcmdump_parses_sop_class_modality_rescale_and_windows(
    series: tuple[str, list[Path]],
) -> None:
    modality, files = series
    dcmdump = _tool("dcmdump")
    for path in files:
        result = _run(dcmdump, str(path))
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr
        dump = result.stdout
        assert _dump_value(dump, "0002,0010") == "LittleEndianExplicit"
        assert _dump_value(dump, "0008,0016") == _SOP_CLASS[modality]
        assert _dump_value(dump, "0002,0002") == _SOP_CLASS[modality]
        assert _dump_value(dump, "0008,0060") == modality.upper()
        centers = [float(v) for v in _dump_value(dump, "0028,1050").split("\\")]
        widths = [float(v) for v in _dump_value(dump, "0028,1051").split("\\")]
        if modality == "ct":
            assert float(_dump_value(dump, "0028,1052")) == -1024.0  # RescaleIntercept
            assert float(_dump_value(dump, "0028,1053")) == 1.0  # RescaleSlope
            assert _dump_value(dump, "0028,1054") == "HU"
            assert list(zip(centers, widths, strict=True)) == list(CT_WINDOWS.values())
        else:
            assert "(0028,1052)" not in dump  # MR: no rescale, values are the signal
            source = load_image(path).source
            assert source is not None and [(centers[0], widths[0])] == [source.window]


def _read_pgm(path: Path) -> np.ndarray:
    """An 8-bit binary PGM (P5) as a uint8 array."""
    data = path.read_bytes()
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert header, f"{path.name} is not a binary PGM: {data[:20]!r}"
    width, height, maxval = (int(v) for v in header.groups())
    assert maxval == 255
    pixels = np.frombuffer(data, dtype=np.uint8, offset=header.end())
    assert pixels.size == width * height
    return pixels.reshape(height, width)


def test_dcmtk_renders_the_first_window_as_radsal_does(
    series: tuple[str, list[Path]], tmp_path: Path
) -> None:
    """dcm2pnm (modality LUT, then the header's first VOI window, then 8 bits) agrees with
    radsal's display rendition of the same file within one grey level."""
    modality, files = series
    dcm2pnm = _tool("dcm2pnm")
    for path in files:
        pgm = tmp_path / f"{path.stem}.pgm"
        result = _run(dcm2pnm, "+Wi", "1", "+op", str(path), str(pgm))
        assert result.returncode == 0, result.stdout + result.stderr
        theirs = _read_pgm(pgm).astype(np.int64)
        loaded = load_image(path)
        ours = np.rint(loaded.array.astype(np.float64) * 255.0).astype(np.int64)
        assert theirs.shape == ours.shape == (48, 48)
        # A rendering with contrast, not a flat or saturated image that would match trivially.
        assert np.unique(theirs).size > 20, f"{path.name}: only {np.unique(theirs)} grey levels"
        close = np.abs(theirs - ours) <= 1
        assert close.mean() >= 0.99, (
            f"{modality} {path.name}: {close.mean():.1%} of pixels within 1 grey level; "
            f"largest difference {np.abs(theirs - ours).max()}"
        )
