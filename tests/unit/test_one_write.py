"""A fixed-length answer leaves in one write (entrypoints/gateway/one_write.py), and nothing is kept back."""

from __future__ import annotations

from typing import Any

from boxoffice.entrypoints.gateway.one_write import HeadWithBody

HEAD = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n"
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


class Socket:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def wrapped() -> tuple[HeadWithBody, Socket]:
    socket = Socket()
    transport: Any = socket
    return HeadWithBody(transport), socket


def test_the_head_of_a_fixed_length_answer_goes_out_with_its_body() -> None:
    transport, socket = wrapped()
    transport.write(HEAD)
    assert socket.writes == []
    transport.write(b"{}")
    assert socket.writes == [HEAD + b"{}"]


def test_an_empty_body_still_carries_the_head() -> None:
    transport, socket = wrapped()
    transport.write(HEAD.replace(b"2", b"0"))
    transport.write(b"")
    assert socket.writes == [HEAD.replace(b"2", b"0")]


def test_a_100_continue_goes_at_once_and_the_answer_after_it_in_one_write() -> None:
    transport, socket = wrapped()
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert socket.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(HEAD)
    transport.write(b"{}")
    assert socket.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", HEAD + b"{}"]


def test_a_stream_is_written_as_it_comes() -> None:
    transport, socket = wrapped()
    transport.write(STREAM_HEAD)
    assert socket.writes == [STREAM_HEAD]
    transport.write(b"5\r\nhello\r\n")
    assert socket.writes == [STREAM_HEAD, b"5\r\nhello\r\n"]


def test_an_answer_given_up_after_its_head_writes_the_head_before_closing() -> None:
    transport, socket = wrapped()
    transport.write(HEAD)
    transport.close()
    assert socket.writes == [HEAD] and socket.closed and transport.is_closing()


def test_a_body_in_pieces_follows_its_head_as_it_comes() -> None:
    transport, socket = wrapped()
    transport.write(HEAD.replace(b"length: 2", b"length: 4"))
    transport.write(b"ab")
    transport.write(b"cd")
    assert socket.writes == [HEAD.replace(b"length: 2", b"length: 4") + b"ab", b"cd"]
