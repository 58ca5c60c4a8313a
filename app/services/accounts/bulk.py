"""Bulk invites: many accounts from one CSV of names, each with its own single-use link.

The CSV is checked whole before anything is written, and every problem is reported at once
with its line number, so an admin fixes the file in one go. The links exist in plain text only
in the answer to that one request (the database keeps hashes), so the admin downloads them
once, then and there.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Invalid
from app.models import User
from app.services.accounts.users import (
    IssuedInvite,
    create_user,
    validate_display_name,
    validate_role,
    validate_username,
)

MAX_ROWS = 500
MAX_BYTES = 256 * 1024
NAME_COLUMNS = ("display_name", "name")
LINK_COLUMNS = ("username", "display_name", "role", "invite_url", "expires_at_utc")


@dataclass(frozen=True)
class InviteRow:
    line: int
    username: str
    display_name: str
    role: str


@dataclass(frozen=True)
class ParsedInvites:
    rows: list[InviteRow]
    errors: list[str]


def _slug(name: str) -> str:
    """A username from a person's name: "Dr. Anna Müller" → "anna.muller" style."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", ascii_name.lower()) if p]
    titles = {"dr", "prof", "md", "phd", "mr", "mrs", "ms"}
    kept = [p for p in parts if p not in titles] or parts
    return ".".join(kept)[:60]


def parse_invites(db: Session, data: bytes, default_role: str = "rater") -> ParsedInvites:
    """Read the CSV: a header row with `username` and/or `display_name` (or `name`), and an
    optional `role` column (else `default_role`). A missing username is made from the name."""
    if len(data) > MAX_BYTES:
        raise Invalid(f"The CSV is larger than {MAX_BYTES // 1024} KiB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("The CSV is not UTF-8 text; save it as 'CSV UTF-8' and try again.") from None
    try:
        return _parse(db, text, default_role)
    except csv.Error as exc:  # a stray quote, a NUL byte: say so instead of failing
        raise Invalid(f"The file is not a readable CSV ({exc}).") from None


def _parse(db: Session, text: str, default_role: str) -> ParsedInvites:
    # Old Mac files end lines with a bare CR; the csv module wants them as new lines.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    name_col = next((c for c in NAME_COLUMNS if c in header), None)
    if "username" not in header and name_col is None:
        raise Invalid(
            "The first line of the CSV names the columns: username and/or display_name "
            "(or name), and optionally role."
        )
    default = validate_role(default_role)
    rows: list[InviteRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    existing = {n.lower() for n in db.scalars(select(func.lower(User.username)))}
    for index, record in enumerate(reader):
        line = index + 2  # line 1 is the header
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(f"More than {MAX_ROWS} people: split the file.")
            break
        raw_name = (record.get(name_col) or "").strip() if name_col else ""
        raw_user = (record.get("username") or "").strip()
        raw_role = (record.get("role") or "").strip().lower() or default
        if not raw_name and not raw_user:
            continue  # blank line
        problems: list[str] = []
        try:
            display = validate_display_name(raw_name)
        except Invalid as exc:
            problems.append(exc.message)
            display = ""
        username = raw_user or _slug(raw_name)
        try:
            username = validate_username(username)
        except Invalid as exc:
            problems.append(f"username {username!r}: {exc.message}")
        try:
            role = validate_role(raw_role)
        except Invalid as exc:
            problems.append(exc.message)
            role = default
        key = username.lower()
        if key in existing:
            problems.append(f"the username {username!r} is taken.")
        elif key in seen:
            problems.append(f"the username {username!r} is also on line {seen[key]}.")
        seen.setdefault(key, line)
        if problems:
            errors.append(f"Line {line}: " + " ".join(problems))
        else:
            rows.append(InviteRow(line, username, display, role))
    if not rows and not errors:
        errors.append("The CSV lists nobody.")
    return ParsedInvites(rows, errors)


def create_invites(
    db: Session,
    *,
    actor: User | None,
    rows: list[InviteRow],
    invite_hours: int,
    ip: str = "",
) -> list[tuple[User, IssuedInvite]]:
    """Create every account with an invite link (all in the caller's transaction)."""
    created: list[tuple[User, IssuedInvite]] = []
    for row in rows:
        user, invite = create_user(
            db,
            actor=actor,
            username=row.username,
            role=row.role,
            display_name=row.display_name,
            invite_hours=invite_hours,
            ip=ip,
        )
        assert invite is not None  # no password: always an invite
        created.append((user, invite))
    return created


def _cell(value: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ as a formula: quote it."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def links_csv(created: list[tuple[User, IssuedInvite]], base_url: str) -> str:
    """The links to send out, one line per person (shown once: the server keeps only hashes)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LINK_COLUMNS)
    for user, invite in created:
        writer.writerow(
            [
                user.username,
                _cell(user.display_name),
                user.role,
                invite.url(base_url),
                invite.invite.expires_at.strftime("%Y-%m-%d %H:%M"),
            ]
        )
    return out.getvalue()
