"""Who listens on a port, read from /proc: how `up` and `start` tell the platform's own servers from another
user's process that bound their port first."""

from __future__ import annotations

import os
import socket

from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.listeners import children_of, holders, listening_sockets, taken_by_another


def test_a_listener_is_found_with_its_process_and_named_when_it_is_not_ours() -> None:
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as server:
            server.bind((address, 0))
            port = server.getsockname()[1]
            assert listening_sockets(port) == set()  # bound, not yet listening
            server.listen()
            inodes = listening_sockets(port)
            assert len(inodes) == 1 and holders(inodes) == [os.getpid()]
            assert taken_by_another(port, lambda: [os.getpid()]) is None
            said = taken_by_another(port, lambda: [os.getppid()])
            assert said is not None and said.startswith(f"pid {os.getpid()} (") and " of user " in said


def test_a_port_nobody_listens_on_is_taken_by_nobody() -> None:
    assert taken_by_another(free_port(), lambda: []) is None


def test_this_process_is_among_its_parents_children() -> None:
    assert os.getpid() in children_of(os.getppid())
