"""ASGI middleware of the gateway: body size limit, security headers on every answer, CORS when configured, HEAD
answered as GET without the body."""

from __future__ import annotations

import asyncio
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.entrypoints.gateway.responses import error

MAX_BODY_BYTES = 64 * 1024

# The pages load only their own scripts and styles; nothing may frame them.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
EVERY_ANSWER_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                        (b"x-frame-options", b"DENY")]
_PAGES = ("/", "/static/")
# An event's pages: its waiting room and its dashboard (a POST to the queue's path gets the header too, harmlessly).
_EVENT_PAGE = re.compile(r"/events/[^/]+/(queue|dashboard)")
# Redoc puts its styles in <style> elements it writes; its scripts are held to the same policy.
REDOC_POLICY = PAGE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


# The one route that reads a form (OAuth2's password grant); every other body is JSON.
_FORM_ROUTES = {"/auth/token": (b"application/x-www-form-urlencoded", b"multipart/form-data")}
_JSON = b"application/json"


def _is_json(media_type: bytes) -> bool:
    return media_type == _JSON or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))


class BodySizeLimit:
    """Refuses bodies larger than the limit: by Content-Length before reading, or while reading a chunked one;
    bodies in a content coding (gzip and the like, which no route reads: they would be taken as JSON and fail as
    malformed) with 415, unread; and a body declared as anything but JSON (a form where JSON is read, text/plain)
    with 415, unread. A body without a Content-Type is read as JSON."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        coding = headers.get(b"content-encoding", b"identity").strip().lower()
        if coding != b"identity" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            response = error(415, "unsupported_content_encoding",
                             f"Request bodies are read as they are sent: Content-Encoding "
                             f"{coding.decode('latin-1')[:40]!r} is not supported",
                             headers={"Accept-Encoding": "identity"})
            await response(scope, receive, send)
            return
        length = headers.get(b"content-length")
        content_type = headers.get(b"content-type")
        if content_type and content_type.strip() and scope["method"] not in ("GET", "HEAD", "OPTIONS") \
                and (length is None or length.strip() not in (b"", b"0")):
            media_type = content_type.split(b";")[0].strip().lower()
            if not _is_json(media_type) and media_type not in _FORM_ROUTES.get(scope["path"], ()):
                response = error(415, "unsupported_media_type",
                                 f"Request bodies are JSON: send Content-Type: application/json, not "
                                 f"{media_type.decode('latin-1')[:60]!r}")
                await response(scope, receive, send)
                return
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if headers.get(b"transfer-encoding") is None:
            await self.app(scope, receive, send)
            return
        # Chunked: read it all (it is small or refused), then hand it on in one piece.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error(413, "payload_too_large", f"Request bodies are limited to {self.limit} bytes")
        await response(scope, receive, send)


class SecurityHeaders:
    """nosniff, no referrer and no framing on every answer; a content security policy on the pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = list(EVERY_ANSWER_HEADERS)
        if path in ("/", "/docs") or path.startswith(_PAGES[1]) or _EVENT_PAGE.fullmatch(path):
            extra.append((b"content-security-policy", PAGE_POLICY.encode()))
        elif path == "/redoc":
            extra.append((b"content-security-policy", REDOC_POLICY.encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_DISCONNECT: Message = {"type": "http.disconnect"}


class HeadAsGet:
    """HEAD is GET without the body (RFC 9110 §9.3.2), for every GET route. The app sees a GET; uvicorn, whose
    scope keeps the request's own method, writes the head of the answer and no body. Once the head is out, the
    app reads a disconnect, so a stream behind a GET (a live feed) ends at once instead of running unread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        answered = asyncio.Event()

        async def send_head(message: Message) -> None:
            if answered.is_set():
                return
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                answered.set()

        async def receive_until_answered() -> Message:
            if answered.is_set():
                return _DISCONNECT
            reading, waiting = asyncio.ensure_future(receive()), asyncio.ensure_future(answered.wait())
            try:
                await asyncio.wait({reading, waiting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if reading.done():
                return reading.result()
            reading.cancel()
            return _DISCONNECT

        await self.app({**scope, "method": "GET"}, receive_until_answered, send_head)
