"""The live stream and the pages: one public origin for the API, the monitor and its updates."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Path as PathParam, Request
from starlette.responses import FileResponse, Response, StreamingResponse

from boxoffice.entrypoints.gateway.responses import error
from boxoffice.entrypoints.gateway.schemas import EVENT_ID
from boxoffice.entrypoints.gateway.state import GatewayDep

router = APIRouter(tags=["live"])

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
_EVENT_ID = re.compile(EVENT_ID)


@router.get("/", include_in_schema=False)
async def monitor() -> Response:
    """The live monitor and booking page."""
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/events/{event_id}/live", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "A snapshot of the seat map, then one message per seat change; "
                                            "each message's SSE id is the event's change sequence number"}})
async def live(event_id: Annotated[str, PathParam(max_length=64)], request: Request, gw: GatewayDep) -> Response:
    """Server-Sent Events from the realtime service. Send `Last-Event-ID` to resume after a disconnect."""
    if not _EVENT_ID.match(event_id):
        return error(422, "invalid_id", "Malformed event id")
    headers = {}
    if last := request.headers.get("last-event-id") or request.query_params.get("lastEventId"):
        headers["Last-Event-ID"] = last
    target = f"{(gw.settings.realtime_url or '').rstrip('/')}/events/{event_id}/live"
    try:
        upstream = await gw.upstream.send(gw.upstream.build_request("GET", target, headers=headers), stream=True)
    except httpx.HTTPError:
        return error(503, "live_unavailable", "Live updates are unavailable right now; retry in a moment",
                     headers={"Retry-After": "2"})
    if upstream.status_code != 200:
        body = await upstream.aread()
        await upstream.aclose()
        return Response(body, status_code=upstream.status_code, media_type="application/json")

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # the realtime service went away: the browser reconnects with its last id
        finally:
            await upstream.aclose()

    return StreamingResponse(relay(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
