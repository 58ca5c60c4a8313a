"""Answers to the protocol's item kinds beyond scores and preference, and the case flag.

* ``confidence``: the rater's confidence in this trial's answer, 1–5.
* ``blinding``: "which map do you think came from <model>?" — ``left``, ``right`` or ``none``
  (don't know). Asked on every main trial (``when: "trial"``) or once, on the rater's last
  trial (``when: "end"``); never on practice trials.
* ``localise``: the region that supports the finding, validated by
  app.services.reading.geometry.
* **flag**: not an item but an action on any trial: the rater marks the case unreadable,
  wrongly labelled or other (with a note) and moves on. A flagged trial counts as answered,
  needs no other answer, is left out of every statistic and shows in the researcher's views.

Stored in the rating's ``scores`` JSON beside the Likert pairs (item keys cannot start with
an underscore, so ``_flag`` never collides): ``{"conf": {"value": 4}}``,
``{"guess": {"guess": "left"}}``, ``{"region": {"region": {...}}}``, ``{"_flag": {...}}``.
"""

from __future__ import annotations

from typing import Any

from app.errors import Invalid
from app.services.reading.geometry import validate_region

EXTRA_KINDS: tuple[str, ...] = ("confidence", "blinding", "localise")
CONFIDENCE_SCALE = 5
GUESSES: tuple[str, ...] = ("left", "right", "none")
FLAG_KEY = "_flag"
FLAG_REASONS: tuple[str, ...] = ("unreadable", "wrong_label", "other")
FLAG_NOTE_MAX = 500


def asked_items(
    items: list[dict[str, Any]], *, position: int, last_position: int, practice: bool
) -> list[dict[str, Any]]:
    """The items a trial asks: a blinding item only on main trials, and an end-of-study one
    only on the rater's last trial (the whole sequence is in place when the study opens).

    Rater-facing: the blinding item's `target_arm` (an arm position) is researcher-only and
    left out; the question's wording names the model for the rater."""
    out = []
    for item in items:
        if item["kind"] == "blinding":
            if practice:
                continue
            if item.get("when", "trial") == "end" and position != last_position:
                continue
            item = {k: v for k, v in item.items() if k != "target_arm"}
        out.append(item)
    return out


def _problem(errors: list[dict[str, Any]], where: str, msg: str) -> None:
    errors.append({"loc": ["body", where], "msg": msg})


def clean_answers(
    items: list[dict[str, Any]],
    answers: dict[str, Any] | None,
    errors: list[dict[str, Any]],
    *,
    all_items: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The stored form of the answers to `items` of EXTRA_KINDS; problems go to `errors`.

    `items` are the ones this trial asks; an answer to any other key is refused — whether the
    study lacks the item altogether or only does not ask it here (`all_items`).
    """
    given = dict(answers or {})
    extra = {i["key"]: i for i in items if i["kind"] in EXTRA_KINDS}
    known = {i["key"] for i in (all_items or items)}
    for key in given:
        if key not in extra:
            msg = (
                "This item is not asked on this trial."
                if key in known
                else "This study has no such item."
            )
            _problem(errors, f"answers.{key}", msg)
    out: dict[str, dict[str, Any]] = {}
    for key, item in extra.items():
        value = given.get(key)
        where = f"answers.{key}"
        if value is None:
            if item.get("required", True):
                _problem(errors, where, f"Answer: {item.get('question') or key}.")
            continue
        kind = item["kind"]
        if kind == "confidence":
            if isinstance(value, bool) or not isinstance(value, int):
                _problem(errors, where, "Confidence is a whole number.")
            elif not 1 <= value <= CONFIDENCE_SCALE:
                _problem(errors, where, f"Confidence must be between 1 and {CONFIDENCE_SCALE}.")
            else:
                out[key] = {"value": value}
        elif kind == "blinding":
            if value not in GUESSES:
                _problem(errors, where, "The guess is one of left, right, none.")
            else:
                out[key] = {"guess": value}
        else:
            try:
                out[key] = {"region": validate_region(value)}
            except Invalid as exc:
                _problem(errors, where, exc.message)
    return out


def clean_flag(flag: dict[str, Any] | None, errors: list[dict[str, Any]]) -> dict[str, str] | None:
    """The stored flag (reason, note) or None; problems go to `errors`."""
    if flag is None:
        return None
    reason = flag.get("reason")
    note = str(flag.get("note") or "").strip()
    if reason not in FLAG_REASONS:
        _problem(errors, "flag.reason", f"The reason is one of {', '.join(FLAG_REASONS)}.")
        return None
    if len(note) > FLAG_NOTE_MAX:
        _problem(errors, "flag.note", f"The note is longer than {FLAG_NOTE_MAX} characters.")
        return None
    if reason == "other" and not note:
        _problem(errors, "flag.note", "Say what is wrong with the case.")
        return None
    return {"reason": str(reason), "note": note}
