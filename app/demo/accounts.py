"""The demo's accounts: an admin and a researcher with passwords, raters with invite links.

Idempotent: a re-run finds the accounts it made, prints the passwords it keeps in the manifest
(unless someone changed them since) and gives raters who have not joined a fresh link.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.auth.passwords import verify_password
from app.config import Settings
from app.models import User
from app.services.accounts.users import create_user, ensure_admin, find_user, issue_invite

ADMIN = "admin"
RESEARCHER = "researcher"


@dataclass(frozen=True)
class Login:
    """One account to print: a password login (admin, researcher) or a rater's invite link."""

    username: str
    role: str
    password: str | None = None
    invite_url: str | None = None
    note: str = ""


def rater_names(count: int) -> list[str]:
    return [f"rater{n}" for n in range(1, count + 1)]


def demo_admin(db: Session) -> User | None:
    """The admin the demo acts as (None if someone renamed or removed it: the services then
    record the demo's changes without an actor)."""
    return find_user(db, ADMIN)


def ensure_accounts(
    factory: sessionmaker[Session],
    settings: Settings,
    saved: dict[str, str],
    raters: int,
    base_url: str,
) -> list[Login]:
    """Create what is missing; ``saved`` (the manifest's passwords) gains the new passwords."""
    logins: list[Login] = []
    with factory.begin() as db:
        admin, plain = ensure_admin(db, ADMIN, saved.get(ADMIN))
        if plain:
            saved[ADMIN] = plain
        logins.append(_password_login(admin, saved.get(admin.username)))
        researcher = find_user(db, RESEARCHER)
        if researcher is None:
            saved[RESEARCHER] = saved.get(RESEARCHER) or secrets.token_urlsafe(12)
            researcher, _ = create_user(
                db,
                actor=admin,
                username=RESEARCHER,
                role="researcher",
                display_name="Demo researcher",
                password=saved[RESEARCHER],
            )
        logins.append(_password_login(researcher, saved.get(RESEARCHER)))
        for n, username in enumerate(rater_names(raters), start=1):
            logins.append(_rater_login(db, settings, admin, username, n, base_url))
    return logins


def _rater_login(
    db: Session, settings: Settings, admin: User, username: str, n: int, base_url: str
) -> Login:
    rater = find_user(db, username)
    if rater is None:
        rater, issued = create_user(
            db,
            actor=admin,
            username=username,
            role="rater",
            display_name=f"Demo rater {n}",
            invite_hours=settings.invite_hours,
        )
    elif rater.password_hash is None and rater.is_active:
        issued = issue_invite(db, actor=admin, user=rater, hours=settings.invite_hours)
    else:
        issued = None
    if issued is not None:
        return Login(username, "rater", invite_url=issued.url(base_url))
    return Login(username, "rater", note="already joined: log in with their password")


def _password_login(user: User, password: str | None) -> Login:
    if password and verify_password(user.password_hash, password):
        return Login(user.username, user.role, password=password)
    return Login(user.username, user.role, note="password was changed since the demo set it")
