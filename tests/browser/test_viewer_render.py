"""The viewer's renderer (static/js/radviewer.js) in real Chromium, read back pixel by pixel.

Both paths (WebGL2 where Chromium offers it, and the canvas-2D fallback) must draw what the
server draws: a map field coloured with the same colormap table as the server's PNG rendering
(within 1/255), and CT values windowed with the DICOM LINEAR window formula in HU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml.data.dicom import _window
from ml.data.synthetic import render_case
from ml.data.synthetic_dicom import CT_WINDOWS, intensity_to_hu
from ml.explain.render import overlay_array

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ("static/js/colormaps.js", "static/js/radviewer.js")

DRAW = """([kind, img, w, h, field, n, s]) => {
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  document.body.appendChild(canvas);
  const r = RadViewer.createRenderer(canvas, kind);
  const image = {data: Float32Array.from(img), width: w, height: h};
  const f = field ? {data: Uint8Array.from(field), size: n} : null;
  r.setImage(image); r.setField(f); r.setColormap(s.colormap);
  r.draw({...s, image, field: f, view: [0, 0, w, h]});
  const out = document.createElement("canvas");
  out.width = w; out.height = h;
  const ctx = out.getContext("2d");
  ctx.drawImage(canvas, 0, 0);
  return {kind: r.kind, px: Array.from(ctx.getImageData(0, 0, w, h).data)};
}"""


@pytest.fixture()
def viewer_page(page: Any) -> Any:
    page.set_content("<!doctype html><html><body></body></html>")
    for rel in SCRIPTS:
        page.add_script_tag(content=(ROOT / rel).read_text())
    return page


def _draw(page: Any, kind: str, img: np.ndarray, field: np.ndarray | None, **s: Any) -> Any:
    h, w = img.shape
    settings = {"center": 127.5, "width": 256.0, "invert": False, "opacity": 1.0}
    settings |= {"threshold": 0, "colormap": "jet", **s}
    out = page.evaluate(
        DRAW,
        [
            kind,
            img.ravel().tolist(),
            w,
            h,
            None if field is None else field.ravel().tolist(),
            0 if field is None else field.shape[0],
            settings,
        ],
    )
    return out["kind"], np.array(out["px"], dtype=np.int16).reshape(h, w, 4)


@pytest.mark.parametrize("kind", ["webgl2", "canvas2d"])
@pytest.mark.parametrize("colormap", ["jet", "inferno"])
def test_canvas_matches_the_server_rendering_of_the_same_field(
    viewer_page: Any, kind: str, colormap: str
) -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    field = np.clip(np.rint(255 * np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / 300.0)), 0, 255)
    field = field.astype(np.uint8)
    field[0, :] = np.arange(64) * 4  # every part of the table
    grey = (xx * 2 + yy).astype(np.uint8)  # an 8-bit image under the map
    got_kind, px = _draw(viewer_page, kind, grey.astype(np.float32), field, colormap=colormap)
    if kind == "webgl2" and got_kind != "webgl2":
        pytest.skip("this Chromium offers no WebGL2 (the canvas-2D fallback is tested too)")
    server = overlay_array(grey, field.astype(np.float32) / 255.0, colormap=colormap, opacity=1.0)
    assert np.abs(px[..., :3] - server.astype(np.int16)).max() <= 1
    assert (px[..., 3] == 255).all()

    _, half = _draw(viewer_page, kind, grey.astype(np.float32), field, colormap=colormap,
                    opacity=0.4, threshold=128)  # fmt: skip
    server = overlay_array(grey, field.astype(np.float32) / 255.0, colormap=colormap, opacity=0.4)
    shown = field >= 128
    assert np.abs(half[..., :3][shown] - server[shown].astype(np.int16)).max() <= 1
    hidden = half[..., :3][~shown]
    assert np.abs(hidden - grey[~shown][:, None].astype(np.int16)).max() <= 1


@pytest.mark.parametrize("kind", ["webgl2", "canvas2d"])
def test_ct_lung_and_mediastinal_windows_follow_the_window_formula_in_hu(
    viewer_page: Any, kind: str
) -> None:
    img, _ = render_case("nodule", 48, np.random.default_rng(5))
    hu = np.rint(intensity_to_hu(img)).astype(np.float32)
    for name, (center, width) in CT_WINDOWS.items():
        got_kind, px = _draw(viewer_page, kind, hu, None, center=center, width=width)
        if kind == "webgl2" and got_kind != "webgl2":
            pytest.skip("this Chromium offers no WebGL2 (the canvas-2D fallback is tested too)")
        expected = np.rint(_window(hu.astype(np.float64), center, width, "LINEAR") * 255)
        assert np.abs(px[..., 0] - expected).max() <= 1, name
        assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()
    _, inv = _draw(viewer_page, kind, hu, None, center=40.0, width=400.0, invert=True)
    expected = 255 - np.rint(_window(hu.astype(np.float64), 40.0, 400.0, "LINEAR") * 255)
    assert np.abs(inv[..., 0] - expected).max() <= 1
