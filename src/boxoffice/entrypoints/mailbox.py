"""`boxoffice mailbox`: the embedded SMTP mailbox and its web page, in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from boxoffice import logs
from boxoffice.adapters.mailbox import Mailbox


async def serve(directory: Path, smtp_port: int, http_port: int, http_host: str = "127.0.0.1",
                key: str | None = None) -> None:
    mailbox = Mailbox(directory, smtp_port, http_port, http_host=http_host, key=key)
    task = asyncio.ensure_future(mailbox.serve_forever())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    logging.getLogger(__name__).info("mailbox: SMTP on 127.0.0.1:%d, web on http://%s:%d/%s/, mail in %s",
                                     smtp_port, http_host, http_port, mailbox.key, directory)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run(directory: Path, smtp_port: int, http_port: int, http_host: str = "127.0.0.1",
        key: str | None = None, log_format: str = "text") -> None:
    logs.configure("mailbox", log_format)  # the services' lines: BOXOFFICE_LOG_FORMAT=json makes JSON lines
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO
    asyncio.run(serve(directory.resolve(), smtp_port, http_port, http_host, key))
