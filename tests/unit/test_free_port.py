"""`up` picks several servers' ports before any of them binds: one pick must not hand out a port another pick
of the same process gave. A chaos run lost its realtime service when the mailbox's web page got the same port."""

from __future__ import annotations

import itertools
import socket

import pytest

from boxoffice.adapters import embedded


def _unbound_ports(count: int) -> list[int]:
    """Distinct ports that nothing is bound to now (the system's picks, held open together, then let go)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_a_port_handed_out_is_not_handed_out_again_before_it_is_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _unbound_ports(2)
    drawn = itertools.chain([first, first, first], itertools.repeat(second))
    monkeypatch.setattr(embedded.random, "randrange", lambda start, stop: next(drawn))

    assert [embedded.free_port(), embedded.free_port()] == [first, second]
