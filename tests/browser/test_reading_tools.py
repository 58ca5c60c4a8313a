"""The reading room's tools on the real trial page: finding and "answers are final" shown,
Save visible at 1280×720, `?` toggles the key list, A/B flicker in one viewport, settings that
persist to the next trial, and the next trial prefetched while the rater reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.models import Trial
from app.services.accounts.users import create_user
from tests.browser.pixels import read_canvas, wait_for_draw, window_error
from tests.factories import make_open_study

PASSWORD = "browser-test-password"


def _state(page: Any, slot: str) -> dict[str, str]:
    return page.eval_on_selector(f".vp[data-slot={slot}] canvas", "c => ({...c.dataset})")  # type: ignore[no-any-return]


def test_reading_tools_on_the_trial_page(page: Any, live_server: Any, login_via_form: Any) -> None:
    with live_server.session() as db:
        user, _ = create_user(
            db, actor=None, username="tools-rater", role="rater", password=PASSWORD
        )
        study = make_open_study(db, live_server.data_dir, raters=[user], n_images=3, size=128)
        tokens = list(
            db.scalars(
                select(Trial.token)
                .where(Trial.study_id == study.id, Trial.rater_id == user.id)
                .order_by(Trial.position)
            )
        )
    page.set_viewport_size({"width": 1280, "height": 720})
    login_via_form(page, live_server.url, "tools-rater", PASSWORD)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{live_server.url}/t/{tokens[0]}")
    page.wait_for_selector("#trial[data-ready='1']")

    assert page.inner_text("#finding") == "each model's own top prediction"
    assert "Answers are final" in page.inner_text("#final-note")
    box = page.locator("#submit-button").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 720  # Save is above the fold
    assert _state(page, "a")["renderer"] in ("webgl2", "canvas2d")

    page.keyboard.press("?")
    assert page.locator("#help").evaluate("d => d.open")
    page.keyboard.press("?")
    assert not page.locator("#help").evaluate("d => d.open")

    page.keyboard.press("v")  # one viewport, flicking between the maps
    wait_for_draw(page)
    assert page.locator(".vp[data-slot=b]").is_hidden()
    first = _state(page, "a")["shown"]
    page.keyboard.press("v")
    wait_for_draw(page)
    assert {first, _state(page, "a")["shown"]} == {"a", "b"}
    page.keyboard.press("s")
    wait_for_draw(page)
    assert page.locator(".vp[data-slot=b]").is_visible()

    page.locator("#opacity").fill("30")
    page.keyboard.press("t")  # top 10 %
    wait_for_draw(page)
    # The viewer's own requests: token + slot URLs only; the next trial is prefetched.
    assert any(u.endswith(f"/api/v1/trials/{tokens[1]}/viewer") for u in requests)
    assert any(u.endswith(f"/t/{tokens[1]}/view/a") for u in requests)
    for u in requests:
        assert "arm" not in u.split("?")[0].lower().replace("warm", "")

    for key in ("3", "4", "c"):
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#trial[data-ready='1']")
    assert _state(page, "a")["opacity"] == "0.30"  # settings carried over to the next trial
    assert page.inner_text("#topk-out") == "top 10%"


def test_ct_study_lung_and_mediastinal_windows_draw_the_window_formula_in_hu(
    page: Any, live_server: Any, login_via_form: Any
) -> None:
    """A CT case on the real trial page: pick Lung, then Mediastinum, at 1:1; the plain-image
    viewport's pixels are the DICOM LINEAR window of the stored HU values."""
    import io

    import numpy as np

    from app.models import Image
    from app.storage import Storage
    from ml.data.synthetic import render_case
    from ml.data.synthetic_dicom import intensity_to_hu

    size = 128
    img, _ = render_case("nodule", size, np.random.default_rng(11))
    hu = np.rint(intensity_to_hu(img)).astype(np.int16)
    with live_server.session() as db:
        user, _ = create_user(db, actor=None, username="ct-rater", role="rater", password=PASSWORD)
        study = make_open_study(db, live_server.data_dir, raters=[user], n_images=2, size=size)
        trial = db.scalar(select(Trial).where(Trial.study_id == study.id, Trial.position == 0))
        assert trial is not None
        image = db.get(Image, trial.image_id)
        assert image is not None
        buf = io.BytesIO()
        np.save(buf, hu)
        image.source_path = Storage(live_server.data_dir).put_content(
            "images", buf.getvalue(), ".npy"
        )
        image.modality = "CT"
        image.meta = {
            "WindowCenter": [-600.0, 40.0],
            "WindowWidth": [1500.0, 400.0],
            "viewer": {"window": [-600.0, 1500.0], "units": "HU", "invert": False},
        }
        token = trial.token
    login_via_form(page, live_server.url, "ct-rater", PASSWORD)
    page.goto(f"{live_server.url}/t/{token}")
    page.wait_for_selector("#trial[data-ready='1']")
    assert "HU" in page.inner_text("#wl-out")
    page.keyboard.press("i")  # the plain image, no map over it
    page.keyboard.press("f")  # 1:1: one image pixel per canvas pixel
    wait_for_draw(page)
    for name, (center, width) in {"Lung": (-600.0, 1500.0), "Mediastinum": (40.0, 400.0)}.items():
        page.select_option("#wl-preset", label=name)
        wait_for_draw(page)
        got = read_canvas(page, ".vp[data-slot=image] canvas")
        assert (float(got["wc"]), float(got["ww"])) == (center, width)
        assert window_error(got, hu, center, width) <= 1, name
