"""The outgoing-mail port the notification handler sends through, and its two kinds of failure."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class MailDeliveryError(Exception):
    """The mail server did not take the message."""


class TransientMailError(MailDeliveryError):
    """Worth retrying: the server is down, slow, busy or answered 4xx."""


class PermanentMailError(MailDeliveryError):
    """This email can never be sent as it is: the server refused it for good (5xx), or its address is one
    that mail cannot go to as written. Retrying would fail again."""


class UndeliverableEmails(PermanentMailError):
    """Raised by the notification handler after the rest of its batch is handled: the messages whose email
    can never be sent. Not transient: the consumer loop makes a dead letter of each, after a bounded retry."""

    def __init__(self, failures: dict[str, PermanentMailError]) -> None:
        super().__init__("; ".join(f"message {message_id}: {why}" for message_id, why in failures.items()))
        self.failures = failures

    @property
    def message_ids(self) -> list[str]:
        return list(self.failures)


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...
