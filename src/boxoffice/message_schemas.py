"""Checks each consumed message against its topic before a handler sees it."""

from __future__ import annotations

from boxoffice.messages import MalformedMessage, Message, decode


def decode_checked(raw: bytes, topic: str) -> Message:
    """The message, or MalformedMessage when it is not one of `topic`'s."""
    message = decode(raw)
    if message.type != topic:
        raise MalformedMessage(f"a {message.type!r} message on topic {topic!r}")
    return message
