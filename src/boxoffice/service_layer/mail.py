"""The outgoing-mail port the notification handler sends through, and its two kinds of failure."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class MailDeliveryError(Exception):
    """The mail server did not take the message."""


class TransientMailError(MailDeliveryError):
    """Worth retrying: the server is down, slow, busy or answered 4xx."""


class PermanentMailError(MailDeliveryError):
    """The server refused this message for good (5xx): retrying it would be refused again."""


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...
