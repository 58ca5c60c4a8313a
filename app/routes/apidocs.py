"""`/api/docs`: the Swagger UI for `/openapi.json`, served entirely from this server.

FastAPI's built-in page loads its assets from a CDN and starts them with an inline script,
both of which the content security policy (`script-src 'self'`) rightly blocks, and a hospital
network is often offline anyway. Here the assets come from the `fastapi-offline` package
(mounted at `/static/vendor/swagger-ui` by `app.main`) and the start-up code is a static file,
so the page works under the same strict policy as every other page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.auth.deps import public
from app.web import render

router = APIRouter(tags=["docs"])

SWAGGER_UI_URL = "/static/vendor/swagger-ui"


@router.get("/api/docs", dependencies=[Depends(public)], include_in_schema=False)
def api_docs(request: Request) -> Response:
    return render(request, "api_docs.html", {"swagger_ui": SWAGGER_UI_URL})
