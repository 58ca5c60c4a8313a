"""Study exports: one file per format, rendered from the snapshot.

Exports are researcher-only: they unblind arms (labels, checkpoint names and hashes).
"""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from app.errors import Invalid
from app.services.results import formats
from app.services.results.snapshot import load_snapshot

FORMATS: dict[str, tuple[str, str]] = {
    # format: (media type, file suffix)
    "csv": ("text/csv; charset=utf-8", "-long.csv"),
    "wide": ("text/csv; charset=utf-8", "-wide.csv"),
    "json": ("application/json", ".json"),
    "mrmc": ("text/csv; charset=utf-8", "-mrmc.csv"),
    "r": ("text/plain; charset=utf-8", "-clmm.R"),
}


def export_study(db: Session, study_id: int, fmt: str) -> tuple[bytes, str, str]:
    """Render an export: (content, media type, file name). Formats: csv, wide, json, mrmc, r."""
    if fmt not in FORMATS:
        raise Invalid(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    snap = load_snapshot(db, study_id)
    media_type, suffix = FORMATS[fmt]
    filename = snap.file_stem() + suffix
    if fmt == "csv":
        body = formats.to_csv(formats.tidy_long(snap))
    elif fmt == "wide":
        body = formats.to_csv(formats.wide(snap))
    elif fmt == "json":
        body = json.dumps(formats.design_json(snap), indent=2, ensure_ascii=False).encode()
    elif fmt == "mrmc":
        body = formats.to_csv(formats.mrmc(snap))
    else:
        body = formats.r_script(snap, csv_name=snap.file_stem() + FORMATS["csv"][1]).encode()
    return body, media_type, filename
