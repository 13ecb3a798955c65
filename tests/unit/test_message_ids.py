"""The ids and timestamps messages carry (messages.uuid4_text, messages.now_iso)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from boxoffice.messages import Message, now_iso, uuid4_text


def test_uuid4_text_is_a_version_4_uuid_in_its_text_form_and_ids_do_not_repeat() -> None:
    ids = [uuid4_text() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:300]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert uuid.UUID(Message("t", "ev_1", {}).id).version == 4


def test_now_iso_is_the_utc_time_in_milliseconds_as_iso_gives_it() -> None:
    before = datetime.now(UTC)
    text = now_iso()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= moment <= after


def test_a_new_message_gets_its_own_id_and_time_and_a_read_one_keeps_what_it_holds_even_null() -> None:
    import dataclasses

    import pytest

    from boxoffice.message_schemas import decode_checked
    from boxoffice.messages import MalformedMessage, decode

    made = [Message("seat.reserved", "ev_1", {"n": 1}, "req_1") for _ in range(3)]
    assert len({m.id for m in made}) == 3
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", m.occurred_at) for m in made)
    again = decode(made[0].encode())
    assert again == made[0] and dataclasses.replace(again, request_id="req_2").id == made[0].id
    with pytest.raises(dataclasses.FrozenInstanceError):
        again.data = {}  # type: ignore[misc]

    hollow = b'{"id": null, "type": "seat.reserved", "eventId": "ev_1", "occurredAt": null, "data": {}}'
    read = decode(hollow)
    assert (read.id, read.occurred_at) == (None, None)
    with pytest.raises(MalformedMessage, match="id is not a UUID"):
        decode_checked(hollow, "seat.reserved")
