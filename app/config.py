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
    base_url: str = Field(
        default="http://127.0.0.1:8000", description="Public URL used in printed invite links."
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
