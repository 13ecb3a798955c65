"""A fixed-length answer leaves in one write instead of uvicorn's two (its head, then its body).

On these machines a client is usually on the same host, and a write to a loopback socket also runs the receiving
side of TCP: py-spy put uvicorn's two writes at 18 % of the gateway's samples under `bench holds`. Measured with
wrk against a bare uvloop server answering a hold-sized JSON answer: 45–53 k answers/s with two writes, 64–84 k
with one, on one core.

The transport of a request's response cycle (not a HEAD's: uvicorn writes no body for it) is wrapped: the head of
an answer with a Content-Length is kept until the body's first write, which uvicorn makes even for an empty body,
and goes out with it. An answer given up halfway closes the transport, which writes what is kept first. Answers
without a Content-Length (streams) are written as they come.
"""

from __future__ import annotations

import asyncio

_CONTINUE = b"HTTP/1.1 100 "
_FIXED_LENGTH = b"\r\ncontent-length: "  # uvicorn writes header names in lower case


class HeadWithBody:
    """What a RequestResponseCycle uses of its transport: write, close, is_closing."""

    __slots__ = ("_answering", "_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._answering = False  # the answer's head has been written (or is kept)

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif not self._answering and not data.startswith(_CONTINUE):
            self._answering = True
            if _FIXED_LENGTH in data:
                self._head = data
                return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()
