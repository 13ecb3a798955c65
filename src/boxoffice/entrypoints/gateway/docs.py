"""`/docs` (Swagger UI) and `/redoc` without a CDN: their scripts and styles come from the fastapi-offline
wheel, served under /static/docs/, and the pages run no inline script, so the pages' content security policy
holds for them too (Redoc writes its styles into <style> elements, so /redoc alone allows inline styles; its
search runs in a worker made from a blob, which the policy refuses, so it is off; its "powered by" logo is
on Redoc's CDN, which the policy keeps the browser from asking)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
router = APIRouter(include_in_schema=False)

_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>boxoffice API</title>
<link rel="icon" href="/static/docs/favicon.png"><link rel="stylesheet" href="/static/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/docs/swagger-ui-bundle.js"></script><script src="/static/swagger-init.js"></script>
</body></html>"""

_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>boxoffice API</title>
<link rel="icon" href="/static/docs/favicon.png"></head>
<body><redoc spec-url="/openapi.json" disable-search></redoc><script src="/static/docs/redoc.standalone.js"></script>
</body></html>"""


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_SWAGGER)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC)


def install(app: FastAPI) -> None:
    """Before the /static mount of the pages: the longer path must match first."""
    app.include_router(router)
    app.mount("/static/docs", StaticFiles(directory=ASSETS), name="docs-assets")
