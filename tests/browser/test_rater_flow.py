"""A rater in a real Chromium against `radsal serve`: invite, keyboard-only rating, resume,
linked viewer, back-navigation rules, a failed save that keeps the answer, and the README's
screenshot of the trial page (real NIH chest X-rays)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import select

from app.demo.data import NIH_ATTRIBUTION
from app.models import Rating, RatingRevision, Trial, User
from app.services.accounts.users import create_user
from tests.browser.pixels import wait_for_draw
from tests.factories import make_open_study

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "browser-test-password"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "rating-page.png"


def seed(
    server: Any, username: str, *, allow_back: bool = False, n: int = 4, images: Any = None
) -> tuple[list[str], str | None]:
    """A rater (with an invite when no password) in a fresh open study; their trial tokens."""
    with server.session() as db:
        user, invite = create_user(
            db, actor=None, username=username, role="rater", display_name="Dr. Reader"
        )
        study = make_open_study(
            db,
            server.data_dir,
            raters=[user],
            n_images=n,
            allow_back=allow_back,
            images=images,
            size=256,
            seed=sum(map(ord, username)),
        )
        tokens = list(
            db.scalars(
                select(Trial.token)
                .where(Trial.study_id == study.id, Trial.rater_id == user.id)
                .order_by(Trial.position)
            )
        )
        link = invite.url(server.url) if invite else None
    return tokens, link


def accept_invite(page: Any, link: str) -> None:
    page.goto(link)
    page.fill("#password", PASSWORD)
    page.fill("#password_confirm", PASSWORD)
    with page.expect_navigation():
        page.click("#invite-form button[type=submit]")


def wait_ready(page: Any) -> None:
    page.wait_for_selector("#trial[data-ready='1']")


def rating_for(server: Any, token: str) -> Rating | None:
    with server.session() as db:
        return db.scalar(select(Rating).join(Trial).where(Trial.token == token))


def path_of(page: Any) -> str:
    return urlparse(page.url).path


def canvas_state(page: Any) -> dict[str, dict[str, str]]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.vp')]
             .filter(v => !v.hidden)
             .map(v => [v.dataset.slot, {...v.querySelector('canvas').dataset}]))"""
    )


def test_invited_rater_rates_by_keyboard_resumes_and_uses_the_linked_viewer(
    page: Any, live_server: Any
) -> None:
    tokens, link = seed(live_server, "kb-rater")
    assert link is not None
    accept_invite(page, link)
    assert path_of(page) == "/rate"
    assert "0 of 4 trials rated" in page.inner_text(".study-card")
    page.click(".study-card a.button")
    assert path_of(page) == f"/t/{tokens[0]}"
    wait_ready(page)

    # Trial 1, keyboard only: Map A = 4 (the cursor then moves to Map B), Map B = 2, prefer A.
    assert page.is_disabled("#submit-button")
    for key in ("4", "2", "z"):
        page.keyboard.press(key)
    assert page.is_enabled("#submit-button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert path_of(page) == f"/t/{tokens[1]}"
    first = rating_for(live_server, tokens[0])
    assert first is not None
    assert (first.left_score, first.right_score, first.preference) == (4, 2, "left")
    assert 0 < first.active_ms <= first.total_ms

    # Trial 2: jump to Map B first, then back to A; arrow key for the preference.
    wait_ready(page)
    assert "Trial 2 of 4" in page.inner_text("#trial-counter")
    for key in ("b", "3", "a", "5", "ArrowRight"):
        page.keyboard.press(key)
    page.keyboard.press("m")
    page.keyboard.type("B is tighter")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    second = rating_for(live_server, tokens[1])
    assert second is not None
    assert (second.left_score, second.right_score, second.preference) == (5, 3, "right")
    assert second.comment == "B is tighter"

    # Reload mid-trial: same trial, the unsaved draft is still there, nothing stored yet.
    wait_ready(page)
    page.keyboard.press("1")
    page.reload()
    wait_ready(page)
    assert path_of(page) == f"/t/{tokens[2]}"
    assert page.is_checked("input[name='highlight:left'][value='1']")
    assert rating_for(live_server, tokens[2]) is None

    # Linked viewer: wheel-zoom on A, drag on B, opacity slider and toggles move every viewport.
    before = canvas_state(page)
    box = page.locator(".vp[data-slot=a] canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    page.mouse.wheel(0, -400)
    wait_for_draw(page)
    zoomed = canvas_state(page)
    assert float(zoomed["a"]["zoom"]) > 1.5
    assert zoomed["a"]["zoom"] == zoomed["b"]["zoom"]
    assert zoomed["a"]["cx"] != before["a"]["cx"]  # zoom about the cursor, not the centre
    box_b = page.locator(".vp[data-slot=b] canvas").bounding_box()
    page.mouse.move(box_b["x"] + 100, box_b["y"] + 100)
    page.mouse.down()
    page.mouse.move(box_b["x"] + 160, box_b["y"] + 130, steps=4)
    page.mouse.up()
    wait_for_draw(page)
    panned = canvas_state(page)
    assert panned["a"]["cx"] == panned["b"]["cx"] != zoomed["a"]["cx"]
    assert panned["a"]["cy"] == panned["b"]["cy"]
    page.locator("#opacity").fill("30")
    wait_for_draw(page)
    state = canvas_state(page)
    assert state["a"]["opacity"] == state["b"]["opacity"] == "0.30"
    page.mouse.move(box_b["x"] + 100, box_b["y"] + 100)
    page.mouse.down(button="right")
    page.mouse.move(box_b["x"] + 140, box_b["y"] + 120, steps=4)
    page.mouse.up(button="right")
    page.keyboard.press("i")
    wait_for_draw(page)
    state = canvas_state(page)
    assert set(state) == {"image", "a", "b"}
    assert state["image"]["opacity"] == "0"
    assert state["image"]["zoom"] == state["a"]["zoom"] == state["b"]["zoom"]
    assert state["image"]["ww"] == state["a"]["ww"] != "256"  # right-drag changed the window
    page.keyboard.press("o")
    wait_for_draw(page)
    assert canvas_state(page)["a"]["opacity"] == "0"
    page.keyboard.press("0")
    wait_for_draw(page)
    assert canvas_state(page)["b"]["zoom"] == "1.0000"

    # This study does not allow going back: no link, no key, and the old URL sends us forward.
    assert page.locator("#prev-link").count() == 0
    page.keyboard.press("p")
    page.wait_for_timeout(200)
    assert path_of(page) == f"/t/{tokens[2]}"
    page.goto(f"{live_server.url}/t/{tokens[0]}")
    assert path_of(page) == f"/t/{tokens[2]}"
    assert "does not allow going back" in page.inner_text(".trial-notice")

    # Finish by keyboard; the end page thanks the rater and the home shows 4 of 4.
    for _ in tokens[2:]:
        wait_ready(page)
        for key in ("3", "3", "x"):
            page.keyboard.press(key)
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert path_of(page).endswith("/done")
    assert "You have rated all 4 trials" in page.inner_text("main")
    page.goto(f"{live_server.url}/rate")
    assert "4 of 4 trials rated" in page.inner_text(".study-card")


def test_going_back_to_edit_when_the_study_allows_it(
    page: Any, live_server: Any, login_via_form: Any
) -> None:
    username = "back-rater"
    with live_server.session() as db:
        create_user(db, actor=None, username=username, role="rater", password=PASSWORD)
    with live_server.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        study = make_open_study(
            db, live_server.data_dir, raters=[user], n_images=3, allow_back=True
        )
        tokens = list(
            db.scalars(
                select(Trial.token).where(Trial.study_id == study.id).order_by(Trial.position)
            )
        )
    login_via_form(page, live_server.url, username, PASSWORD)
    page.goto(f"{live_server.url}/rate/{study.id}")
    for _ in range(2):
        wait_ready(page)
        for key in ("4", "4", "x"):
            page.keyboard.press(key)
        with page.expect_navigation():
            page.keyboard.press("Enter")
    wait_ready(page)
    assert path_of(page) == f"/t/{tokens[2]}"
    with page.expect_navigation():
        page.keyboard.press("p")
    assert path_of(page) == f"/t/{tokens[1]}"
    wait_ready(page)
    assert page.is_checked("input[name='highlight:right'][value='4']")
    assert "editing a saved answer" in page.inner_text(".trial-bar")
    for key in ("a", "1", "c"):
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert path_of(page) == f"/t/{tokens[2]}"  # back to where the rater left off
    edited = rating_for(live_server, tokens[1])
    assert edited is not None
    assert (edited.left_score, edited.right_score, edited.preference, edited.revision) == (
        1,
        4,
        "right",
        2,
    )
    with live_server.session() as db:
        revs = db.scalars(
            select(RatingRevision.revision)
            .join(Trial, Trial.id == RatingRevision.trial_id)
            .where(Trial.token == tokens[1])
        ).all()
    assert sorted(revs) == [1, 2]


def test_a_failed_save_says_so_keeps_the_answer_and_retries(
    page: Any, live_server: Any, nih_dir: str, login_via_form: Any, tmp_path: Path
) -> None:
    username = "screenshot-rater"
    with live_server.session() as db:
        create_user(db, actor=None, username=username, role="rater", password=PASSWORD)
    pneumonia = sorted(
        line.split(",")[0]
        for line in (Path(nih_dir) / "labels.csv").read_text().splitlines()[1:]
        if ",1,pneumonia," in line and re.search(r",box_masks/", line)
    )[:3]
    with live_server.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        study = make_open_study(
            db,
            live_server.data_dir,
            raters=[user],
            images=[Path(nih_dir) / p for p in pneumonia],
            name="Chest X-ray reading study",
            instructions=(
                "Score how well each map highlights the regions that support the finding, "
                "then say which map you prefer. " + NIH_ATTRIBUTION
            ),
            seed=7,
        )
        token = db.scalar(
            select(Trial.token).where(Trial.study_id == study.id, Trial.position == 0)
        )
    login_via_form(page, live_server.url, username, PASSWORD)
    page.goto(f"{live_server.url}/rate/{study.id}")
    wait_ready(page)
    assert path_of(page) == f"/t/{token}"

    for key in ("2", "4", "c"):
        page.keyboard.press(key)
    # The screenshot for the README and the rater guide: a real case mid-answer. It lands in
    # docs/ only when asked (RADSAL_UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean.
    shot = SCREENSHOT if os.environ.get("RADSAL_UPDATE_SCREENSHOTS") == "1" else tmp_path / "s.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let the selection transitions finish
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    page.route("**/rating", lambda route: route.abort())
    page.keyboard.press("Enter")
    status = page.locator("#save-status.error")
    status.wait_for(timeout=15_000)
    assert "Not saved" in status.inner_text()
    assert path_of(page) == f"/t/{token}"
    assert page.is_checked("input[name='highlight:right'][value='4']")
    assert rating_for(live_server, token) is None

    page.unroute("**/rating")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    saved = rating_for(live_server, token)
    assert saved is not None and (saved.left_score, saved.right_score) == (2, 4)


def test_active_time_excludes_idle_stretches_and_hidden_tabs(
    page: Any, live_server: Any, login_via_form: Any
) -> None:
    username = "clock-rater"
    with live_server.session() as db:
        create_user(db, actor=None, username=username, role="rater", password=PASSWORD)
    with live_server.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        study = make_open_study(db, live_server.data_dir, raters=[user], n_images=1)
        token = db.scalar(select(Trial.token).where(Trial.study_id == study.id))
    login_via_form(page, live_server.url, username, PASSWORD)
    page.clock.install()
    page.goto(f"{live_server.url}/t/{token}")
    wait_ready(page)

    page.keyboard.press("3")
    page.clock.fast_forward(20_000)  # 20 s of reading: counts
    page.keyboard.press("4")
    page.clock.fast_forward(90_000)  # 90 s without input: idle, excluded
    page.keyboard.press("x")
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.clock.fast_forward(30_000)  # 30 s in another tab: excluded
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.clock.fast_forward(10_000)  # 10 s more reading: counts
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rating = rating_for(live_server, token)
    assert rating is not None
    assert 30_000 <= rating.active_ms < 32_000
    assert rating.total_ms >= 150_000
