"""The README's first command, end to end: `radsal demo` builds, serves and prints a rater link
that opens a blinded trial; a rater joins through it and rates the whole study in Chromium.

The demo runs exactly as a newcomer runs it (one process that builds and then serves), only
smaller (32 px, 1 epoch, 12 cases, 2 raters), on its own data directory and port.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import select

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "--image-size", "32", "--epochs", "1", "--n-train", "48", "--n-images", "12",
    "--raters", "2", "--batch-size", "16", "--no-progress",
]  # fmt: skip
N_CASES = 12
BUILD_TIMEOUT_S = 300.0
ARM_WORDS = ("standard", "dual", "adversarial", "gradient", "checkpoint", "resnet")


@dataclass
class DemoServer:
    url: str
    data_dir: Path
    output: str
    process: subprocess.Popen[bytes]

    def invite_links(self) -> list[str]:
        return re.findall(rf"{re.escape(self.url)}/invite/[\w-]+", self.output)

    def password(self, username: str) -> str:
        match = re.search(rf"\b{username}\s+password (\S+)", self.output)
        assert match, f"no password printed for {username}:\n{self.output}"
        return match.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _serve_demo(base: Path, args: list[str]) -> Iterator[DemoServer]:
    """Run `radsal demo` (build, then serve) with `args` until the module is done with it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RADSAL_DATA_DIR": str(base / "data"),
        "RADSAL_DATABASE_URL": "",  # the embedded default: SQLite in the data directory
        "RADSAL_DEVICE": "cpu",
        "RADSAL_SECRET_KEY": "demo-browser-secret",
        "OMP_NUM_THREADS": "1",  # tiny model; two threads spin-wait on a busy machine
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RADSAL_BASE_URL", None)  # the demo must print links to where it serves
    log_path = base / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "demo", "--port", str(port), *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    try:
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail(f"radsal demo exited {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"radsal demo did not serve in {BUILD_TIMEOUT_S}s:\n{log_path.read_text()}"
                )
            time.sleep(0.5)
        yield DemoServer(url, base / "data", log_path.read_text(), process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    yield from _serve_demo(tmp_path_factory.mktemp("demo-browser"), SMALL)


@pytest.fixture(scope="module")
def ct_demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    yield from _serve_demo(
        tmp_path_factory.mktemp("demo-ct"), [*SMALL, "--image-size", "64", "--modality", "ct"]
    )


def _join(page: Any, link: str, password: str) -> None:
    """Accept an invite in the browser: choose a password, land on the rater's studies."""
    page.goto(link)
    page.fill("#password", password)
    page.fill("#password_confirm", password)
    with page.expect_navigation():
        page.click("#invite-form button[type=submit]")
    assert urlparse(page.url).path in ("/rate", "/")


def test_demo_prints_one_invite_link_per_rater_pointing_at_the_server(
    demo_server: DemoServer,
) -> None:
    links = demo_server.invite_links()
    assert len(links) == 2, demo_server.output
    assert f"Open {demo_server.url}/login" in demo_server.output


def test_admin_logs_in_with_the_printed_password(
    demo_server: DemoServer, page: Any, login_via_form: Any
) -> None:
    login_via_form(page, demo_server.url, "admin", demo_server.password("admin"))
    assert urlparse(page.url).path == "/admin"


def test_a_rater_joins_by_invite_and_rates_every_trial_blinded(
    demo_server: DemoServer, page: Any
) -> None:
    from app.db import make_engine, make_sessionmaker
    from app.models import Rating, Study, User

    _join(page, demo_server.invite_links()[0], "rater-one-password")

    engine = make_engine(f"sqlite:///{demo_server.data_dir / 'radsal.sqlite'}")
    try:
        with make_sessionmaker(engine)() as db:
            study_id = db.scalar(select(Study.id))
            rater = db.scalar(select(User).where(User.username == "rater1"))
            assert rater is not None and rater.password_hash is not None

        page.goto(f"{demo_server.url}/rate/{study_id}")
        # Every case, 2 practice trials first and 2 catch trials among them (issue 15), all
        # answered by keyboard; one main trial also gets a localisation answer.
        total = N_CASES + 2 + 2
        localised = False
        for n in range(1, total + 1):
            assert re.search(r"/t/[\w-]+$", page.url), page.url
            assert f"Trial {n} of {total}" in page.locator("#trial-counter").inner_text()
            text = page.locator("body").inner_text().lower()
            for word in ARM_WORDS:
                assert word not in text, f"trial page reveals {word!r}"
            assert "catch" not in text and "randomi" not in text
            practice = page.locator("#practice-banner").count() == 1
            assert practice == (n <= 2), "the practice block comes first, labelled"
            if n == 3:
                assert page.locator("#practice-feedback").count() == 1
            if n == 1:
                # The overlays load (token-addressed PNGs) before the rater answers.
                page.wait_for_selector("#vp-loading", state="hidden")
            page.evaluate("document.activeElement && document.activeElement.blur()")
            page.keyboard.press(str(1 + n % 5))  # Map A's score, then the cursor moves to B
            page.keyboard.press("3")
            page.keyboard.press("z")  # prefer Map A
            if not practice:
                page.keyboard.press("e")  # the blinding check: 1 = Map A
                page.keyboard.press("1")
            if not practice and not localised:
                page.keyboard.press("r")  # mark the region: a box by keyboard
                page.keyboard.press("Space")
                for key in ("Shift+ArrowRight", "Shift+ArrowRight", "Shift+ArrowDown"):
                    page.keyboard.press(key)
                page.keyboard.press("Space")
                page.keyboard.press("Escape")
                localised = True
            with page.expect_navigation():
                page.keyboard.press("Enter")
        assert urlparse(page.url).path == f"/rate/{study_id}/done"

        with make_sessionmaker(engine)() as db:
            ratings = db.scalars(select(Rating).where(Rating.rater_id == rater.id)).all()
        assert len(ratings) == total
        regions = [r.scores["region"]["region"] for r in ratings if "region" in r.scores]
        assert len(regions) == 1 and regions[0]["shape"] == "box"
        assert sum("guess" in r.scores for r in ratings) == total - 2
    finally:
        engine.dispose()


def test_the_ct_demo_reads_in_hounsfield_units_at_lung_and_mediastinal_windows(
    ct_demo_server: DemoServer, page: Any
) -> None:
    """`radsal demo --modality ct` end to end: the rater's first trial is a DICOM CT slice shown
    in HU, with the file's own window first and the CT presets; at 1:1 the plain-image
    viewport's pixels are the DICOM LINEAR window of the HU values the server sends."""
    import io
    import json

    import numpy as np

    from tests.browser.pixels import read_canvas, wait_for_draw, window_error

    page.set_viewport_size({"width": 1280, "height": 720})
    _join(page, ct_demo_server.invite_links()[0], "ct-rater-password")
    page.goto(f"{ct_demo_server.url}/rate")
    with page.expect_navigation():
        page.locator("a", has_text=re.compile("^(Start|Continue)")).first.click()
    page.wait_for_selector("#trial[data-ready='1']")
    spec = json.loads(page.inner_text("#viewer-spec"))
    assert (spec["image"]["modality"], spec["image"]["units"], spec["image"]["format"]) == (
        "CT",
        "HU",
        "npy",
    )
    presets = page.locator("#wl-preset option").all_inner_texts()
    assert presets[0] == "Default" and presets[1].startswith("DICOM window")
    assert {"Lung", "Mediastinum", "Bone", "Brain"} <= set(presets)
    assert page.inner_text("#wl-out").endswith("HU")

    response = page.request.get(ct_demo_server.url + spec["image"]["url"])
    assert response.ok
    hu = np.load(io.BytesIO(response.body())).astype(np.float64)
    assert hu.min() < -500 and hu.max() > 0  # air and soft tissue: real Hounsfield units
    page.keyboard.press("i")  # the plain image, no map over it
    page.keyboard.press("f")  # 1:1: one image pixel per canvas pixel
    for name, (center, width) in {"Lung": (-600.0, 1500.0), "Mediastinum": (40.0, 400.0)}.items():
        page.select_option("#wl-preset", label=name)
        wait_for_draw(page)
        assert page.inner_text("#wl-out") == f"C {center:.0f} · W {width:.0f} HU"
        got = read_canvas(page, ".vp[data-slot=image] canvas")
        assert window_error(got, hu, center, width) <= 1, name
