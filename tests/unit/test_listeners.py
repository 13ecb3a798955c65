"""Who listens on a port, read from /proc: how `up` and `start` tell the platform's own servers from another
user's process that bound their port first."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

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


def test_without_linux_proc_a_listener_is_only_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from boxoffice import platform
    from boxoffice.adapters import listeners
    from boxoffice.adapters.supervisor import Supervisor

    assert listeners.see_listeners() and not listeners.see_listeners(tmp_path)
    monkeypatch.setattr(listeners, "see_listeners", lambda: False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        platform._wait_held_by_ours(server.getsockname()[1], "the broker", Supervisor(tmp_path), timeout=5)  # noqa: SLF001


def test_a_port_held_by_a_process_the_platform_did_not_start_is_named(tmp_path: Path) -> None:
    from boxoffice import platform
    from boxoffice.adapters.supervisor import Supervisor

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(platform.PlatformError, match=rf"port {port} is held by pid {os.getpid()} \(.*, not by "
                                                         r"the realtime service.*BOXOFFICE_REALTIME_PORT"):
            platform._refuse_a_taken_port(port, Supervisor(tmp_path), "the realtime service",  # noqa: SLF001
                                          platform._ANOTHER_PORT.format(setting="BOXOFFICE_REALTIME_PORT"))  # noqa: SLF001
