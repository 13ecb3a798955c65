"""Ids from random bytes read in blocks (boxoffice.randomness) and the messages' timestamps (messages.now_iso)."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime, timedelta

from boxoffice.messages import Message, now_iso
from boxoffice.randomness import random_bytes, uuid4_text


def test_uuid4_text_is_a_version_4_uuid_in_its_text_form_and_ids_do_not_repeat() -> None:
    ids = [uuid4_text() for _ in range(5000)]  # more than one block of random bytes
    assert len(set(ids)) == len(ids)
    for text in ids[:300]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert uuid.UUID(Message("t", "ev_1", {}).id).version == 4


def test_random_bytes_are_as_long_as_asked_and_differ() -> None:
    taken = [random_bytes(16) for _ in range(600)]
    assert {len(b) for b in taken} == {16} and len(set(taken)) == 600
    assert len(random_bytes(10_000)) == 10_000


def test_a_forked_child_does_not_take_the_bytes_its_parent_has_read_ahead() -> None:
    random_bytes(16)  # the parent now holds a block
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(writing, random_bytes(16))  # the next 16 bytes of the block, were it shared
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    from_child = os.read(reading, 16)
    os.close(reading)
    assert len(from_child) == 16 and from_child != random_bytes(16)


def test_now_iso_is_the_utc_time_in_milliseconds_as_iso_gives_it() -> None:
    before = datetime.now(UTC)
    text = now_iso()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= moment <= after
