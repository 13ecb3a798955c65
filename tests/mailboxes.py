"""The embedded mailbox as a test's real SMTP server, and waiting for mail to land in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.mailbox import Mailbox
from boxoffice.adapters.mailbox_store import MailStore


@asynccontextmanager
async def running_mailbox(directory: Path, smtp_port: int | None = None) -> AsyncIterator[Mailbox]:
    mailbox = Mailbox(directory, smtp_port or free_port(), free_port())
    await mailbox.start()
    try:
        yield mailbox
    finally:
        await mailbox.stop()


def mail_to(store: MailStore, address: str) -> list[dict[str, Any]]:
    return [m for i in store.ids() if (m := store.summary(i)) and address in m["to"]]


async def wait_for_mail(store: MailStore, address: str, count: int = 1, timeout: float = 10.0,
                        where: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while len(found := [m for m in mail_to(store, address) if where(m)]) < count:
            await asyncio.sleep(0.05)
    return found
