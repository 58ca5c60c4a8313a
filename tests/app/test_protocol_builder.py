"""The protocol through the builder page and the API (issue 15): new item kinds and options
are stored, the design gets its practice and catch trials, and bad options are refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Study, Trial, User
from tests.factories import builder_form, make_open_study


def test_builder_creates_a_study_with_protocol_items_and_options(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    raters = [make_user("rater", f"pb{i}") for i in range(3)]
    base = make_open_study(db, settings.data_dir, raters=raters[:1], n_images=8, size=16)
    ids = [si.image_id for si in base.images]
    session = login(make_user("researcher"))
    form = builder_form(
        base,
        raters=[r.username for r in raters],
        item_preference="1",
        item_confidence="1",
        item_blinding="1",
        blinding_question="Which map came from the robust model?",
        blinding_when="end",
        item_localise="optional",
        practice_image_ids=f"{ids[0]}, {ids[1]}",
        catch_fraction="0.25",
        catch_same="1",
        catch_randomised="1",
        readers_per_case="2",
        anchor_image_ids=f"{ids[2]}",
        case_text=f"{ids[3]}: Fever and cough.\n",
    )
    created = session.post_form("/studies/new", form)
    assert created.status_code == 303, created.text
    study_id = int(created.headers["location"].split("/")[2].split("?")[0])
    study = db.get(Study, study_id)
    assert study is not None
    kinds = {i["kind"]: i for i in study.items}
    assert kinds["blinding"]["when"] == "end" and kinds["blinding"]["target_arm"] == 1
    assert kinds["localise"]["required"] is False and "confidence" in kinds
    assert study.protocol is not None
    assert study.protocol["practice_image_ids"] == ids[:2]
    assert (
        study.protocol["readers_per_case"] == 2 and study.protocol["anchor_image_ids"] == ids[2:3]
    )
    assert study.protocol["case_text"] == {str(ids[3]): "Fever and cough."}
    trials = list(db.scalars(select(Trial).where(Trial.study_id == study_id)))
    main = [t for t in trials if not t.protocol]
    readers = Counter(t.image_id for t in main)
    assert readers[ids[2]] == 3, "the anchor is read by every rater"
    assert {n for i, n in readers.items() if i != ids[2]} == {2}, "the rest by k = 2"
    practice = [t for t in trials if (t.protocol or {}).get("phase") == "practice"]
    assert len(practice) == 3 * 2 and all(t.position < 2 for t in practice)
    catches = [t for t in trials if (t.protocol or {}).get("catch")]
    assert catches and {t.protocol["catch"] for t in catches} == {"same", "randomised"}  # type: ignore[index]
    # the builder shows the stored options again when the draft is edited
    edit = session.client.get(f"/studies/{study_id}/edit").text
    assert f'value="{ids[0]}, {ids[1]}"' in edit and "Fever and cough." in edit
    assert 'name="item_blinding" value="1" checked' in edit


def test_api_takes_protocol_and_refuses_bad_options(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    client: Any,
    api_headers: Callable[[User], dict[str, str]],
) -> None:
    rater = make_user("rater", "pa0")
    base = make_open_study(db, settings.data_dir, raters=[rater], n_images=4, size=16)
    ids = [si.image_id for si in base.images]
    headers = api_headers(make_user("researcher"))
    spec = {
        "name": "API protocol",
        "image_ids": ids,
        "arms": [
            {"checkpoint_id": base.arms[0].checkpoint_id},
            {"checkpoint_id": base.arms[1].checkpoint_id, "bn_route": "clean"},
        ],
        "raters": ["pa0"],
        "seed": 3,
        "items": [
            {"key": "highlight", "kind": "likert"},
            {"key": "guess", "kind": "blinding"},
            {"key": "where", "kind": "localise"},
        ],
        "protocol": {"practice_image_ids": [ids[0]], "catch_fraction": 0.25},
    }
    r = client.post("/api/v1/studies", json=spec, headers=headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["protocol"]["catch_fraction"] == 0.25
    bad = [
        {**spec, "protocol": {"catch_fraction": 0.9}},
        {**spec, "protocol": {"readers_per_case": 5}},
        {**spec, "protocol": {"anchor_image_ids": [ids[0]]}},
        {**spec, "protocol": {"catch_kinds": ["weird"], "catch_fraction": 0.1}},
        {**spec, "protocol": {"case_text": {"99999999": "x"}}},
        {**spec, "items": [*spec["items"], {"key": "guess2", "kind": "blinding"}]},
        {
            **spec,
            "items": [
                {"key": "highlight", "kind": "likert"},
                {"key": "guess", "kind": "blinding", "target_arm": 5},
            ],
        },
        {**spec, "items": [{"key": "highlight", "kind": "likert", "when": "end"}]},
    ]
    before = db.query(Study).count()
    for body in bad:
        r = client.post("/api/v1/studies", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
    assert db.query(Study).count() == before
