"""Waits for the booking service's answer to a request the gateway published."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from boxoffice.messages import MalformedMessage, Message, decode

log = logging.getLogger(__name__)


class ReplyWaiter:
    def __init__(self, consumer: AIOKafkaConsumer, on_reply: Callable[[], None] = lambda: None) -> None:
        self._consumer = consumer
        self._on_reply = on_reply
        self._waiting: dict[str, list[asyncio.Future[Message]]] = {}

    def expect(self, request_id: str) -> asyncio.Future[Message]:
        """Register before publishing, so that a fast answer cannot arrive unseen."""
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(request_id, []).append(future)
        return future

    def forget(self, request_id: str, future: asyncio.Future[Message]) -> None:
        futures = self._waiting.get(request_id)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiting[request_id]

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=2000)
            if batches:
                self._on_reply()
            for records in batches.values():
                for record in records:
                    try:
                        message = decode(record.value)
                    except MalformedMessage:
                        continue
                    for future in self._waiting.pop(message.request_id or "", ()):
                        if not future.done():
                            future.set_result(message)
