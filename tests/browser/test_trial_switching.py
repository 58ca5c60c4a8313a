"""Instant switching on the real trial page (issue 13): Save swaps the next trial into the open
page (no page load), with a fresh form and clock, the viewer's settings kept, the address bar
and title following; Back reloads what the address bar shows and the server's rules apply; the
magnifier draws the viewport's own content, enlarged, from the full-resolution image."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

import numpy as np
from sqlalchemy import select

from app.models import Rating, Trial
from app.services.accounts.users import create_user
from tests.browser.pixels import grey, read_canvas, wait_for_draw
from tests.factories import make_open_study

PASSWORD = "browser-test-password"


def _study(live_server: Any, username: str, n_images: int) -> tuple[int, list[str]]:
    with live_server.session() as db:
        user, _ = create_user(db, actor=None, username=username, role="rater", password=PASSWORD)
        study = make_open_study(db, live_server.data_dir, raters=[user], n_images=n_images, size=96)
        tokens = list(
            db.scalars(
                select(Trial.token)
                .where(Trial.study_id == study.id, Trial.rater_id == user.id)
                .order_by(Trial.position)
            )
        )
        return study.id, tokens


def _open_first(
    page: Any, live_server: Any, login: Any, username: str, n: int
) -> tuple[int, list[str]]:
    """A study of `n` cases for a new rater, logged in at 1280×720, first trial drawn."""
    study_id, tokens = _study(live_server, username, n)
    page.set_viewport_size({"width": 1280, "height": 720})
    login(page, live_server.url, username, PASSWORD)
    page.goto(f"{live_server.url}/t/{tokens[0]}")
    page.wait_for_selector("#trial[data-ready='1']")
    return study_id, tokens


def _wait_for_trial(page: Any, token: str) -> None:
    page.wait_for_function(
        "p => location.pathname === p && document.querySelector(\"#trial[data-ready='1']\")",
        arg=f"/t/{token}",
    )


def test_save_swaps_the_next_trial_into_the_open_page(
    page: Any, live_server: Any, login_via_form: Any
) -> None:
    study_id, tokens = _open_first(page, live_server, login_via_form, "swap-rater", 4)
    page.evaluate("window.__samePage = 'yes'")  # a page load would wipe it
    documents: list[str] = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)
    page.locator("#opacity").fill("35")

    for key in ("3", "4", "c"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    _wait_for_trial(page, tokens[1])
    swapped_at = time.monotonic()

    assert page.evaluate("window.__samePage") == "yes"
    assert documents == []  # no page load: the next page's HTML came by fetch
    assert page.title().startswith("Trial 2 of 4")
    assert "Trial 2 of 4" in page.inner_text("#trial-counter")
    assert page.get_attribute("#trial", "data-token") == tokens[1]
    assert page.inner_text("#trial-announce") == "Trial 2 of 4: ready."  # for screen readers
    assert page.locator("#rating-form input:checked").count() == 0  # a fresh form
    assert page.is_disabled("#submit-button")
    assert "Still needed" in page.inner_text("#missing")
    state = page.eval_on_selector(".vp[data-slot=a] canvas", "c => ({...c.dataset})")
    assert state["opacity"] == "0.35"  # the viewer's settings stayed
    assert page.inner_text("#finding") == "each model's own top prediction"

    page.wait_for_timeout(300)
    for key in ("2", "5", "z"):
        page.keyboard.press(key)
    typed = page.locator("#rating-form input:checked").count()
    assert typed == 3
    elapsed_ms = (time.monotonic() - swapped_at) * 1000
    page.keyboard.press("Enter")
    _wait_for_trial(page, tokens[2])
    assert page.evaluate("window.__samePage") == "yes"

    with live_server.session() as db:
        saved = {
            token: (r.left_score, r.right_score, r.preference, r.total_ms)
            for token, r in db.execute(
                select(Trial.token, Rating).join(Rating, Rating.trial_id == Trial.id)
            )
            if token in tokens
        }
    assert saved[tokens[0]][:3] == (3, 4, "right")
    assert saved[tokens[1]][:3] == (2, 5, "left")  # the answer went to the swapped-in trial
    # The second trial's clock started at the swap, not at the first page load.
    assert saved[tokens[1]][3] <= elapsed_ms + 1000

    # Back: the browser shows the previous address; the page loads it and the server applies
    # the study's rule (no going back to answered trials) exactly as for a typed URL.
    page.go_back()
    _wait_for_trial(page, tokens[2])  # reloaded, then sent on by the server
    assert urlparse(page.url).path == f"/t/{tokens[2]}"
    assert "does not allow going back" in page.inner_text(".trial-notice")
    assert page.evaluate("window.__samePage") is None

    # The last trial's Save ends on the done page (an ordinary navigation).
    for token in tokens[2:]:
        for key in ("4", "4", "x"):
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        if token != tokens[-1]:
            _wait_for_trial(page, tokens[-1])
    page.wait_for_url(f"{live_server.url}/rate/{study_id}/done")


def test_magnifier_shows_the_viewport_enlarged_from_the_full_image(
    page: Any, live_server: Any, login_via_form: Any
) -> None:
    _open_first(page, live_server, login_via_form, "loupe-rater", 2)
    page.keyboard.press("o")  # the image alone: nearest-neighbour pixels in both renderings
    page.keyboard.press("d")
    assert page.get_attribute('[data-action="magnify"]', "aria-pressed") == "true"
    canvas = page.locator(".vp[data-slot=a] canvas")
    box = canvas.bounding_box()
    assert box is not None
    wait_for_draw(page)
    page.mouse.move(box["x"] + box["width"] / 2 + 3, box["y"] + box["height"] / 2 + 5)
    page.wait_for_timeout(150)
    loupe = page.locator("#loupe")
    assert loupe.is_visible()
    info = loupe.evaluate("c => ({...c.dataset})")
    assert info["shown"] == "a"
    # Three times the viewport's scale (device pixels per image pixel), at the pointer.
    port = canvas.evaluate("c => ({w: c.width, h: c.height, cx: +c.dataset.cx, cy: +c.dataset.cy})")
    fit = min(port["w"] / 96, port["h"] / 96)
    assert abs(float(info["scale"]) - 3 * fit) < 1e-3
    assert abs(float(info["x"]) - (port["cx"] + 3 / fit)) < 0.6
    assert abs(float(info["y"]) - (port["cy"] + 5 / fit)) < 0.6

    # Its pixels are the viewport's pixels, enlarged: sample the loupe on a grid and compare
    # each sample with the viewport's pixels around the same image point (a sample that falls
    # on an image pixel's edge may round to either side). The image is noise, so a wrong scale
    # or centre matches almost nowhere.
    lp = read_canvas(page, "#loupe")
    vp = read_canvas(page, ".vp[data-slot=a] canvas")
    lgrey, vgrey = grey(lp), grey(vp)
    scale, x0, y0 = float(info["scale"]), float(info["x"]), float(info["y"])
    agree = total = 0
    for dy in range(-60, 61, 20):
        for dx in range(-60, 61, 20):
            ix, iy = x0 + (dx + 0.5) / scale, y0 + (dy + 0.5) / scale  # under that loupe pixel
            vx = int(vp["w"] / 2 + (ix - port["cx"]) * fit)
            vy = int(vp["h"] / 2 + (iy - port["cy"]) * fit)
            near = vgrey[vy - 1 : vy + 2, vx - 1 : vx + 2].astype(int)
            here = int(lgrey[lp["h"] // 2 + dy, lp["w"] // 2 + dx])
            total += 1
            agree += int(np.abs(near - here).min() <= 2)
    assert agree >= 0.9 * total, (agree, total)
    assert float(np.std(lgrey[60:180, 60:180])) > 0  # it shows the image, not a blank disc

    page.mouse.move(5, 5)  # off the viewports: the loupe goes away
    assert loupe.is_hidden()
    page.keyboard.press("d")
    assert page.get_attribute('[data-action="magnify"]', "aria-pressed") == "false"


def test_flag_this_case_records_its_time_and_moves_on_in_place(
    page: Any, live_server: Any, login_via_form: Any
) -> None:
    _, tokens = _open_first(page, live_server, login_via_form, "flag-rater", 3)
    page.evaluate("window.__samePage = 'yes'")
    page.mouse.move(300, 300)  # the rater looks at the case for a while (active time)
    page.wait_for_timeout(400)
    page.mouse.move(320, 310)
    page.keyboard.press("y")
    dialog = page.locator("#flag-dialog")
    assert dialog.evaluate("d => d.open")
    dialog.locator("input[value=unreadable]").check()
    dialog.locator("#flag-note").fill("motion blur")
    dialog.locator("#flag-submit").click()
    _wait_for_trial(page, tokens[1])
    assert page.evaluate("window.__samePage") == "yes"
    assert not page.locator("#flag-dialog").evaluate("d => d.open")

    with live_server.session() as db:
        rating = db.scalar(
            select(Rating).join(Trial, Trial.id == Rating.trial_id).where(Trial.token == tokens[0])
        )
        assert rating is not None
        flag = (rating.scores or {}).get("_flag")
        assert flag == {"reason": "unreadable", "note": "motion blur"}, rating.scores
        assert 300 <= rating.active_ms <= rating.total_ms  # the trial's clock, not 0
