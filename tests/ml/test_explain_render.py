"""Post-processing and rendering: one deterministic path for every arm."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.explain import (
    COLORMAPS,
    load_raw_map,
    postprocess,
    provenance,
    render_heatmap_png,
    render_heatmaps_png,
    render_overlay_png,
    save_raw_map,
)


def _chunks(png: bytes) -> list[bytes]:
    """PNG chunk types in order (to prove there is no metadata)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        out.append(png[pos + 4 : pos + 8])
        pos += 12 + length
    return out


def test_clip_std_matches_the_paper_rule() -> None:
    torch.manual_seed(0)
    raw = torch.rand(64, 64) * 0.01
    raw[3, 4] = 5.0  # an outlier far beyond mean + 3 std
    out = postprocess(raw)
    flat = raw.flatten().double()
    hi = flat.mean() + 3 * flat.std(unbiased=False)
    lo = flat.mean() - 3 * flat.std(unbiased=False)
    clipped = flat.clamp(lo, hi)
    expected = (clipped - clipped.min()) / (clipped.max() - clipped.min())
    torch.testing.assert_close(out.flatten().double(), expected, rtol=1e-5, atol=1e-6)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    assert float(out[3, 4]) == 1.0


def test_percentile_mode_and_constant_map() -> None:
    ramp = torch.arange(100, dtype=torch.float32).reshape(1, 10, 10)
    out = postprocess(ramp, "percentile", low=10, high=90)
    # Values below the 10th / above the 90th percentile saturate; the middle is linear.
    assert float(out[0].flatten()[5]) == 0.0 and float(out[0].flatten()[95]) == 1.0
    torch.testing.assert_close(out[0].flatten()[50], torch.tensor((50 - 9.9) / (89.1 - 9.9)))
    const = postprocess(torch.full((2, 8, 8), 3.0))
    assert torch.equal(const, torch.zeros(2, 8, 8))


def test_postprocess_is_per_map_so_arms_cannot_influence_each_other() -> None:
    torch.manual_seed(1)
    a, b = torch.rand(16, 16) * 1e-4, torch.rand(16, 16) * 1e3
    together = postprocess(torch.stack([a, b]))
    torch.testing.assert_close(together[0], postprocess(a))
    torch.testing.assert_close(together[1], postprocess(b))
    # Identical maps from two arms → identical output, whatever their scale.
    torch.testing.assert_close(postprocess(a * 7.0), postprocess(a), rtol=1e-5, atol=1e-6)


def test_postprocess_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown post-processing mode"):
        postprocess(torch.rand(4, 4), "minmax")
    with pytest.raises(ValueError, match="unknown parameter"):
        postprocess(torch.rand(4, 4), "clip_std", kk=2)
    with pytest.raises(ValueError, match="percentiles"):
        postprocess(torch.rand(4, 4), "percentile", low=90, high=10)


@pytest.mark.parametrize("colormap", COLORMAPS)
def test_heatmap_png_is_rgba_with_alpha_equal_to_map(colormap: str) -> None:
    map01 = np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)
    png = render_heatmap_png(map01, colormap=colormap)
    img = Image.open(io.BytesIO(png))
    assert img.mode == "RGBA" and img.size == (48, 32)
    alpha = np.asarray(img)[..., 3]
    np.testing.assert_array_equal(alpha, np.rint(map01 * 255).astype(np.uint8))
    assert _chunks(png) == [b"IHDR", b"IDAT", b"IEND"]


def test_heatmap_png_bytes_depend_only_on_map_size_and_colormap() -> None:
    rng = np.random.default_rng(0)
    map01 = rng.random((32, 32), dtype=np.float32)
    a = render_heatmap_png(map01, size=(64, 80), colormap="inferno")
    b = render_heatmap_png(map01.copy(), size=(64, 80), colormap="inferno")
    assert a == b
    assert Image.open(io.BytesIO(a)).size == (80, 64)
    assert a != render_heatmap_png(map01, size=(64, 80), colormap="jet")
    # Fixed compression level: the zlib header announces the fastest level (1) for every map.
    idat = a[a.index(b"IDAT") + 4 : a.index(b"IEND") - 8]
    assert idat[:2] == b"\x78\x01"
    assert len(zlib.decompress(idat)) == 64 * (80 * 4 + 1)  # one filter byte per row


def test_batch_rendering_is_byte_identical_to_single_maps() -> None:
    maps = torch.rand(5, 24, 24, generator=torch.Generator().manual_seed(3))
    batch = render_heatmaps_png(maps, size=(40, 40), colormap="viridis", workers=3)
    assert batch == [render_heatmap_png(m, size=(40, 40), colormap="viridis") for m in maps]
    mixed = render_heatmaps_png([maps[0], maps[1][:12]], size=[(30, 20), (12, 24)], workers=2)
    assert Image.open(io.BytesIO(mixed[1])).size == (24, 12)
    assert mixed[0] == render_heatmap_png(maps[0], size=(30, 20))
    with pytest.raises(ValueError, match="unknown colormap"):
        render_heatmaps_png(maps, colormap="nope")
    with pytest.raises(ValueError, match="2 sizes for 5 maps"):
        render_heatmaps_png(maps, size=[(4, 4), (5, 5)])


def test_jet_endpoints_and_gray_identity() -> None:
    ramp = np.array([[0.0, 1.0]], dtype=np.float32)
    jet = np.asarray(Image.open(io.BytesIO(render_heatmap_png(ramp, colormap="jet"))))
    assert tuple(jet[0, 0, :3]) == (0, 0, 128) and tuple(jet[0, 1, :3]) == (128, 0, 0)
    gray = np.asarray(Image.open(io.BytesIO(render_heatmap_png(ramp, colormap="gray"))))
    assert tuple(gray[0, 1]) == (255, 255, 255, 255) and tuple(gray[0, 0]) == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="unknown colormap"):
        render_heatmap_png(ramp, colormap="rainbow")


def test_overlay_composites_with_opacity() -> None:
    display = np.full((20, 30), 100, dtype=np.uint8)
    map01 = np.zeros((10, 15), dtype=np.float32)
    map01[:, 8:] = 1.0
    img = np.asarray(
        Image.open(io.BytesIO(render_overlay_png(display, map01, colormap="gray", opacity=0.5)))
    )
    assert img.shape == (20, 30, 3)
    assert tuple(img[0, 0]) == (100, 100, 100)  # map 0 → display untouched
    assert tuple(img[0, 29]) == (178, 178, 178)  # 0.5·100 + 0.5·255 = 177.5 → 178
    with pytest.raises(ValueError, match="opacity"):
        render_overlay_png(display, map01, opacity=1.5)
    with pytest.raises(ValueError, match="8-bit"):
        render_overlay_png(display.astype(np.float32), map01)


def test_raw_map_roundtrip_float16(tmp_path: Path) -> None:
    raw = torch.rand(32, 32) * 0.01
    path = save_raw_map(tmp_path / "a" / "m.npy", raw)
    assert np.load(path).dtype == np.float16
    back = load_raw_map(path)
    assert back.dtype == np.float32 and back.shape == (32, 32)
    np.testing.assert_allclose(back, raw.numpy(), rtol=1e-3, atol=1e-7)


def test_provenance_records_versions_and_settings() -> None:
    rec = provenance(
        checkpoint_sha256="ab" * 32,
        route="adv",
        method="smoothgrad",
        params={"samples": 16, "noise": np.float32(0.15)},
        target="predicted",
        compute_ms=12.5,
    )
    assert rec["checkpoint_sha256"] == "ab" * 32 and rec["route"] == "adv"
    assert rec["params"] == {"samples": 16, "noise": pytest.approx(0.15)}
    for lib in ("torch", "captum", "numpy", "radsal", "python"):
        assert isinstance(rec["versions"][lib], str)
    assert rec["versions"]["torch"] == torch.__version__
    assert rec["device"] in ("cpu", "cuda")
