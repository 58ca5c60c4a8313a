"""Application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

from app.config import PROJECT_ROOT, Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.dbgate import DbGate, gate_capacity
from app.handlers import document_error_shape, install_error_handlers
from app.middleware import install_log_redaction, install_middleware
from app.routes import register_routes

API_PREFIX = "/api/v1"
# Swagger UI 5 (OpenAPI 3.1, which FastAPI writes), as files: no CDN, no inline script.
SWAGGER_UI_DIR = Path(str(files("fastapi_offline") / "static"))


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    migrate: bool = True,
    start_worker: bool = True,
) -> FastAPI:
    """Build the app. Tests pass their own engine and skip migrations/worker start-up."""
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine or make_engine(settings.resolved_database_url())
    settings.resolved_secret_key()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            from app.migrate import upgrade_database

            upgrade_database(engine)
        worker = None
        if start_worker and settings.worker == "inprocess":
            from app.worker import InProcessWorker

            worker = InProcessWorker(app.state.sessionmaker, settings)
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(
        title="radsal",
        version="0.1.0",
        description="Saliency-map reader studies for medical imaging.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # /api/docs is app.routes.apidocs: local assets, strict CSP
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)

    install_middleware(app, settings)
    install_log_redaction()  # invite tokens never reach a log line
    app.add_middleware(DbGate, capacity=gate_capacity(engine))  # see app/dbgate.py
    install_error_handlers(app)
    # Before "/static": the first matching mount wins. The Swagger UI assets ship with the
    # fastapi-offline package, so /api/docs works offline (see app/routes/apidocs.py).
    app.mount(
        "/static/vendor/swagger-ui",
        StaticFiles(directory=str(SWAGGER_UI_DIR)),
        name="swagger-ui",
    )
    app.mount("/static", StaticFiles(directory=str(PROJECT_ROOT / "static")), name="static")
    register_routes(app, api_prefix=API_PREFIX)
    document_error_shape(app)
    return app
