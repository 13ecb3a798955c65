"""The gateway's WebSocket protocol: uvicorn's, with its refusals in the API's JSON error shape.

A handshake that websockets refuses (no Sec-WebSocket-Key, a wrong version, an upgrade the app closes
before accepting) is answered by uvicorn with a short plain-text body; every error the platform gives is
`{"success": false, "error": ..., "code": ...}`.
"""

from __future__ import annotations

import email.utils
import http

import orjson
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.server import ServerProtocol

_CODES = {400: "bad_request", 403: "forbidden", 404: "not_found", 426: "upgrade_required",
          500: "internal_error"}


class _JsonRefusals(ServerProtocol):
    def reject(self, status: http.HTTPStatus | int, text: str) -> Response:
        status = http.HTTPStatus(status)
        sentence = text.strip().removeprefix("Failed to open a WebSocket connection: ") or status.phrase
        body = orjson.dumps({"success": False, "error": f"WebSocket refused: {sentence}",
                             "code": _CODES.get(status.value, "websocket_refused")})
        headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                           ("Content-Length", str(len(body))), ("Content-Type", "application/json")])
        return Response(status.value, status.phrase, headers, body)


class JsonRefusingWebSockets(WebSocketsSansIOProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # The subclass only answers refusals differently: the handshake state uvicorn set up stays as it is.
        self.conn.__class__ = _JsonRefusals
