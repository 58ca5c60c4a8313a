"""Synthetic chest-X-ray-like images with lesions of known position and a mask per image.

Used by tests, the demo and map-quality benchmarks: because the lesion mask is known exactly,
"energy inside the mask" and pointing-game metrics have ground truth. Each image has a dark
background, a bright body with two dark lung fields, rib-like bands, a brighter mediastinum,
blur and noise, all randomised, so no single pixel gives the class away; lesions sit at random
positions inside a lung field:

* ``normal``  — no lesion, all-zero mask;
* ``nodule``  — a small, round, dense blob (radius ≈ 4–6 % of the image);
* ``opacity`` — a larger, diffuse, irregular patch (radius ≈ 12–18 %).

``marker_class`` adds a deliberate shortcut: a bright square in the top-left corner of every
image of that class (outside the body), for saliency sanity demos where a good map must point
at the marker, not the lesion.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

__all__ = ["CLASSES", "ImageWriter", "make_lesion_dataset", "render_case"]

CLASSES = ("normal", "nodule", "opacity")

# Writes one rendered image ([0, 1] floats) at a path; the int is the case's running index.
ImageWriter = Callable[[Path, np.ndarray, int], object]


def _ellipse(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _background(
    rng: np.random.Generator, s: int
) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    img = np.full((s, s), rng.uniform(0.02, 0.08))
    cy, cx = s * rng.uniform(0.5, 0.56), s * rng.uniform(0.47, 0.53)
    body = _ellipse(yy, xx, cy, cx, s * rng.uniform(0.44, 0.5), s * rng.uniform(0.4, 0.46))
    img[body] = rng.uniform(0.55, 0.7)
    lungs = []
    lung_mask = np.zeros((s, s), dtype=bool)
    for side in (-1, 1):
        ly = cy - s * rng.uniform(0.02, 0.06)
        lx = cx + side * s * rng.uniform(0.17, 0.21)
        ry, rx = s * rng.uniform(0.27, 0.32), s * rng.uniform(0.11, 0.14)
        lungs.append((ly, lx, ry, rx))
        lung_mask |= _ellipse(yy, xx, ly, lx, ry, rx)
    lung_level = rng.uniform(0.22, 0.32)
    img[lung_mask] = lung_level
    # Ribs: curved bright bands across the lung fields.
    period = s * rng.uniform(0.09, 0.12)
    phase = rng.uniform(0, 2 * np.pi)
    curve = 0.004 * (xx - cx) ** 2 / max(s / 64.0, 1e-6)
    ribs = 0.5 + 0.5 * np.sin(2 * np.pi * (yy + curve) / period + phase)
    img += lung_mask * rng.uniform(0.05, 0.1) * (ribs > 0.7)
    # Mediastinum / heart: brighter region between the lungs.
    heart = _ellipse(yy, xx, cy + s * 0.1, cx + s * 0.03, s * 0.14, s * 0.1)
    img[heart & body] += rng.uniform(0.05, 0.12)
    img = gaussian_filter(img, sigma=s / 96.0 + rng.uniform(0.2, 0.6))
    return img, lungs


def _lesion(
    rng: np.random.Generator,
    s: int,
    lungs: list[tuple[float, float, float, float]],
    kind: str,
    contrast: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Additive intensity field and binary mask of one lesion inside a random lung field."""
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    ly, lx, ry, rx = lungs[rng.integers(len(lungs))]
    r_pos = np.sqrt(rng.uniform(0, 0.45))
    ang = rng.uniform(0, 2 * np.pi)
    cy, cx = ly + r_pos * ry * np.sin(ang), lx + r_pos * rx * np.cos(ang)
    if kind == "nodule":
        r = max(s * rng.uniform(0.04, 0.06), 1.5)
        d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / r**2
        field = contrast * rng.uniform(0.3, 0.45) * np.exp(-(d2**2))
        mask = d2 <= 1.0
    else:
        r = s * rng.uniform(0.12, 0.18)
        noise = gaussian_filter(rng.normal(size=(s, s)), sigma=r / 3)
        noise /= np.abs(noise).max() + 1e-9
        d2 = ((yy - cy) / (r * rng.uniform(0.8, 1.2))) ** 2 + ((xx - cx) / r) ** 2
        profile = np.clip(1.0 - d2 + 0.35 * noise, 0.0, None)
        field = contrast * rng.uniform(0.16, 0.24) * np.minimum(profile, 1.0)
        mask = profile > 0.25
    return field, mask


def render_case(
    kind: str,
    image_size: int,
    rng: np.random.Generator,
    marker: bool = False,
    contrast: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image (float [0,1], S×S) and its lesion mask (bool, S×S)."""
    if kind not in CLASSES:
        raise ValueError(f"unknown synthetic class {kind!r}; choose from {CLASSES}")
    img, lungs = _background(rng, image_size)
    mask = np.zeros((image_size, image_size), dtype=bool)
    if kind != "normal":
        field, mask = _lesion(rng, image_size, lungs, kind, contrast)
        img = img + field
    img = img + rng.normal(0.0, rng.uniform(0.015, 0.03), img.shape)
    if marker:
        m = max(2, image_size // 12)
        img[1 : 1 + m, 1 : 1 + m] = 0.95
    return np.clip(img, 0.0, 1.0), mask


def _write_png(path: Path, img01: np.ndarray, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(img01 * 255).astype(np.uint8), mode="L").save(path)


def make_lesion_dataset(
    out_dir: Path,
    *,
    n_train: int,
    n_val: int,
    n_test: int = 0,
    image_size: int = 64,
    seed: int = 0,
    classes: tuple[str, ...] = CLASSES,
    marker_class: str | None = None,
    lesion_contrast: float = 1.0,
    write_image: ImageWriter = _write_png,
    suffix: str = ".png",
) -> Path:
    """Write a folder-of-classes data set with masks and a ``labels.csv``; return ``out_dir``.

    Layout: ``{train,val,test}/<class>/<split>_<i>.png``, ``masks/`` mirroring those paths
    (0/255 PNG, all-zero for normal) and ``labels.csv`` with columns ``path``, ``split``,
    ``label``, ``mask`` (paths relative to ``out_dir``). Classes cycle so splits are balanced.
    Deterministic for a given ``seed``. ``lesion_contrast`` scales lesion intensity (>1 makes
    the task easier, for very short test trainings). ``write_image`` and ``suffix`` store the
    images in another format (:func:`ml.data.synthetic_dicom.make_dicom_dataset`: DICOM) with
    everything else the same, so one ``seed`` gives the same cases in either format.
    """
    if marker_class is not None and marker_class not in classes:
        raise ValueError(f"marker_class {marker_class!r} is not one of {classes}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str]] = []
    index = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for i in range(n):
            kind = classes[i % len(classes)]
            img, mask = render_case(
                kind, image_size, rng, marker=kind == marker_class, contrast=lesion_contrast
            )
            rel = Path(split) / kind / f"{split}_{i:05d}{suffix}"
            mask_rel = (Path("masks") / rel).with_suffix(".png")
            write_image(out_dir / rel, img, index)
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
