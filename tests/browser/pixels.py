"""Reading a viewport's pixels back in the browser tests, and checking a 1:1 drawing of an
image against the DICOM LINEAR window formula (ml.data.dicom._window, the server's own)."""

from __future__ import annotations

from typing import Any

import numpy as np

# A canvas (WebGL2 or 2-D) copied into a 2-D canvas and read back as RGBA, with the viewer's
# drawn state (centre of view, window) from its data attributes.
READ_CANVAS_JS = """c => {
  const o = document.createElement("canvas");
  o.width = c.width; o.height = c.height;
  const x = o.getContext("2d"); x.drawImage(c, 0, 0);
  return {w: c.width, h: c.height, cx: Number(c.dataset.cx), cy: Number(c.dataset.cy),
          wc: c.dataset.wc, ww: c.dataset.ww,
          px: Array.from(x.getImageData(0, 0, c.width, c.height).data)};
}"""


def wait_for_draw(page: Any) -> None:
    """Wait until the viewer has drawn what the last input asked for: it draws on the next
    animation frame, so two frames later its canvases and their data attributes are current
    (a fixed sleep is not enough on a loaded machine)."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def read_canvas(page: Any, selector: str) -> dict[str, Any]:
    return page.eval_on_selector(selector, READ_CANVAS_JS)  # type: ignore[no-any-return]


def grey(got: dict[str, Any]) -> np.ndarray:
    """The red channel (grey for an image drawn without a map) as an (h, w) int array."""
    return np.array(got["px"], dtype=np.int16).reshape(got["h"], got["w"], 4)[..., 0]


def window_error(got: dict[str, Any], values: np.ndarray, center: float, width: float) -> int:
    """Largest grey-level difference between a 1:1 drawing (`read_canvas` of the plain-image
    viewport) and the LINEAR window of `values`, over the image's central 3/4."""
    from ml.data.dicom import _window

    drawn_all = grey(got)
    w, h = got["w"], got["h"]
    expected = np.rint(_window(values.astype(np.float64), center, width, "LINEAR") * 255)
    n = values.shape[0]
    lo, hi = n // 8, n - n // 8
    x0, y0 = round(got["cx"] - w / 2), round(got["cy"] - h / 2)
    best = 255
    for dy in (-1, 0, 1):  # an odd canvas size puts the image half a pixel off centre
        for dx in (-1, 0, 1):
            ys, xs = lo - y0 + dy, lo - x0 + dx
            if ys < 0 or xs < 0 or ys + hi - lo > h or xs + hi - lo > w:
                continue
            drawn = drawn_all[ys : ys + hi - lo, xs : xs + hi - lo]
            best = min(best, int(np.abs(drawn - expected[lo:hi, lo:hi]).max()))
    return best
