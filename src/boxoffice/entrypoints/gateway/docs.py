"""`/docs` (Swagger UI) and `/redoc` without a CDN: their scripts and styles come from the fastapi-offline
wheel, served under /static/docs/, and the pages run no inline script, so the pages' content security policy
holds for them too (Redoc writes its styles into <style> elements, so /redoc alone allows inline styles; its
search runs in a worker made from a blob, which the policy refuses, so it is off). Redoc's script names one
thing on another origin, its "powered by" logo on Redoc's CDN, with no option to leave it out: the gateway
serves the script with an image that cannot load in its place, and Redoc shows the link without the logo,
as it does whenever the logo fails to load."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
NO_IMAGE = b"data:,"  # an empty data URL: no request, and no image (the img's onError takes it away)
router = APIRouter(include_in_schema=False)

_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>boxoffice API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/docs/favicon.png"><link rel="stylesheet" href="/static/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/docs/swagger-ui-bundle.js"></script><script src="/static/swagger-init.js"></script>
</body></html>"""

_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>boxoffice API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/docs/favicon.png"></head>
<body><redoc spec-url="/openapi.json" disable-search></redoc><script src="/static/docs/redoc.standalone.js"></script>
</body></html>"""


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_SWAGGER)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC)


@router.get("/static/docs/redoc.standalone.js")
async def redoc_script(request: Request) -> Response:
    script, etag = _redoc_script()
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(script, media_type="text/javascript; charset=utf-8", headers={"ETag": etag})


@cache
def _redoc_script() -> tuple[bytes, str]:
    script = (ASSETS / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO, NO_IMAGE)
    return script, f'"{hashlib.sha256(script).hexdigest()[:32]}"'


def install(app: FastAPI) -> None:
    """Before the /static mount of the pages: the longer path must match first."""
    app.include_router(router)
    app.mount("/static/docs", StaticFiles(directory=ASSETS), name="docs-assets")
