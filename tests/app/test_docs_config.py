"""docs/configuration.md documents every setting, with the default the code really uses."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_core import PydanticUndefined

from app.config import PROJECT_ROOT, Settings

DOC = PROJECT_ROOT / "docs" / "configuration.md"


def _documented_rows(doc: str) -> dict[str, str]:
    """`| `RADSAL_X` | default | meaning |` rows of the settings table (the first section)."""
    rows = {}
    settings_section = doc.split("\n## ")[0]
    for line in settings_section.splitlines():
        m = re.match(r"^\|\s*`(RADSAL_[A-Z0-9_]+)`\s*\|([^|]*)\|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def missing_settings(doc: str) -> list[str]:
    rows = _documented_rows(doc)
    return [
        f"RADSAL_{n.upper()}" for n in Settings.model_fields if f"RADSAL_{n.upper()}" not in rows
    ]


def test_every_setting_is_documented() -> None:
    assert missing_settings(DOC.read_text()) == []


def test_documented_defaults_match_the_code() -> None:
    rows = _documented_rows(DOC.read_text())
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is PydanticUndefined or default in (None, ""):
            continue  # computed defaults are explained in prose
        cell = rows[f"RADSAL_{name.upper()}"]
        assert f"`{default}`" in cell, f"RADSAL_{name.upper()}: doc says {cell!r}, code {default!r}"


def test_no_documented_setting_is_stale() -> None:
    known = {f"RADSAL_{n.upper()}" for n in Settings.model_fields}
    assert set(_documented_rows(DOC.read_text())) - known == set()


def test_the_check_catches_a_missing_setting(tmp_path: Path) -> None:
    trimmed = "\n".join(
        line for line in DOC.read_text().splitlines() if "`RADSAL_SECRET_KEY`" not in line
    )
    assert missing_settings(trimmed) == ["RADSAL_SECRET_KEY"]
