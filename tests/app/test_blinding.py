"""Blinding, checked by crawling: everything a rater can reach, and nothing that unblinds.

The study is seeded with canary strings in every arm-identifying field (checkpoint names and
hashes, arm labels and methods, map file names, the case's source file name). A rater then
answers every trial through the API while the crawler follows every link, asset, image and JSON
URL it can find; no body, header or URL may contain a canary, no JSON key may name an arm, and
Map A / Map B must be exactly the stored left / right arms.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Arm, Checkpoint, Image, SaliencyMap, Study, Trial, User
from tests.factories import make_open_study, rating_payload

URL_ATTR = re.compile(r'(?:href|src|action|data-[a-z-]*url)="([^"]+)"')
FORBIDDEN_KEYS = re.compile(r"arm|checkpoint|method|map_id|image_id|sha|label|route", re.I)


def canaries_for(db: Session, study: Study) -> list[str]:
    """Plant unique strings in every field that could identify an arm; return them."""
    out: list[str] = []
    for arm in study.arms:
        ckpt = db.get(Checkpoint, arm.checkpoint_id)
        assert ckpt is not None
        ckpt.name = f"CANARYCKPT{arm.position}"
        arm.label = f"CANARYLABEL{arm.position}"
        arm.method = f"canarymethod{arm.position}"
        out += [ckpt.name, ckpt.sha256, arm.label, arm.method]
    for m in db.scalars(select(SaliencyMap).join(Arm).where(Arm.study_id == study.id)):
        out += [Path(m.raw_path).stem, Path(m.field_path).stem]
    for image in db.scalars(select(Image).join(Trial).where(Trial.study_id == study.id)):
        image.source_filename = f"CANARYFILE{image.id}.png"
        out += [image.source_filename, image.sha256, Path(image.display_path).stem]
    db.flush()
    return out


def json_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from json_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_keys(v)


class Crawler:
    """Breadth-first over same-origin GET URLs found in pages and JSON (no logout)."""

    def __init__(self, client: TestClient, canaries: list[str]) -> None:
        self.client = client
        self.canaries = canaries
        self.seen: set[str] = set()
        self.responses: dict[str, Any] = {}

    def check(self, url: str, response: Any) -> None:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        for text in (url, headers):
            for canary in self.canaries:
                assert canary not in text, f"{canary!r} leaked in {url} (url/headers)"
        assert "content-disposition" not in response.headers, url
        body = response.content.decode("latin-1")
        for canary in self.canaries:
            assert canary not in body, f"{canary!r} leaked in the body of {url}"
        if response.headers.get("content-type", "").startswith("application/json"):
            for key in json_keys(response.json()):
                assert not FORBIDDEN_KEYS.search(key), f"JSON key {key!r} in {url}"

    def crawl(self, *starts: str) -> None:
        queue = deque(starts)
        while queue:
            url = queue.popleft()
            path = urlparse(url).path
            if url in self.seen or path in ("/logout",) or not path.startswith("/"):
                continue
            self.seen.add(url)
            r = self.client.get(url, follow_redirects=False)
            self.check(url, r)
            self.responses[url] = r
            found: list[str] = []
            if r.status_code in (301, 302, 303, 307) and "location" in r.headers:
                found.append(r.headers["location"])
            ctype = r.headers.get("content-type", "")
            if ctype.startswith("text/html"):
                found += URL_ATTR.findall(r.text)
            elif ctype.startswith("application/json"):
                found += [v for v in re.findall(r'"(/[^"\s]*)"', json.dumps(r.json()))]
            for link in found:
                absolute = urljoin(url, link.replace("&amp;", "&"))
                if urlparse(absolute).netloc in ("", "testserver"):
                    queue.append(urlparse(absolute)._replace(scheme="", netloc="").geturl())


@pytest.fixture()
def setup(
    db: Session, settings: Settings, make_user: Callable[..., User]
) -> tuple[Study, User, User, list[str]]:
    me, other = make_user("rater", "blind_me", None), make_user("rater", "blind_other", None)
    study = make_open_study(db, settings.data_dir, raters=[me, other], n_images=6, allow_back=True)
    return study, me, other, canaries_for(db, study)


def test_a_rater_can_reach_nothing_that_unblinds(
    db: Session, setup: tuple[Study, User, User, list[str]], login, client: TestClient
) -> None:
    study, me, other, canaries = setup
    account = login(me)
    crawler = Crawler(client, canaries)
    crawler.crawl("/", "/rate", "/api/v1/trials/next")
    # Answer everything, crawling each step, so edit pages, "previous" links and the end page
    # are reached too.
    while True:
        nxt = client.get("/api/v1/trials/next").json()
        if nxt["done"]:
            break
        r = account.post_json(nxt["rating_url"], rating_payload())
        crawler.check(nxt["rating_url"], r)
        crawler.seen.discard("/api/v1/trials/next")
        crawler.crawl(nxt["page_url"], r.json()["next_url"], "/api/v1/trials/next")
    crawler.crawl(f"/rate/{study.id}/done", "/rate")

    mine = list(db.scalars(select(Trial).where(Trial.rater_id == me.id)))
    theirs = list(db.scalars(select(Trial).where(Trial.rater_id == other.id)))
    reached = " ".join(crawler.seen)
    for trial in mine:
        for suffix in ("", "/image.png", "/view/a", "/view/b"):
            assert f"/t/{trial.token}{suffix}" in crawler.seen
        for slot in ("a", "b"):
            # The old per-arm PNG overlays are gone: their byte sizes differed by arm.
            assert client.get(f"/t/{trial.token}/{slot}.png").status_code == 404
    # Every map payload the rater was handed has one byte length and one header set, so
    # neither the size nor the headers of a response can tell the arms apart.
    maps = [crawler.responses[f"/t/{trial.token}/view/{slot}"] for trial in mine for slot in "ab"]
    assert all(r.status_code == 200 for r in maps)
    assert len({len(r.content) for r in maps}) == 1
    assert len({r.headers["content-length"] for r in maps}) == 1
    assert len({tuple(sorted(r.headers.keys())) for r in maps}) == 1
    for trial in theirs:
        assert trial.token not in reached
    # The other rater (and so their progress or answers) is not mentioned anywhere.
    for r in crawler.responses.values():
        assert other.username not in r.text and other.display_name not in r.text


def test_map_a_and_b_are_the_stored_sides_and_balanced(
    db: Session, settings: Settings, setup: tuple[Study, User, User, list[str]], login, client
) -> None:
    study, me, _, _ = setup
    login(me)
    arms = [a.id for a in study.arms]
    left_counts = dict.fromkeys(arms, 0)
    for trial in db.scalars(select(Trial).where(Trial.rater_id == me.id)):
        for slot, arm_id in (("a", trial.left_arm_id), ("b", trial.right_arm_id)):
            path = db.scalar(
                select(SaliencyMap.field_path).where(
                    SaliencyMap.arm_id == arm_id, SaliencyMap.image_id == trial.image_id
                )
            )
            got = client.get(f"/t/{trial.token}/view/{slot}")
            assert got.content == (settings.data_dir / str(path)).read_bytes()
        a = client.get(f"/t/{trial.token}/view/a")
        b = client.get(f"/t/{trial.token}/view/b")
        # Same header names and caching for both slots: no per-arm difference but the pixels.
        assert sorted(a.headers.keys()) == sorted(b.headers.keys())
        assert a.headers["cache-control"] == b.headers["cache-control"]
        assert a.headers["etag"] != b.headers["etag"]
        left_counts[trial.left_arm_id] += 1
    assert sorted(left_counts.values()) == [3, 3]


def test_etags_depend_on_the_token_not_on_the_map(
    db: Session, setup: tuple[Study, User, User, list[str]], login, client: TestClient
) -> None:
    _, me, other, _ = setup
    mine = {t.image_id: t for t in db.scalars(select(Trial).where(Trial.rater_id == me.id))}
    theirs = {t.image_id: t for t in db.scalars(select(Trial).where(Trial.rater_id == other.id))}
    image_id = next(iter(mine))
    login(me)
    mine_tag = client.get(f"/t/{mine[image_id].token}/image.png").headers["etag"]
    client.cookies.clear()
    login(other)
    their_tag = client.get(f"/t/{theirs[image_id].token}/image.png").headers["etag"]
    # The very same case file, two raters: two unrelated tags (nothing to correlate across).
    assert mine_tag != their_tag
