"""The waiting room's API and page (CONTRACT §8.1): join, status, live status, on-sale settings."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Path, Request
from starlette.responses import FileResponse, Response, StreamingResponse

from boxoffice import views
from boxoffice.domain import errors, moments, proof_of_work
from boxoffice.domain.accounts import Principal
from boxoffice.domain.waiting_room import OnSale, first_opening, sale_opened
from boxoffice.entrypoints.gateway.access import BODY_TOO_LARGE, LIMITED, OWNED, require_event_organiser
from boxoffice.entrypoints.gateway.answers import refuse
from boxoffice.entrypoints.gateway.bookings import publish_command
from boxoffice.entrypoints.gateway.deps import GatewayDep, JoiningCaller, OnSaleChanger
from boxoffice.entrypoints.gateway.live import WEB_DIR
from boxoffice.entrypoints.gateway.queue_watch import DATABASE_AWAY, Watcher
from boxoffice.entrypoints.gateway.replies import within
from boxoffice.entrypoints.gateway.responses import JSON, ApiError
from boxoffice.entrypoints.gateway.schemas import (
    EVENT_ID,
    ON_SALE_EXAMPLES,
    QUEUE_EXAMPLES,
    QUEUE_TOKEN,
    ErrorBody,
    NewOnSale,
    OnSaleChange,
    OnSaleView,
    QueueChallenge,
    QueueChallengeRequest,
    QueueJoin,
    QueueJoined,
    QueueStatus,
)
from boxoffice.messages import ONSALE_CHANGE_REQUESTED, QUEUE_JOINED, Message, iso, utc_now
from boxoffice.service_layer.event_creation import on_sale_to_data

router = APIRouter(tags=["waiting room"], responses=BODY_TOO_LARGE)

EventPath = Annotated[str, Path(max_length=64)]
TokenPath = Annotated[str, Path(max_length=64)]
_EVENT_ID = re.compile(EVENT_ID)
_QUEUE_TOKEN = re.compile(QUEUE_TOKEN)
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}, 409: {"model": ErrorBody},
                                            422: {"model": ErrorBody}}
# An open live status says something at least this often, so that proxies keep it open.
KEEPALIVE_SECONDS = 15.0


def _check_event_id(event_id: str) -> None:
    if not _EVENT_ID.fullmatch(event_id):
        raise ApiError(422, "invalid_id", "Malformed event id")


def _check_token(queue_token: str) -> None:
    if not _QUEUE_TOKEN.fullmatch(queue_token):
        raise ApiError(422, "invalid_id", "Malformed queue token")


async def _active_room(gw: GatewayDep, event_id: str) -> None:
    """404 for an unknown event, 409 for one without an active waiting room."""
    room = await gw.queue.room(event_id)
    if room is not None and room.enabled:
        return
    if await gw.seats.seats_of(event_id) is None:
        raise refuse(errors.EventNotFound.code, f"Event {event_id} does not exist")
    raise refuse(errors.NoWaitingRoom.code, f"Event {event_id} has no waiting room")


def _visitor(visitor_id: str | None, caller: Principal | None) -> str:
    if caller is None:
        if visitor_id is None:
            raise ApiError(422, "validation_error", "visitorId: Field required", details=[
                {"field": "visitorId", "message": "visitorId: Field required"}])
        return visitor_id
    if visitor_id is not None and visitor_id != caller.user_id:
        raise ApiError(403, "user_mismatch", f"visitorId must be your own ({caller.user_id}) or left out")
    return caller.user_id


def _check_proof(gw: GatewayDep, body: QueueJoin, event_id: str, visitor_id: str) -> None:
    """With BOXOFFICE_QUEUE_PROOF_OF_WORK_BITS set, a join carries a solved challenge of its own visitor."""
    bits = gw.settings.queue_proof_of_work_bits
    if bits == 0:
        return
    if body.proof is None:
        raise refuse(errors.ProofOfWorkRequired.code, "This waiting room asks for a proof of work: get a challenge "
                     f"at POST /events/{event_id}/queue/challenge and send its solution as `proof`", bits=bits)
    problem = gw.queue.tokens.challenge_problem(body.proof.challenge, event_id, visitor_id, time.time())
    if problem is None and not proof_of_work.solves(body.proof.challenge, body.proof.solution, bits):
        problem = f"the solution does not give {bits} leading zero bits"
    if problem is not None:
        raise refuse(errors.ProofOfWorkInvalid.code, f"The proof of work does not stand: {problem}", bits=bits)


@router.post("/events/{event_id}/queue/challenge", response_model=QueueChallenge, responses={**_ERRORS, **OWNED})
async def queue_challenge(event_id: EventPath, body: QueueChallengeRequest, gw: GatewayDep,
                          caller: JoiningCaller) -> Response:
    """A proof-of-work challenge for one visitor's join (`bits` 0: this platform asks for none). Find a decimal
    `solution` such that sha256("<challenge>:<solution>") starts with `bits` zero bits, and join with
    `"proof": {"challenge", "solution"}` before `expiresAt`."""
    _check_event_id(event_id)
    visitor_id = _visitor(body.visitor_id, caller)
    await _active_room(gw, event_id)
    expires = int(time.time()) + gw.settings.queue_proof_seconds
    return JSON({"success": True, "challenge": gw.queue.tokens.challenge(event_id, visitor_id, expires),
                 "bits": gw.settings.queue_proof_of_work_bits,
                 "expiresAt": iso(datetime.fromtimestamp(expires, UTC))})


async def _joined(gw: GatewayDep, event_id: str, queue_token: str, visitor_id: str, position: int | None,
                  admitted_at: datetime | None, status_code: int) -> Response:
    """The join's answer: the place's status as GET .../queue/{queueToken} tells it (expired once the admission
    has run out)."""
    room = await gw.queue.room(event_id)
    assert room is not None
    state, _ = gw.queue.status(room, visitor_id, position, admitted_at)
    return JSON({"success": True, "eventId": event_id, "queueToken": queue_token, "status": state.status,
                 "position": position, "ahead": state.ahead, "opensAt": iso(room.serving.opens_at),
                 "statusUrl": f"/events/{event_id}/queue/{queue_token}"}, status_code=status_code)


@router.post("/events/{event_id}/queue", status_code=201,
             responses={200: {"model": QueueJoined, "description": "Joined before: the same token and place"},
                        201: {"model": QueueJoined}, 202: {"model": QueueJoined}, **_ERRORS, **LIMITED})
async def join_queue(event_id: EventPath, body: Annotated[QueueJoin, Body(openapi_examples=QUEUE_EXAMPLES)],
                     request: Request, gw: GatewayDep,
                     caller: JoiningCaller) -> Response:
    """Join the event's waiting room. Before the opening the place is not yet known (`position: null`): at
    the opening everyone who joined before gets a random place; later visitors queue behind, in order.
    202: the join is safely in Kafka but the waiting room has not placed it yet; see `statusUrl`."""
    _check_event_id(event_id)
    visitor_id = _visitor(body.visitor_id, caller)
    gw.access.limit_join(request, caller.user_id if caller else None)
    await _active_room(gw, event_id)
    _check_proof(gw, body, event_id, visitor_id)
    queue_token = gw.queue.tokens.queue_token(event_id, visitor_id)
    place = await views.queue_place(gw.pool, event_id, queue_token)
    if place is not None:
        return await _joined(gw, event_id, queue_token, visitor_id, place["position"], place["admitted_at"], 200)

    request_id = gw.request_ids.new()
    message = Message(QUEUE_JOINED, event_id, {"visitorId": visitor_id, "queueToken": queue_token}, request_id)
    reply = gw.replies.expect(request_id)
    try:
        await publish_command(gw, message)
        placed = await within(reply, gw.settings.booking_reply_seconds)
    except TimeoutError:
        return await _joined(gw, event_id, queue_token, visitor_id, None, None, 202)
    finally:
        gw.replies.forget(request_id, reply)
    code = placed.data.get("code")
    if code == errors.EventCancelled.code:
        raise refuse(code, f"Event {event_id} was cancelled by its organiser: its waiting room is closed")
    if code:
        raise refuse(str(code), f"Event {event_id} has no waiting room")
    if not placed.data.get("new") and (place := await views.queue_place(gw.pool, event_id, queue_token)):
        # Placed before (a join that crossed another): its admission, if any, is read as the status URL reads it.
        return await _joined(gw, event_id, queue_token, visitor_id, place["position"], place["admitted_at"], 200)
    return await _joined(gw, event_id, placed.data["queueToken"], visitor_id, placed.data.get("position"), None,
                         201 if placed.data.get("new") else 200)


async def _place(gw: GatewayDep, event_id: str, queue_token: str) -> tuple[Watcher, dict[str, Any]]:
    _check_event_id(event_id)
    _check_token(queue_token)
    room = await gw.queue.room(event_id)
    if room is None and await gw.seats.seats_of(event_id) is None:
        raise refuse(errors.EventNotFound.code, f"Event {event_id} does not exist")
    place = await views.queue_place(gw.pool, event_id, queue_token) if room else None
    if room is None or place is None:
        raise ApiError(404, "not_in_queue", f"No place with this queue token in the waiting room of {event_id}")
    watcher = Watcher(event_id, queue_token, place["visitor_id"], place["position"], place["admitted_at"])
    _, body = gw.queue.status(room, watcher.visitor_id, watcher.position, watcher.admitted_at)
    return watcher, body


@router.get("/events/{event_id}/queue/{queue_token}", response_model=QueueStatus,
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def queue_status(event_id: EventPath, queue_token: TokenPath, gw: GatewayDep) -> Response:
    """A visitor's place: waiting (with position and people ahead once placed), admitted (with the access
    token for POST /bookings' `X-Queue-Access` and until when it is valid) or expired."""
    _, body = await _place(gw, event_id, queue_token)
    return JSON(body, headers={"Cache-Control": "no-store"})


def _sse(body: dict[str, Any]) -> bytes:
    # Unnamed frames: a browser's EventSource gives them to `onmessage`, which is what a client written from the
    # contract listens to.
    return b"data: " + orjson.dumps(body) + b"\n\n"


@router.get("/events/{event_id}/queue/{queue_token}/live", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "The visitor's status (as GET .../queue/{queueToken}) at once, then "
                                            "again whenever it changes"},
                       404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def queue_live(event_id: EventPath, queue_token: TokenPath, gw: GatewayDep) -> Response:
    """Server-Sent Events: the visitor's status, pushed when it changes."""
    watcher, body = await _place(gw, event_id, queue_token)
    watcher.last = body
    gw.queue.watch(watcher)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield _sse(body)
            while True:
                wait = KEEPALIVE_SECONDS
                last = watcher.last or {}
                if last.get("status") == "admitted" and last.get("admittedUntil"):
                    until = datetime.fromisoformat(last["admittedUntil"])
                    wait = min(wait, max(0.05, (until - utc_now()).total_seconds()))
                try:
                    async with asyncio.timeout(wait):
                        update = await watcher.updates.get()
                except TimeoutError:
                    room = await gw.queue.room(event_id)
                    if room is not None:
                        gw.queue.push(watcher, room)  # an admission that has run out
                    if watcher.updates.empty():
                        yield b": keepalive\n\n"
                else:
                    yield _sse(update)
        finally:
            gw.queue.unwatch(watcher)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/events/{event_id}/queue", include_in_schema=False)
async def queue_page(event_id: EventPath, gw: GatewayDep) -> Response:
    """The waiting room page: position, people ahead, progress, estimated wait, live. An unknown event's page
    answers 404, as its API does, and is the same page: its script tells so and leads to the events. An event
    without a waiting room gets it too (200), leading to the seat map: a room can be switched on at any time."""
    _check_event_id(event_id)
    status_code = 404 if await _surely_unknown(gw, event_id) else 200
    return FileResponse(WEB_DIR / "queue.html", status_code=status_code, headers={"Cache-Control": "no-cache"})


async def _surely_unknown(gw: GatewayDep, event_id: str) -> bool:
    """From the gateway's caches of rooms and seat maps while it can; not known (the database away) is not
    unknown: the page's script asks again."""
    if await gw.queue.room(event_id) is not None:
        return False
    try:
        return await gw.seats.seats_of(event_id) is None
    except DATABASE_AWAY:
        return False


def _on_sale(body: NewOnSale) -> OnSale:
    try:
        opens_at = moments.parse(body.opens_at)
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"onSale.opensAt: {exc}") from None
    return OnSale(opens_at, body.waiting_room, body.admit_per_minute, body.admission_minutes)


def check_opening(on_sale: OnSale, starts_at: datetime, field: str) -> None:
    """422 for an on-sale that opens when the event has started, or later: nothing could be sold."""
    if not on_sale.opens_before(starts_at):
        raise ApiError(422, "validation_error", f"{field}: the sale must open before the event starts "
                       f"(startsAt {iso(starts_at)}; opensAt {iso(on_sale.opens_at)})")


def _changed(change: OnSaleChange, before: Any) -> NewOnSale:
    """The on-sale as it will be: what the change sets, the rest as it stands (or the defaults)."""
    asked = change.model_dump(by_alias=True, exclude_none=True)
    if before is not None:
        asked = {**views.on_sale_view(before), **asked}
    elif "opensAt" not in asked:
        raise ApiError(422, "validation_error", "opensAt: Field required (the event has no on-sale yet)")
    return NewOnSale.model_validate(asked)


def on_sale_of(body: NewOnSale | None) -> OnSale | None:
    return _on_sale(body) if body is not None else None


@router.put("/events/{event_id}/onsale", response_model=OnSaleView,
            responses={202: {"description": "Accepted; the waiting room applies it shortly"}, **_ERRORS, **OWNED})
async def set_on_sale(event_id: EventPath, body: Annotated[OnSaleChange, Body(openapi_examples=ON_SALE_EXAMPLES)],
                      gw: GatewayDep, caller: OnSaleChanger) -> Response:
    """Set or change when the sale opens and its waiting room; `admitPerMinute` may change during the sale,
    `opensAt` only before the sale opens (409 `sale_open` once the room has opened or, without one, `opensAt`
    has come; an event without an on-sale has sold since it was created, and once buyers hold seats in it a
    later `opensAt` is 409 too). A field left out keeps its value (an event without an on-sale yet needs
    `opensAt`). With accounts on, the event's organiser and admins only."""
    _check_event_id(event_id)
    await require_event_organiser(gw.pool, caller, event_id)
    if await gw.seats.seats_of(event_id) is None:
        raise refuse(errors.EventNotFound.code, f"Event {event_id} does not exist")
    if await views.event_cancelled(gw.pool, event_id):
        raise refuse(errors.EventCancelled.code, f"Event {event_id} was cancelled by its organiser")
    before = await views.waiting_room(gw.pool, event_id)
    on_sale = _on_sale(_changed(body, before))
    if before is not None and on_sale.moves_opening(before["opens_at"], sale_opened(
            before["opens_at"], before["enabled"], before["opened_at"] is not None, utc_now())):
        what = "waiting room" if before["opened_at"] is not None else "sale"
        raise refuse(errors.SaleOpen.code, f"The {what} of {event_id} has opened: opensAt can no longer change")
    if before is None and first_opening(on_sale, await views.seats_held(gw.pool, event_id), utc_now()) != on_sale:
        raise refuse(errors.SaleOpen.code, f"The sale of {event_id} has been open since the event was created and "
                     "buyers hold seats in it: opensAt can no longer be later than now")
    if before is None or on_sale.moves_opening(before["opens_at"], opened=True):
        # A new opening (one stored by an older release is left as it is when only the rest changes).
        starts_at = await views.event_starts_at(gw.pool, event_id)
        if starts_at is not None:
            check_opening(on_sale, starts_at, "opensAt")
    wanted = {"opensAt": iso(on_sale.opens_at), "waitingRoom": on_sale.waiting_room,
              "admitPerMinute": on_sale.admit_per_minute, "admissionMinutes": on_sale.admission_minutes}
    await publish_command(gw, Message(ONSALE_CHANGE_REQUESTED, event_id, on_sale_to_data(on_sale),
                                      gw.request_ids.new()))
    deadline = time.monotonic() + gw.settings.booking_reply_seconds
    while time.monotonic() < deadline:
        room = await views.waiting_room(gw.pool, event_id)
        if room is not None and views.on_sale_view(room) == wanted:
            return JSON({"success": True, "eventId": event_id, **wanted})
        if before is None and room is not None and room["opens_at"] < on_sale.opens_at:
            # Buyers took seats while the first on-sale was decided: the waitingroom service opened the sale now.
            raise refuse(errors.SaleOpen.code, f"The sale of {event_id} has been open since the event was created "
                         f"and buyers took seats in it meanwhile: it opens at {iso(room['opens_at'])}")
        await asyncio.sleep(0.05)
    return JSON({"success": False, "status": "queued", "eventId": event_id, "statusUrl": f"/events/{event_id}",
                 "error": "The waiting room has not applied the change yet; it will shortly"}, status_code=202)
