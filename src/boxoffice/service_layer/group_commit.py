"""Writes that are ready at the same moment share one unit of work: with many messages in flight, one commit
(and one connection) serves many of them instead of one each.

Given `write_all`, a group is written by it at once (one statement for all its items where it can), not item by
item; a group of one is written by `write`.

Each caller waits until its write has committed, and what the unit of work wrote to the outbox goes to the
relay only then. If a shared unit of work fails, each of its writes is tried again by `write` in a unit of work
of its own, so that one bad write fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from boxoffice.service_layer.ports import OutboxSink
from boxoffice.service_layer.unit_of_work import UnitOfWork

U = TypeVar("U", bound=UnitOfWork)
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


class GroupCommit(Grouped[T, R], Generic[U, T, R]):
    def __init__(self, unit_of_work: Callable[[], U], write: Callable[[U, T], Awaitable[R]], outbox: OutboxSink,
                 most: int = 100, at_once: int = 2,
                 write_all: Callable[[U, list[T]], Awaitable[list[R]]] | None = None) -> None:
        """`most` writes share a unit of work; `at_once` units of work may be open together. `write_all` writes
        a group's items together and returns their results in their order, as `write` would one by one."""
        super().__init__(self._together, most, at_once)
        self._unit_of_work, self._write, self._write_all, self._outbox = unit_of_work, write, write_all, outbox

    async def _together(self, items: list[T]) -> list[R]:
        uow = self._unit_of_work()
        try:
            async with uow:
                if self._write_all is not None and len(items) > 1:
                    results = await self._write_all(uow, items)
                    if len(results) != len(items):  # checked before it commits: the group is then tried one by one
                        raise RuntimeError(f"{len(results)} results written for {len(items)} items")
                else:
                    results = [await self._write(uow, item) for item in items]
                await uow.commit()
        finally:
            self._outbox.submit(uow.outbox.written)
        return results


def _settle(future: asyncio.Future[R], outcome: R | Exception) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
