"""What the handlers need from the outside world, as small interfaces the adapters implement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutboxRow:
    """A message written in a state change's transaction, waiting to be published."""

    id: int
    topic: str
    key: bytes
    payload: bytes


class OutboxSink(Protocol):
    def submit(self, rows: list[OutboxRow]) -> None: ...
