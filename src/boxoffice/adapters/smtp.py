"""Sends email over SMTP (aiosmtplib), configured by one URL; driver errors become our own."""

from __future__ import annotations

import asyncio
import email.errors
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from boxoffice.domain.text import one_line
from boxoffice.service_layer.mail import PermanentMailError, TransientMailError

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
# Where `boxoffice mailbox` listens unless told otherwise: the fallback when no SMTP URL is configured.
EMBEDDED_MAILBOX_PORT = 1025


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    verify_certs: bool = True

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        """`smtp://user:pass@host:port` (STARTTLS when offered) or `smtps://` (TLS from the first byte);
        `?verify=false` accepts a self-signed certificate."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an SMTP URL (smtp://user:pass@host:port or smtps://...): {url!r}")
        verify = parse_qs(parts.query).get("verify", ["true"])[-1].lower() not in ("false", "0", "no")
        return cls(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme],
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None,
                   parts.scheme == "smtps", verify)


@dataclass(eq=False)
class _Line:
    """One SMTP session, opened when first needed, and when it last carried an email."""

    client: aiosmtplib.SMTP | None = None
    last_used: float = 0.0


class SmtpSender:
    """Keeps up to `lines` connections open between emails, each carrying one email at a time: a connection costs
    a TCP handshake, the greeting, EHLO, maybe STARTTLS and a login, more than the email itself during a sale,
    and an email's turn at the server is mostly waiting for its answers. A connection that fails is closed,
    never reused; one that the server dropped while idle is replaced once, at once, before an error is
    reported."""

    def __init__(self, url: str, *, timeout: float = 10.0, total_timeout: float = 30.0,
                 idle_seconds: float = 30.0, lines: int = 1) -> None:
        self.target = SmtpTarget.from_url(url)
        self._timeout = timeout
        self._total_timeout = total_timeout
        self._idle_seconds = idle_seconds  # an open connection unused this long is closed rather than trusted
        self._lines = lines
        self._free: asyncio.Queue[_Line] = asyncio.Queue()
        for _ in range(lines):
            self._free.put_nowait(_Line())
        self._local_hostname = socket.getfqdn()  # what EHLO says; asked once (it may mean a DNS lookup)
        self.connections = 0  # opened so far

    async def send(self, message: EmailMessage) -> None:
        line = await self._free.get()
        try:
            async with asyncio.timeout(self._total_timeout):
                await self._send(line, message)
        except BaseException:
            self._drop(line)  # no QUIT: a connection that just failed may not answer one
            raise
        finally:
            line.last_used = time.monotonic()
            self._free.put_nowait(line)

    async def _send(self, line: _Line, message: EmailMessage) -> None:
        t = self.target
        try:
            await self._on_a_connection(line, message)
        except aiosmtplib.SMTPResponseException as exc:
            error = PermanentMailError if 500 <= exc.code < 600 and not _is_auth(exc) else TransientMailError
            # A multi-line reply would make as many log lines.
            raise error(f"{t.host}:{t.port} answered {exc.code} {one_line(exc.message)}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            error = PermanentMailError if all(500 <= c < 600 for c in codes) else TransientMailError
            raise error(f"{t.host}:{t.port} refused the recipients: {one_line(str(exc))}") from exc
        except aiosmtplib.SMTPNotSupported as exc:
            # Only raised for a non-ASCII address to a server without SMTPUTF8: this email, not the server.
            raise PermanentMailError(f"{t.host}:{t.port} cannot take it: {exc}") from exc
        except (ValueError, email.errors.MessageError) as exc:
            # aiosmtplib refuses an address or header it cannot put on the wire (control characters, white
            # space, angle brackets), and a newer email library a header it cannot write (HeaderWriteError):
            # sending it again cannot help.
            raise PermanentMailError(f"cannot be sent as it is: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            raise TransientMailError(f"{t.host}:{t.port}: {exc!r}") from exc

    async def close(self) -> None:
        """Says QUIT and closes the open connections, once the emails on their way have gone."""
        lines = [await self._free.get() for _ in range(self._lines)]
        try:
            for line in lines:
                client, line.client = line.client, None
                if client is not None and client.is_connected:
                    try:
                        async with asyncio.timeout(self._timeout):
                            await client.quit()
                    except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError):
                        client.close()
        finally:
            for line in lines:
                self._free.put_nowait(line)

    async def _on_a_connection(self, line: _Line, message: EmailMessage) -> None:
        reused = line.client is not None and time.monotonic() - line.last_used < self._idle_seconds
        if not reused:
            self._drop(line)  # idle too long: the server may have let it go without a word
        try:
            client = line.client or await self._connect(line)
            await client.send_message(message)
        except aiosmtplib.SMTPServerDisconnected:
            if not reused:
                raise
            # Dropped while it sat idle (a server's own idle timeout), as a rule before it took anything of
            # this email; a copy taken twice has the same Message-ID, as after any retry.
            self._drop(line)
            await (await self._connect(line)).send_message(message)

    async def _connect(self, line: _Line) -> aiosmtplib.SMTP:
        t = self.target
        client = aiosmtplib.SMTP(hostname=t.host, port=t.port, username=t.username, password=t.password,
                                 use_tls=t.implicit_tls, start_tls=False if t.implicit_tls else None,
                                 validate_certs=t.verify_certs, timeout=self._timeout,
                                 local_hostname=self._local_hostname)
        await client.connect()
        self.connections += 1
        line.client = client
        return client

    @staticmethod
    def _drop(line: _Line) -> None:
        client, line.client = line.client, None
        if client is not None:
            client.close()


def _is_auth(exc: aiosmtplib.SMTPResponseException) -> bool:
    # A refused login is the operator's configuration, not this message: keep it, retry until fixed.
    return isinstance(exc, aiosmtplib.SMTPAuthenticationError)
