"""Items that are ready at the same moment are handled as one group: with many requests in flight, one
statement or one commit serves many of them instead of one each. Used by the service layer's group commits and
by adapters alike, so it belongs to neither."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Grouped(Generic[T, R]):
    """Items that are ready at the same moment are handled together by `handle_all`, which returns their
    results in their order: at most `most` items a group, at most `at_once` groups at a time. If a group fails,
    each of its items is handled alone, so that one bad item fails only its own caller."""

    def __init__(self, handle_all: Callable[[list[T]], Awaitable[list[R]]], most: int = 100,
                 at_once: int = 2) -> None:
        self._handle_all, self._most, self._at_once = handle_all, most, at_once
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flushing < self._at_once:
            self._flushing += 1
            task = asyncio.get_running_loop().create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:self._most], self._waiting[self._most:]
                try:
                    results = await self._handle_all([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"{len(results)} results for {len(batch)} items")
                except Exception as exc:  # noqa: BLE001 - each item is tried alone, so its caller gets its own error
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                        continue
                    await asyncio.gather(*(self._alone(item, future) for item, future in batch))
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)
        finally:
            self._flushing -= 1

    async def _alone(self, item: T, future: asyncio.Future[R]) -> None:
        try:
            [result] = await self._handle_all([item])
        except Exception as exc:  # noqa: BLE001 - handed to the caller that waits for it
            _settle(future, exc)
        else:
            _settle(future, result)


def _settle(future: asyncio.Future[R], outcome: R | Exception) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
