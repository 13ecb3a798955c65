"""The embedded mailbox's web side: a page to read the mail, and the same as JSON, under the mailbox's key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.adapters.mailbox_store import MailStore

PAGE = Path(__file__).resolve().parent.parent / "web" / "mailbox.html"
# The mail's own HTML may show its inline images and styles, nothing else: no scripts, no remote loads.
HTML_POLICY = "default-src 'none'; img-src 'self' {origin} data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
# Whatever a sender put in a part or the raw message is served as data, never as a page of this origin.
DATA_POLICY = "default-src 'none'; sandbox"
# Parts a browser may show in place: raster images, which cannot run anything. Everything else is a download.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# The mailbox's own page: its one inline script (by its hash), its styles, its own API and HTML view.
PAGE_POLICY = ("default-src 'none'; script-src '{script}'; style-src 'unsafe-inline'; connect-src 'self'; "
               "frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# On every answer: no type sniffing (a part declared text/plain stays text), no address leaked to links.
EVERY_RESPONSE = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


def http_app(store: MailStore, key: str) -> ASGIApp:
    """Everything is served under `/<key>/`: the mail holds tickets and sign-in links, and the port is open to
    every user of the machine (and to the network when the platform listens beyond 127.0.0.1)."""
    page_policy = PAGE_POLICY.format(script=_script_hash(PAGE.read_text()))

    def found(request: Request) -> dict[str, Any] | None:
        return store.summary(request.path_params["id"])

    async def page(_: Request) -> Response:
        return FileResponse(PAGE, media_type="text/html", headers={"Content-Security-Policy": page_policy})

    async def listing(request: Request) -> Response:
        to = request.query_params.get("to", "").lower()
        limit = request.query_params.get("limit", "")
        everything = [s for s in (store.summary(i) for i in store.ids()) if s]
        chosen = [s for s in everything if not to or to in (a.lower() for a in s["to"])]
        return JSONResponse(chosen[:int(limit) if limit.isdigit() else 500])

    async def one(request: Request) -> Response:
        summary = found(request)
        return JSONResponse(summary) if summary else _not_found()

    async def raw(request: Request) -> Response:
        data = store.raw(request.path_params["id"])
        if data is None:
            return _not_found()
        return Response(data, media_type="message/rfc822", headers={
            "Content-Security-Policy": DATA_POLICY,
            "Content-Disposition": _disposition("attachment", f"{request.path_params['id']}.eml")})

    async def html(request: Request) -> Response:
        summary = found(request)
        if not summary or summary["html"] is None:
            return _not_found()
        base = f"{request.scope.get('root_path', '')}/messages/{summary['id']}/parts/"
        body = re.sub(r"""(["'])cid:([^"']+)\1""", lambda m: f"{m[1]}{base}{quote(m[2], safe='@')}{m[1]}",
                      summary["html"])
        # The page shows it in a sandboxed frame, whose own origin is opaque: name ours for the images.
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return Response(body, media_type="text/html",
                        headers={"Content-Security-Policy": HTML_POLICY.format(origin=origin)})

    async def part(request: Request) -> Response:
        found_part = store.part(request.path_params["id"], request.path_params["cid"])
        if found_part is None:
            return _not_found()
        data, content_type, filename = found_part
        how = "inline" if content_type in INLINE_TYPES else "attachment"
        return Response(data, media_type=content_type, headers={
            "Content-Security-Policy": DATA_POLICY, "Content-Disposition": _disposition(how, filename)})

    async def no_route(_: Request, __: Exception) -> Response:
        return _not_found()

    mail = Starlette(exception_handlers={404: no_route}, routes=[
        Route("/", page), Route("/messages", listing), Route("/messages/{id}", one),
        Route("/messages/{id}/raw", raw), Route("/messages/{id}/html", html),
        Route("/messages/{id}/parts/{cid:path}", part),
    ])
    return _SecurityHeaders(_Keyed(mail, key))


class _Keyed:
    """Passes on only paths under `/<key>/` (as the app's root path); `/<key>` is sent there, anything else is
    404 without a hint of what is inside."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        if not key or "/" in key:
            raise ValueError("the mailbox key is one non-empty path segment")
        self.app, self.key = app, key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        segment, slash, _ = scope["path"][1:].partition("/")
        if not hmac.compare_digest(segment.encode(), self.key.encode()):
            await JSONResponse({"success": False, "code": "not_found",
                                "error": "Open the mailbox at the address that `up` printed (./run.sh up or "
                                         "boxoffice up): it carries the mailbox's key"}, 404)(scope, receive, send)
        elif not slash:
            await RedirectResponse(f"/{self.key}/", 308)(scope, receive, send)
        else:
            await self.app({**scope, "root_path": f"{scope.get('root_path', '')}/{self.key}"}, receive, send)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *EVERY_RESPONSE]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _script_hash(page: str) -> str:
    match = re.search(r"<script>(.*?)</script>", page, re.DOTALL)
    assert match, "the mailbox page has its script inline"
    return "sha256-" + base64.b64encode(hashlib.sha256(match[1].encode()).digest()).decode()


def _disposition(how: str, filename: str | None) -> str:
    """With the sender's file name as a quoted fallback of safe characters and in full, encoded (RFC 6266)."""
    if not filename:
        return how
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:100]
    return f"{how}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _not_found() -> Response:
    return JSONResponse({"success": False, "error": "No such message", "code": "message_not_found"}, 404)
