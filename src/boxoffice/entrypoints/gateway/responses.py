"""JSON responses, and the handlers that turn exceptions into error answers (domain refusals: answers.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from boxoffice.adapters.postgres import TRANSIENT_ERRORS

log = logging.getLogger(__name__)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra, self.headers = status, code, message, extra, headers


def error(http_status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSON:
    return JSON({"success": False, "error": message, "code": code, **extra}, status_code=http_status,
                headers=headers)


_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "bad_request"}


def _describe(detail: dict[str, Any]) -> str:
    if detail.get("type") == "json_invalid":  # its location is the body and the character where it failed
        where = [p for p in detail.get("loc", ()) if isinstance(p, int)]
        return "The request body is not valid JSON" + (f" (at character {where[0]})" if where else "")
    if detail.get("type") == "missing" and tuple(detail.get("loc", ())) == ("body",):
        return "A JSON request body is required"
    location = ".".join(str(p) for p in detail.get("loc", ()) if p != "body")
    return f"{location}: {detail.get('msg', 'invalid')}" if location else str(detail.get("msg", "invalid"))


def _field(detail: dict[str, Any]) -> str:
    if detail.get("type") == "json_invalid":
        return "body"
    return ".".join(str(p) for p in detail.get("loc", ()) if p != "body") or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> Response:
        return error(exc.status, exc.code, exc.message, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        details = [{"field": _field(d), "message": _describe(d)} for d in exc.errors()]
        message = "; ".join(_describe(d) for d in exc.errors()) or "Invalid request"
        return error(422, "validation_error", message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body that is not UTF-8 or not a form: malformed like any other
            return error(422, "validation_error", "The request body could not be parsed (not UTF-8 JSON or form)")
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"No such resource: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error(exc.status_code, _STATUS_CODES.get(exc.status_code, "http_error"), message,
                     headers=getattr(exc, "headers", None))

    async def _database_down(request: Request, exc: Exception) -> Response:
        # In an outage that the gateway's health reads already logged, one line per request is noise.
        gateway = getattr(request.app.state, "gateway", None)
        quiet = gateway is not None and gateway.health.outage.ongoing
        (log.debug if quiet else log.warning)("database unavailable on %s %s: %r", request.method,
                                              request.url.path, exc)
        return error(503, "database_unavailable", "The database is unavailable for a moment; please retry",
                     headers={"Retry-After": "2"})

    for transient in TRANSIENT_ERRORS:
        if transient is not asyncio.TimeoutError and issubclass(transient, Exception):
            app.add_exception_handler(transient, _database_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", "Something went wrong on our side; nothing was changed by this request")
