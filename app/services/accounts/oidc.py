"""Single sign-on with OpenID Connect (authorization code flow with PKCE), optional.

The hospital's identity provider proves who the user is; radsal decides what they may do:

- an account is bound to the provider's (iss, sub) pair, the only stable name of an end user
  (OpenID Connect Core 5.7), at its first SSO login; later logins find it by that pair, so a
  user who changes their editable username claim at the provider neither loses their account
  (its radsal username stays as it was) nor lands in somebody else's: a username whose account
  is bound to another (iss, sub) is refused;
- the username is the ID token's `RADSAL_OIDC_USERNAME_CLAIM` (default `preferred_username`),
  used to name a new account and to find an account an admin created, not yet bound;
- with `RADSAL_OIDC_ROLE_CLAIM` set, the role comes from that claim (a string or a list, mapped
  by `RADSAL_OIDC_ROLE_MAP`; the highest role named wins) at every login, and a user the claim
  gives no radsal role is refused;
- without it an admin assigns roles: an SSO user needs an account an admin created (or gets
  `RADSAL_OIDC_DEFAULT_ROLE` on first login when that is set) and keeps the role the admin
  gives.

An SSO login never takes over a local account with a password: that account keeps logging in
with its password, so a name the provider asserts cannot capture, say, the local admin.

Protocol pieces come from Authlib (PKCE S256, random tokens) and joserfc, Authlib's JOSE
library (ID token signature and claims). The three HTTP calls (discovery, keys, token) use the
standard library with short timeouts. The state, nonce and PKCE verifier travel in a signed,
ten-minute cookie, so the server keeps no per-login state.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.sessions import IssuedSession
from app.config import Settings
from app.errors import Forbidden, Invalid
from app.models import Role, User
from app.services import audit
from app.services.accounts.auth import start_session
from app.services.accounts.users import validate_display_name, validate_username

STATE_COOKIE = "radsal_oidc"
STATE_MAX_AGE_S = 600
HTTP_TIMEOUT_S = 10.0
DISCOVERY_TTL_S = 3600.0
ROLE_RANK = {Role.rater.value: 1, Role.researcher.value: 2, Role.admin.value: 3}
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

_discovery_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def enabled(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def _check_url(url: str, what: str) -> str:
    """https, or http on the loopback interface only (a provider started by tests or a dev)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS):
        return url
    raise Invalid(f"The single sign-on {what} must use https: {url!r}.")


def _get_json(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            data = json.loads(response.read(1_000_000))
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise Invalid(f"The single sign-on provider did not answer properly ({exc}).") from None
    if not isinstance(data, dict):
        raise Invalid("The single sign-on provider answered something that is not an object.")
    return data


def discover(settings: Settings) -> dict[str, Any]:
    """The provider's metadata (`/.well-known/openid-configuration`), cached for an hour."""
    issuer = _check_url(settings.oidc_issuer.rstrip("/"), "issuer")
    cached = _discovery_cache.get(issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
        return cached[1]
    meta = _get_json(issuer + "/.well-known/openid-configuration")
    if str(meta.get("issuer", "")).rstrip("/") != issuer:
        raise Invalid("The single sign-on provider names another issuer than configured.")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        _check_url(str(meta.get(key, "")), key.replace("_", " "))
    _discovery_cache[issuer] = (time.monotonic(), meta)
    return meta


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.resolved_secret_key(), salt="radsal-oidc-state")


@dataclass(frozen=True)
class LoginStart:
    """Where to send the browser, and the signed cookie that must come back with it."""

    url: str
    cookie: str


def start_login(settings: Settings, *, redirect_uri: str, next_path: str) -> LoginStart:
    meta = discover(settings)
    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    query = {
        "response_type": "code",
        "client_id": settings.oidc_client_id,
        "redirect_uri": redirect_uri,
        "scope": settings.oidc_scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    endpoint = str(meta["authorization_endpoint"])
    sep = "&" if urllib.parse.urlsplit(endpoint).query else "?"
    cookie = _serializer(settings).dumps(
        {"state": state, "nonce": nonce, "verifier": verifier, "next": next_path}
    )
    return LoginStart(endpoint + sep + urllib.parse.urlencode(query), cookie)


def _exchange_code(
    settings: Settings, meta: dict[str, Any], *, code: str, verifier: str, redirect_uri: str
) -> dict[str, Any]:
    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": settings.oidc_client_id,
            "client_secret": settings.oidc_client_secret,
        }
    ).encode()
    request = urllib.request.Request(
        str(meta["token_endpoint"]),
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            data = json.loads(response.read(1_000_000))
    except urllib.error.HTTPError as exc:
        raise Forbidden(f"The single sign-on provider refused the login ({exc.code}).") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise Invalid(f"The single sign-on provider did not answer properly ({exc}).") from None
    if not isinstance(data, dict) or not data.get("id_token"):
        raise Forbidden("The single sign-on provider sent no ID token.")
    return data


def _verify_id_token(
    settings: Settings, meta: dict[str, Any], id_token: str, nonce: str
) -> dict[str, Any]:
    keys = KeySet.import_key_set(_get_json(str(meta["jwks_uri"])))  # type: ignore[arg-type]
    try:
        token = jwt.decode(id_token, keys, algorithms=list(ID_TOKEN_ALGORITHMS))
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": str(meta["issuer"])},
            aud={"essential": True, "value": settings.oidc_client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise Forbidden(f"The single sign-on ID token is not valid ({exc}).") from None
    return dict(token.claims)


def role_from_claims(settings: Settings, claims: dict[str, Any]) -> str | None:
    """The highest radsal role the role claim names (after RADSAL_OIDC_ROLE_MAP), or None."""
    raw = claims.get(settings.oidc_role_claim)
    values = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
    mapping: dict[str, str] = {}
    for pair in settings.oidc_role_map.split(","):
        source, sep, role = pair.partition("=")
        if sep and role.strip() in ROLE_RANK:
            mapping[source.strip()] = role.strip()
    roles = [mapping.get(str(v), str(v)) for v in values]
    known = [r for r in roles if r in ROLE_RANK]
    return max(known, key=ROLE_RANK.__getitem__) if known else None


def _identity(claims: dict[str, Any]) -> tuple[str, str]:
    """The (iss, sub) pair: the only stable name of an end user (OpenID Connect Core 5.7)."""
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not issuer or len(issuer) > 512:
        raise Forbidden("The single sign-on ID token names no usable issuer.")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise Forbidden("The single sign-on ID token names no usable subject ('sub').")
    return issuer, subject


def _claimed_username(settings: Settings, claims: dict[str, Any]) -> str:
    raw_name = claims.get(settings.oidc_username_claim)
    if not isinstance(raw_name, str) or not raw_name:
        raise Forbidden(
            f"The single sign-on provider sent no {settings.oidc_username_claim!r}; "
            "ask your administrator."
        )
    try:
        return validate_username(raw_name)
    except Invalid:
        raise Forbidden(
            f"{raw_name!r} cannot be a radsal username; ask your administrator."
        ) from None


def _account(db: Session, settings: Settings, claims: dict[str, Any], ip: str) -> User:
    """The radsal account for a verified ID token. Every refusal comes before any account change.

    An account is found by (iss, sub) first. Only an account not yet bound to any identity is
    looked up by the username claim, and the first login binds it; an account bound to another
    identity is refused, so a user who renames themselves at the provider cannot become
    someone else, and one who is renamed keeps their account (and its radsal username)."""
    issuer, subject = _identity(claims)
    user = db.scalar(select(User).where(User.oidc_issuer == issuer, User.oidc_subject == subject))
    username = user.username if user is not None else _claimed_username(settings, claims)
    if user is None:
        user = db.scalar(select(User).where(func.lower(User.username) == username.lower()))
        if user is not None and user.password_hash is None and user.oidc_subject is not None:
            audit.record(
                db, actor=None, action="login.refused", object_type="user", object_id=user.id,
                subject=username, ip=ip,
                detail={"method": "oidc", "reason": "bound_to_another_identity",
                        "iss": issuer, "sub": subject},
            )  # fmt: skip
            raise Forbidden(
                f"The radsal account {username!r} belongs to another single sign-on identity; "
                "ask an admin."
            )
    if user is not None and user.password_hash is not None:
        raise Forbidden(
            f"{user.username!r} is a local account: log in with its password, not single sign-on."
        )
    claimed_role = role_from_claims(settings, claims) if settings.oidc_role_claim else None
    if settings.oidc_role_claim and claimed_role is None:
        raise Forbidden(f"Your sign-on account {username!r} has no radsal role; ask for one.")
    if user is not None and not user.is_active:
        raise Forbidden("This account is deactivated; ask an admin.")
    if user is None:
        role = claimed_role or settings.oidc_default_role
        if not role:
            raise Forbidden(
                f"There is no radsal account for {username!r} yet; ask an admin to add it."
            )
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        try:
            shown = validate_display_name(str(name))
        except Invalid:
            shown = ""
        user = User(
            username=username, display_name=shown, role=role, password_hash=None,
            oidc_issuer=issuer, oidc_subject=subject,
        )  # fmt: skip
        db.add(user)
        db.flush()
        audit.record(
            db, actor=None, action="user.created", object_type="user", object_id=user.id,
            detail={"username": username, "role": role, "via": "oidc",
                    "iss": issuer, "sub": subject}, ip=ip,
        )  # fmt: skip
    elif user.oidc_subject is None:
        user.oidc_issuer, user.oidc_subject = issuer, subject
        audit.record(
            db, actor=None, action="user.oidc_bound", object_type="user", object_id=user.id,
            subject=user.username, detail={"iss": issuer, "sub": subject}, ip=ip,
        )  # fmt: skip
    if claimed_role is not None and claimed_role != user.role:
        audit.record(
            db, actor=None, action="user.role_changed", object_type="user", object_id=user.id,
            detail={"from": user.role, "to": claimed_role, "via": "oidc"}, ip=ip,
        )  # fmt: skip
        user.role = claimed_role
    return user


@dataclass(frozen=True)
class LoginDone:
    user: User
    session: IssuedSession
    next_path: str


def finish_login(
    db: Session,
    settings: Settings,
    *,
    code: str,
    state: str,
    cookie: str,
    redirect_uri: str,
    ip: str = "",
) -> LoginDone:
    """Check the state, exchange the code, verify the ID token, open a browser session."""
    try:
        saved = _serializer(settings).loads(cookie, max_age=STATE_MAX_AGE_S)
    except BadSignature:
        raise Forbidden("This sign-on attempt expired or came from elsewhere; try again.") from None
    if not isinstance(saved, dict) or not state or saved.get("state") != state:
        raise Forbidden("This sign-on attempt does not match the one started here; try again.")
    meta = discover(settings)
    tokens = _exchange_code(
        settings, meta, code=code, verifier=str(saved["verifier"]), redirect_uri=redirect_uri
    )
    claims = _verify_id_token(settings, meta, str(tokens["id_token"]), str(saved["nonce"]))
    user = _account(db, settings, claims, ip)
    detail = {"method": "oidc", "iss": str(claims["iss"]), "sub": str(claims["sub"])}
    claimed = claims.get(settings.oidc_username_claim)
    if isinstance(claimed, str) and claimed.lower() != user.username.lower():
        detail["claimed_username"] = claimed[:128]  # renamed at the provider: kept here
    issued = start_session(db, settings, user, ip=ip, detail=detail)
    return LoginDone(user, issued, str(saved.get("next") or "/"))
