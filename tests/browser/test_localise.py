"""The localisation drawing tool (static/js/localise.js) in a real browser, keyboard first.

The module is loaded on a bare page with the same markup the rater template uses, so this test
needs no server: it checks the answer the module writes (normalised region JSON in the hidden
input), undo, editing by handle, the polygon rules and that its keys never reach the page's
other hotkeys.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

JS = Path(__file__).resolve().parents[2] / "static" / "js" / "localise.js"


def _png() -> str:
    buf = io.BytesIO()
    Image.new("L", (200, 100), 90).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


MARKUP = """
<form id="rating-form">
  <fieldset class="item localise-item" data-key="region">
    <legend>Mark the region</legend>
    <div class="localise" data-image-url="{img}" data-max-points="200" style="width:400px">
      <div role="toolbar">
        <button type="button" data-shape="box">Box</button>
        <button type="button" data-shape="ellipse">Ellipse</button>
        <button type="button" data-shape="polygon">Polygon</button>
        <button type="button" data-action="undo">Undo</button>
        <button type="button" data-action="clear">Clear</button>
      </div>
      <canvas tabindex="0" aria-label="Plain image: mark the region"></canvas>
      <p class="localise-status" aria-live="polite"></p>
      <input type="hidden" name="region:region" value="">
    </div>
  </fieldset>
</form>
<p id="keys"></p>
<script>
  window.seen = [];
  document.addEventListener("keydown", (e) => window.seen.push(e.key));
</script>
"""


def _region(page: Any) -> Any:
    raw = page.eval_on_selector('input[name="region:region"]', "el => el.value")
    return json.loads(raw) if raw else None


def _setup(page: Any) -> None:
    page.set_content(MARKUP.format(img=_png()))
    page.add_script_tag(path=str(JS))
    page.wait_for_function("document.querySelector('canvas').height === 200")


def test_box_by_keyboard_then_handle_edit_and_undo(page: Any) -> None:
    _setup(page)
    page.keyboard.press("r")  # R focuses the drawing area from anywhere
    assert page.evaluate("document.activeElement.tagName") == "CANVAS"
    for _ in range(3):
        page.keyboard.press("Shift+ArrowLeft")  # cursor 0.5 → 0.35
    page.keyboard.press("Space")
    for _ in range(4):
        page.keyboard.press("Shift+ArrowRight")  # → 0.55
    page.keyboard.press("Shift+ArrowDown")  # y 0.5 → 0.55
    page.keyboard.press("Space")
    box = _region(page)
    assert box["shape"] == "box"
    assert abs(box["x0"] - 0.35) < 1e-6 and abs(box["x1"] - 0.55) < 1e-6
    assert abs(box["y0"] - 0.5) < 1e-6 and abs(box["y1"] - 0.55) < 1e-6
    # the drawing keys never reached the page's own hotkeys
    assert "ArrowLeft" not in page.evaluate("window.seen") and " " not in page.evaluate(
        "window.seen"
    )
    page.keyboard.press("h")  # first handle: top-left corner
    page.keyboard.press("ArrowLeft")
    moved = _region(page)
    assert abs(moved["x0"] - 0.34) < 1e-6 and moved["x1"] == box["x1"]
    page.keyboard.press("u")
    assert _region(page) == box
    page.keyboard.press("Control+z")
    assert _region(page) is None, "undo back to no region at all"
    assert "nothing" not in page.inner_text(".localise-status").lower()


def test_ellipse_and_polygon_and_refusals(page: Any) -> None:
    _setup(page)
    page.click('[data-shape="ellipse"]')
    page.keyboard.press("Space")  # centre at 0.5, 0.5
    for _ in range(2):
        page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Space")
    ellipse = _region(page)
    assert ellipse["shape"] == "ellipse"
    assert abs(ellipse["rx"] - 0.1) < 1e-6 and abs(ellipse["ry"] - 0.05) < 1e-6
    page.keyboard.press("q")  # ellipse → polygon
    # a bow-tie is refused and leaves the ellipse in place
    for key in ("Space", "Shift+ArrowRight", "Shift+ArrowDown", "Space", "Shift+ArrowUp",
                "Space", "Shift+ArrowLeft", "Shift+ArrowDown", "Space", "Enter"):  # fmt: skip
        page.keyboard.press(key)
    assert "crosses itself" in page.inner_text(".localise-status")
    assert _region(page) == ellipse
    page.keyboard.press("Escape")
    for key in ("Space", "Shift+ArrowRight", "Space", "Shift+ArrowDown", "Space", "Enter"):
        page.keyboard.press(key)
    poly = _region(page)
    assert poly["shape"] == "polygon" and len(poly["points"]) == 3
    assert all(0 <= v <= 1 for p in poly["points"] for v in p)
    assert "Enter" not in page.evaluate("window.seen"), "closing a polygon is not a submit"
    page.keyboard.press("Delete")
    assert _region(page) is None
    page.keyboard.press("Escape")  # leaves the drawing area
    page.keyboard.press("Enter")
    assert "Enter" in page.evaluate("window.seen"), "outside the canvas Enter reaches the page"


def test_mouse_drag_draws_a_box(page: Any) -> None:
    _setup(page)
    box = page.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 120, steps=5)
    page.mouse.up()
    region = _region(page)
    assert region["shape"] == "box"
    assert abs(region["x0"] - 0.1) < 0.01 and abs(region["x1"] - 0.5) < 0.01
    assert abs(region["y0"] - 0.1) < 0.01 and abs(region["y1"] - 0.6) < 0.01
