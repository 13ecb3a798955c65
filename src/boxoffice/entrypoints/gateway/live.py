"""The live stream and the pages: one public origin for the API, the monitor and its updates."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from starlette.responses import FileResponse, Response, StreamingResponse

from boxoffice.entrypoints.gateway.deps import GatewayDep
from boxoffice.entrypoints.gateway.queue_watch import DATABASE_AWAY
from boxoffice.entrypoints.gateway.responses import error
from boxoffice.entrypoints.gateway.schemas import EVENT_ID, ErrorBody
from boxoffice.entrypoints.gateway.state import Gateway
from boxoffice.service_layer.live import change_number

router = APIRouter(tags=["live"])

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
# Checked with fullmatch: `$` also matches before a trailing "\n", which would reach the request line below.
_EVENT_ID = re.compile(EVENT_ID)


@router.get("/", include_in_schema=False)
async def monitor() -> Response:
    """The live monitor and booking page."""
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/events/{event_id}/dashboard", include_in_schema=False)
async def dashboard(event_id: str, gw: GatewayDep) -> Response:
    """The organiser's view of the sale: sold / held / available over time, rates, revenue, lag, the queue. An
    unknown event's page answers 404, as its API does, and is the same page: its script says so."""
    if not _EVENT_ID.fullmatch(event_id):
        return error(422, "invalid_id", "Malformed event id")
    try:
        unknown = await gw.seats.seats_of(event_id) is None
    except DATABASE_AWAY:  # not known is not unknown: the page's script asks again
        unknown = False
    return FileResponse(WEB_DIR / "dashboard.html", status_code=404 if unknown else 200,
                        headers={"Cache-Control": "no-cache"})


_UNAVAILABLE = "Live updates are unavailable right now; retry in a moment"


async def _open_stream(gw: Gateway, event_id: str,
                       last: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | Response:
    """The event's stream from the realtime service, past its HTTP head; or the error to answer."""
    target = urlsplit(gw.settings.realtime_url or "")
    try:
        reader, writer = await asyncio.open_connection(target.hostname, target.port)
    except OSError:
        return error(503, "live_unavailable", _UNAVAILABLE, headers={"Retry-After": "2"})
    resume = f"Last-Event-ID: {last}\r\n" if change_number(last) is not None else ""
    writer.write(f"GET /events/{event_id}/live HTTP/1.1\r\nHost: realtime\r\n{resume}\r\n".encode())
    try:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        writer.close()
        return error(503, "live_unavailable", _UNAVAILABLE, headers={"Retry-After": "2"})
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        body = await reader.read()
        writer.close()
        return Response(body, status_code=status, media_type="application/json")
    return reader, writer


@router.websocket("/ws/events/{event_id}")
async def live_websocket(websocket: WebSocket, event_id: str) -> None:
    """The same stream as GET /events/{eventId}/live, one JSON text message per SSE message (snapshot, then
    changes; each carries its `seq`). Resume with `?lastEventId=N`. On an error the socket gets one
    `{"type": "error", "success": false, "code", "error"}` message (the API's error shape) and closes (1008
    unknown event, 1013 try again later)."""
    gw = websocket.app.state.gateway
    await websocket.accept()
    if not _EVENT_ID.fullmatch(event_id):
        await _refuse(websocket, 1008, {"code": "invalid_id", "error": "Malformed event id"})
        return
    opened = await _open_stream(gw, event_id, websocket.query_params.get("lastEventId", ""))
    if isinstance(opened, Response):
        body = orjson.loads(opened.body)
        await _refuse(websocket, 1008 if opened.status_code == 404 else 1013,
                      {"code": body.get("code"), "error": body.get("error")})
        return
    reader, writer = opened

    async def forward() -> None:
        buffered = b""
        while chunk := await reader.read(65536):
            buffered += chunk
            *messages, buffered = buffered.split(b"\n\n")
            for message in messages:
                data = [line[6:] for line in message.split(b"\n") if line.startswith(b"data: ")]
                if data:
                    await websocket.send_text(b"\n".join(data).decode())

    async def until_closed() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # a client has nothing to say here

    forwarding, closing = asyncio.ensure_future(forward()), asyncio.ensure_future(until_closed())
    try:
        await asyncio.wait((forwarding, closing), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (forwarding, closing):
            task.cancel()
        writer.close()
    for task in (forwarding, closing):
        if task.done() and not task.cancelled():
            task.exception()  # taken: a send to a client that has just gone is no error of ours
    if closing.done() and not closing.cancelled():
        return  # the client closed: nothing more to say to it
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(1013)  # the realtime service went away: reconnect with the last seq


async def _refuse(websocket: WebSocket, code: int, body: dict[str, object]) -> None:
    await websocket.send_text(orjson.dumps({"type": "error", "success": False, **body}).decode())
    await websocket.close(code)


@router.get("/events/{event_id}/live", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "A snapshot of the seat map, then one message per seat change; "
                                            "each message's SSE id is the event's change sequence number"},
                       404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}})
async def live(event_id: Annotated[str, PathParam(max_length=64)], request: Request, gw: GatewayDep) -> Response:
    """Server-Sent Events from the realtime service. Send `Last-Event-ID` to resume after a disconnect."""
    if not _EVENT_ID.fullmatch(event_id):
        return error(422, "invalid_id", "Malformed event id")
    last = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or ""
    opened = await _open_stream(gw, event_id, last)
    if isinstance(opened, Response):
        return opened
    reader, writer = opened

    async def relay() -> AsyncIterator[bytes]:
        # Raw bytes through: no HTTP client parses every frame again on its way to the browser.
        try:
            while chunk := await reader.read(65536):
                yield chunk
        except OSError:
            return  # the realtime service went away: the browser reconnects with its last id
        finally:
            writer.close()

    return StreamingResponse(relay(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
