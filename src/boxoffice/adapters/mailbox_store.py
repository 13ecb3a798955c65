"""The embedded mailbox's storage: one .eml file per accepted message, so mail survives restarts."""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import shutil
import time
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

_ID = re.compile(r"^\d{20}-[0-9a-f]{8}$")


class MailboxFull(Exception):
    """The mailbox keeps no more: the sender is asked to try later (a 452), nothing is lost."""


# Its SMTP port takes mail from every local user: without a bound, one could fill the disk that the embedded
# PostgreSQL shares (an outside probe stored 144 MB in 5 s).
MOST_BYTES = 1 << 30
KEEP_FREE_BYTES = 1 << 30


class MailStore:
    def __init__(self, directory: Path, most_bytes: int = MOST_BYTES, keep_free_bytes: int = KEEP_FREE_BYTES) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._summaries: dict[str, dict[str, Any]] = {}  # files never change once written
        self.most_bytes, self.keep_free_bytes = most_bytes, keep_free_bytes
        self.kept_bytes = sum(p.stat().st_size for p in self.directory.glob("*.eml"))

    def save(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
        """Written to a temporary name, flushed to disk, then renamed: a reader never sees half a message.
        MailboxFull when it would take the mailbox past its bound or the disk below its free margin."""
        message_id = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        trace = f"Return-Path: <{mail_from}>\r\nDelivered-To: {', '.join(rcpt_tos)}\r\n".encode()
        size = len(trace) + len(raw)
        if self.kept_bytes + size > self.most_bytes:
            raise MailboxFull(f"the mailbox holds {self.kept_bytes >> 20} MiB, its most is {self.most_bytes >> 20} MiB")
        if shutil.disk_usage(self.directory).free - size < self.keep_free_bytes:
            raise MailboxFull(f"less than {self.keep_free_bytes >> 20} MiB would be left on its disk")
        tmp = self.directory / f".{message_id}.tmp"
        with open(tmp, "wb") as out:
            out.write(trace + raw)
            out.flush()
            os.fsync(out.fileno())
        tmp.rename(self.directory / f"{message_id}.eml")
        self.kept_bytes += size
        return message_id

    def ids(self) -> list[str]:
        """Newest first."""
        return sorted((p.stem for p in self.directory.glob("*.eml") if _ID.match(p.stem)), reverse=True)

    def raw(self, message_id: str) -> bytes | None:
        if not _ID.match(message_id):
            return None
        try:
            return (self.directory / f"{message_id}.eml").read_bytes()
        except FileNotFoundError:
            return None

    def parsed(self, message_id: str) -> EmailMessage | None:
        raw = self.raw(message_id)
        return None if raw is None else email.message_from_bytes(raw, policy=email.policy.default)

    def summary(self, message_id: str) -> dict[str, Any] | None:
        if message_id not in self._summaries:
            message = self.parsed(message_id)
            if message is None:
                return None
            try:
                self._summaries[message_id] = describe(message_id, message)
            except Exception as exc:  # noqa: BLE001 - any local user can send it: one message must not break the list
                self._summaries[message_id] = unreadable(message_id, exc)
        return self._summaries[message_id]

    def part(self, message_id: str, content_id: str) -> tuple[bytes, str, str | None] | None:
        """A part by its Content-ID, for the HTML view's `cid:` images: its bytes, type and file name."""
        message = self.parsed(message_id)
        for part in message.walk() if message else ():
            if str(part.get("Content-ID", "")).strip("<>") == content_id:
                return cast(bytes, part.get_payload(decode=True) or b""), part.get_content_type(), part.get_filename()
        return None


def describe(message_id: str, message: EmailMessage) -> dict[str, Any]:
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    attachments = [
        {"filename": part.get_filename(), "contentType": part.get_content_type(),
         "contentId": str(part["Content-ID"]).strip("<>") if part["Content-ID"] else None,
         "inline": part.get_content_disposition() != "attachment",
         "size": len(part.get_payload(decode=True) or b"")}
        for part in message.walk()
        if not part.is_multipart() and part is not text_part and part is not html_part
    ]
    return {
        "id": message_id,
        "messageId": str(message.get("Message-ID", "")) or None,
        "from": str(message.get("From", "")),
        "to": [addr for _, addr in getaddresses([str(v) for v in message.get_all("To", [])])],
        "subject": str(message.get("Subject", "")),
        "date": _header_date(message),
        "receivedAt": _received_at(message_id),
        "text": _content(text_part),
        "html": _content(html_part),
        "attachments": attachments,
    }


def unreadable(message_id: str, exc: Exception) -> dict[str, Any]:
    """A message the email library cannot take apart: listed, with its raw form, and why."""
    return {"id": message_id, "messageId": None, "from": "", "to": [],
            "subject": f"(this message could not be read: {type(exc).__name__})", "date": None,
            "receivedAt": _received_at(message_id), "text": None, "html": None, "attachments": []}


def _received_at(message_id: str) -> str:
    """The moment a message was kept, which its id begins with (nanoseconds since the epoch)."""
    received = datetime.fromtimestamp(int(message_id[:20]) / 1e9, UTC)
    return received.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _content(part: MIMEPart | None) -> str | None:
    """A text part's content; one in a character set Python does not know, or not in the one it names, as UTF-8
    with what does not decode replaced."""
    if part is None:
        return None
    try:
        return cast(str, part.get_content())
    except (LookupError, UnicodeError, ValueError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None


def _header_date(message: EmailMessage) -> str | None:
    try:
        return parsedate_to_datetime(str(message["Date"])).isoformat() if message["Date"] else None
    except (TypeError, ValueError):
        return None
