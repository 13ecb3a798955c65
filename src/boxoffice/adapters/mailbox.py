"""The embedded mailbox: an SMTP server that accepts every message and keeps it, and a small web page and
JSON API to read it. It stands in for a real mail system when BOXOFFICE_SMTP_URL is unset."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from boxoffice.adapters.mailbox_store import MailboxFull, MailStore
from boxoffice.adapters.mailbox_web import http_app
from boxoffice.config import Settings

log = logging.getLogger(__name__)


class _WithoutLoginDataNotice(logging.Filter):
    # aiosmtpd warns about its own use of a deprecated attribute on every AUTH: noise, not news.
    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_WithoutLoginDataNotice())


# The web side's key: 128 bits, 22 characters, so the address `up` prints fits an 80-column line.
KEY_BYTES = 16


def web_url(http_port: int, key: str) -> str:
    """The mailbox's page (and, under it, the JSON API), key included."""
    return f"http://127.0.0.1:{http_port}/{key}/"


def key_in(path: Path) -> str:
    """The key kept in `path`, made there (readable by its owner only) if missing."""
    from boxoffice.adapters.embedded import write_secret

    write_secret(path, KEY_BYTES)
    return path.read_text().strip()


class KeepEverything:
    """aiosmtpd handler: every recipient is accepted and every message stored."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content or b""
        raw_bytes = raw if isinstance(raw, bytes) else raw.encode()
        try:
            stored = await asyncio.to_thread(self.store.save, raw_bytes, envelope.mail_from or "",
                                             list(envelope.rcpt_tos))
        except MailboxFull as exc:
            log.warning("refused a message for %s: %s", ", ".join(envelope.rcpt_tos), exc)
            return f"452 4.3.1 Insufficient storage: {exc}; try again later"
        log.info("stored %s for %s", stored, ", ".join(envelope.rcpt_tos))
        return f"250 OK stored as {stored}"


def _any_login(*_: Any) -> AuthResult:
    # A test mailbox: whatever credentials the sender's URL carries are welcome.
    return AuthResult(success=True)


class _WebServer(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()  # the process entrypoint owns the signals


class Mailbox:
    """Both servers in the running event loop; `start` returns once both listen."""

    def __init__(self, directory: Path, smtp_port: int, http_port: int, host: str = "127.0.0.1",
                 http_host: str | None = None, key: str | None = None) -> None:
        self.store = MailStore(directory)
        self.smtp_port, self.http_port = smtp_port, http_port
        self.host, self.http_host = host, http_host or host
        self.key = key or secrets.token_urlsafe(KEY_BYTES)
        self._smtp: asyncio.Server | None = None
        self._web: _WebServer | None = None
        self._web_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        handler = KeepEverything(self.store)
        loop = asyncio.get_running_loop()
        self._smtp = await loop.create_server(
            lambda: SMTP(handler, hostname="boxoffice-mailbox", ident="boxoffice mailbox", enable_SMTPUTF8=True,
                         auth_require_tls=False, authenticator=_any_login),
            host=self.host, port=self.smtp_port)
        self._web = _WebServer(uvicorn.Config(http_app(self.store, self.key), host=self.http_host, port=self.http_port,
                                              log_level="warning", lifespan="off", access_log=False))
        self._web_task = asyncio.create_task(self._web.serve())
        async with asyncio.timeout(10):
            while not self._web.started:
                if self._web_task.done():
                    raise OSError(f"the mailbox web server did not start on port {self.http_port}")
                await asyncio.sleep(0.01)

    @property
    def web_url(self) -> str:
        return web_url(self.http_port, self.key)

    async def stop(self) -> None:
        if self._web is not None and self._web_task is not None:
            self._web.should_exit = True
            await asyncio.gather(self._web_task, return_exceptions=True)
        if self._smtp is not None:
            self._smtp.close()
            with contextlib.suppress(TimeoutError):  # an idle client connection must not hold up the stop
                async with asyncio.timeout(5):
                    await self._smtp.wait_closed()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            assert self._web_task is not None
            await self._web_task
        finally:
            await self.stop()


class MailboxProgram(NamedTuple):
    """How the supervisor runs the mailbox, and where it listens."""

    command: list[str]
    smtp_port: int
    http_port: int
    key: str

    @property
    def smtp_url(self) -> str:
        return f"smtp://127.0.0.1:{self.smtp_port}"

    @property
    def web_url(self) -> str:
        return web_url(self.http_port, self.key)


def mailbox_program(settings: Settings, data_dir: Path) -> MailboxProgram:
    """Ports not configured are picked free; mail is kept under `data_dir/mailbox`; the web side's key is made
    once, in a file only its owner reads (`data_dir/mailbox.key`), so the address `up` prints stays the same."""
    from boxoffice.adapters.embedded import free_port

    smtp_port = settings.mailbox_smtp_port or free_port()
    http_port = settings.mailbox_http_port or free_port()
    key_file = data_dir / "mailbox.key"
    command = [sys.executable, "-m", "boxoffice", "mailbox", "--smtp-port", str(smtp_port),
               "--http-port", str(http_port), "--dir", str(data_dir / "mailbox"), "--http-host", settings.http_host,
               "--key-file", str(key_file)]
    return MailboxProgram(command, smtp_port, http_port, key_in(key_file))
