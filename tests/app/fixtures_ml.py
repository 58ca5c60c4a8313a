"""Tiny, real test inputs built at test time: checkpoints, images, DICOM files, bad files.

Nothing is downloaded: checkpoints are randomly initialised `resnet_tiny` models saved with
ml.checkpoint; DICOM files are the ones that ship with pydicom.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ml.checkpoint import save_checkpoint
from ml.models import create_model

CLASSES = ["normal", "pneumonia"]


def checkpoint_bytes(
    tmp: Path,
    *,
    dual_bn: bool = False,
    seed: int = 0,
    num_classes: int = 2,
    in_channels: int = 1,
    image_size: int = 32,
    mode: str | None = None,
) -> bytes:
    """A radsal/1 file of a randomly initialised resnet_tiny."""
    torch.manual_seed(seed)
    model = create_model("resnet_tiny", num_classes, in_channels, dual_bn=dual_bn)
    names = CLASSES if num_classes == 2 else [f"c{i}" for i in range(num_classes)]
    path = tmp / f"ckpt-{dual_bn}-{seed}-{num_classes}-{in_channels}.pt"
    save_checkpoint(
        path,
        model,
        arch="resnet_tiny",
        num_classes=num_classes,
        class_names=names,
        in_channels=in_channels,
        image_size=image_size,
        normalize=None,
        dual_bn=dual_bn,
        train={"mode": mode or ("dual_bn" if dual_bn else "standard"), "epochs": 0},
    )
    return path.read_bytes()


def seed_layout_bytes(*, dual_bn: bool, seed: int = 0, num_classes: int = 2) -> bytes:
    """A bare state dict in the seed code's layout (torchvision keys; `bns.0/1` for dual BN)."""
    torch.manual_seed(seed)
    model = create_model("resnet_tiny", num_classes, 1, dual_bn=dual_bn)
    sd = {k.removeprefix("backbone."): v for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.getvalue()


class _Evil:
    """Unpickling this calls os.makedirs(marker): proof that code ran, if it ever does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (self.marker,))


def malicious_checkpoint_bytes(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil(str(marker))}, buf)
    return buf.getvalue()


def raw_pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps(_Evil(str(marker)))


def png_bytes(
    size: int = 40,
    *,
    seed: int = 0,
    bit16: bool = False,
    rgb: bool = False,
    width: int | None = None,
) -> bytes:
    """A random-noise PNG (distinct per seed) with a bright square 'lesion'."""
    rng = np.random.default_rng(seed)
    h, w = size, width or size
    arr = rng.random((h, w, 3) if rgb else (h, w)) * 0.5
    arr[h // 4 : h // 2, w // 4 : w // 2] += 0.5
    if bit16:
        img = Image.fromarray((arr * 65535).astype(np.uint16))
    else:
        img = Image.fromarray((arr * 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size: int = 40, *, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def mask_png_bytes(size: int = 40) -> bytes:
    arr = np.zeros((size, size), dtype=np.uint8)
    arr[size // 4 : size // 2, size // 4 : size // 2] = 255
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def dicom_bytes(name: str) -> bytes:
    """A DICOM file that ships with pydicom (never downloaded; skips if this install lacks it)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return Path(str(path)).read_bytes()


def monochrome1_dicom_bytes() -> bytes:
    """CT_small.dcm re-labelled MONOCHROME1 (pydicom ships no MONOCHROME1 file in this version)."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes("CT_small.dcm")))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".1"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def multiframe_dicom_bytes(frames: int = 3) -> bytes:
    """MR_small.dcm as a multi-frame object (frame k = frame 0 scaled by k + 1)."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom_bytes("MR_small.dcm")))
    pixels = ds.pixel_array
    base = pixels.astype(np.int32)
    stack = np.stack([np.clip(base * (k + 1) // frames, -32768, 32767) for k in range(frames)])
    ds.NumberOfFrames = frames
    ds.PixelData = stack.astype(pixels.dtype).tobytes()
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".2"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


class Catalog:
    """Two stored checkpoints (standard, dual-BN), a few images and three raters."""

    def __init__(self, admin: Any, standard: Any, dual: Any, images: list[Any], raters: list[Any]):
        self.admin = admin
        self.standard = standard
        self.dual = dual
        self.images = images
        self.raters = raters

    @property
    def image_ids(self) -> list[int]:
        return [im.id for im in self.images]

    def spec(self, **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": "Standard vs dual-BN",
            "image_ids": self.image_ids,
            "arms": [
                {"checkpoint_id": self.standard.id, "method": "gradient"},
                {"checkpoint_id": self.dual.id, "bn_route": "clean", "method": "gradient"},
            ],
            "raters": [r.username for r in self.raters],
            "seed": 1,
        }
        spec.update(overrides)
        return spec


def build_catalog(
    db: Any, settings: Any, tmp: Path, make_user: Any, *, n_images: int = 4, n_raters: int = 3
) -> Catalog:
    from app.services.catalog.checkpoints import import_checkpoint
    from app.services.catalog.images import import_images

    admin = make_user("admin")
    standard, _ = import_checkpoint(
        db, settings, data=checkpoint_bytes(tmp), filename="std.pt", name="Standard", actor=admin
    )
    dual, _ = import_checkpoint(
        db,
        settings,
        data=checkpoint_bytes(tmp, dual_bn=True, seed=1),
        filename="dual.pt",
        name="Dual BN",
        actor=admin,
    )
    files = [(f"case{k}.png", png_bytes(40, seed=k, width=48)) for k in range(n_images)]
    csv = "filename,normal,pneumonia\n" + "".join(
        f"case{k}.png,{1 - k % 2},{k % 2}\n" for k in range(n_images)
    )
    report = import_images(db, settings, files=files, actor=admin, labels_csv=csv.encode())
    from app.models import Image

    images = [db.get(Image, i) for i in report.image_ids]
    raters = [make_user("rater") for _ in range(n_raters)]
    return Catalog(admin, standard, dual, images, raters)
