"""Route registration. Each module exposes `router` (pages) and/or `api_router` (JSON API)."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

# Order matters only for readability of /openapi.json.
ROUTE_MODULES = (
    "app.routes.health",
    "app.routes.auth",
    "app.routes.oidc",
    "app.routes.home",
    "app.routes.users",
    "app.routes.checkpoints",
    "app.routes.images",
    "app.routes.studies",
    "app.routes.trial_browser",
    "app.routes.preview",
    "app.routes.study_rounds",
    "app.routes.study_live",
    "app.routes.map_metrics",
    "app.routes.jobs",
    "app.routes.admin",
    "app.routes.rater",
    "app.routes.viewer",
    "app.routes.analysis",
    "app.routes.apidocs",
)


def register_routes(app: FastAPI, *, api_prefix: str) -> None:
    for name in ROUTE_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "router"):
            app.include_router(module.router)
        if hasattr(module, "api_router"):
            app.include_router(module.api_router, prefix=api_prefix)
