"""One source of truth for configuration: `RADSAL_*` environment variables and `.env`."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime settings. Every field is documented in docs/configuration.md (a test checks)."""

    model_config = SettingsConfigDict(env_prefix="RADSAL_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where files, maps and SQLite live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite file in the data directory."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Torch device for inference: CUDA when available on auto."
    )
    secret_key: str = Field(
        default="", description="Signs cookies and CSRF tokens; random per process when empty."
    )
    max_upload_mb: int = Field(default=512, description="Largest accepted upload, in MiB.")
    max_zip_files: int = Field(default=5000, description="Most files accepted in one ZIP upload.")
    max_zip_uncompressed_mb: int = Field(
        default=4096, description="Largest total uncompressed size of one ZIP upload, in MiB."
    )
    max_zip_member_mb: int = Field(
        default=256, ge=1, description="Largest uncompressed size of one file inside a ZIP, in MiB."
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        ge=1,
        description="Most pixels one uploaded image may declare (DICOM: rows × columns × frames).",
    )
    trust_proxy: bool = Field(
        default=False,
        description="Believe X-Forwarded-Proto from a reverse proxy (HSTS, Secure cookies).",
    )
    session_hours: int = Field(default=12, description="Browser session lifetime in hours.")
    token_hours: int = Field(default=24, description="API bearer token lifetime in hours.")
    invite_hours: int = Field(default=72, description="Invite link lifetime in hours.")
    login_max_failures: int = Field(
        default=5, description="Failed logins per username or address before a lockout window."
    )
    login_max_failures_per_ip: int = Field(
        default=50,
        description="Failed logins from one client address (any username) before a lockout.",
    )
    login_window_minutes: int = Field(default=15, description="Lockout window for failed logins.")
    secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto", description="Secure cookie flag: auto = when the request came over HTTPS."
    )
    worker: Literal["inprocess", "external"] = Field(
        default="inprocess",
        description="inprocess: the server runs jobs itself; external: `radsal worker` does.",
    )
    batch_size: int = Field(default=16, description="Saliency batch size for generation jobs.")
    task_heartbeat_seconds: float = Field(
        default=30.0, gt=0, description="How often a worker computing a task proves it is alive."
    )
    task_stale_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A running task whose heartbeat is older than this is reclaimed (PostgreSQL).",
    )
    task_max_attempts: int = Field(
        default=3, ge=1, description="Starts of one task before a crashing task fails its job."
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000", description="Public URL used in printed invite links."
    )
    # Single sign-on (OpenID Connect). Off while oidc_issuer is empty; local accounts always work.
    oidc_issuer: str = Field(
        default="",
        description="OpenID Connect issuer URL (https; http only on loopback); empty = SSO off.",
    )
    oidc_client_id: str = Field(default="", description="Client id registered at the provider.")
    oidc_client_secret: str = Field(
        default="", description="Client secret for the provider's token endpoint."
    )
    oidc_scopes: str = Field(
        default="openid profile email", description="Scopes asked for at login (space-separated)."
    )
    oidc_username_claim: str = Field(
        default="preferred_username",
        description="ID-token claim that is the radsal username.",
    )
    oidc_role_claim: str = Field(
        default="",
        description="Claim with the user's roles or groups; empty = an admin assigns roles.",
    )
    oidc_role_map: str = Field(
        default="",
        description="Claim values to roles, e.g. 'rad-admins=admin,readers=rater' (default: same).",
    )
    oidc_default_role: Literal["", "rater", "researcher", "admin"] = Field(
        default="",
        description="Role of a new SSO user with no role claim; empty = an admin adds them first.",
    )
    oidc_button_label: str = Field(
        default="Log in with single sign-on", description="Text of the SSO button on /login."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'radsal.sqlite').resolve()}"

    def resolved_secret_key(self) -> str:
        if not self.secret_key:
            self.secret_key = _process_secret()
        return self.secret_key


@lru_cache(maxsize=1)
def _process_secret() -> str:
    return secrets.token_urlsafe(32)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
