"""Which process holds a listening TCP port, from Linux's /proc: whether the gateway serves its own port, or
another local user's process bound it first (between a `stop gateway` and a `start`, say) and would take the
buyers' requests, cards and passwords."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

_LISTEN = "0A"


def see_listeners(proc: Path = Path("/proc")) -> bool:
    """Whether this system shows its sockets and their processes as Linux does."""
    return (proc / "net" / "tcp").exists() and (proc / str(os.getpid()) / "fd").exists()


def listening_sockets(port: int, proc: Path = Path("/proc")) -> set[int]:
    """The socket inodes listening on `port`, on any local address, IPv4 or IPv6."""
    inodes: set[int] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            rows = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def holds(pid: int, inodes: set[int], proc: Path = Path("/proc")) -> bool:
    """Whether process `pid` has one of these sockets open."""
    try:
        descriptors = os.listdir(proc / str(pid) / "fd")
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            target = os.readlink(proc / str(pid) / "fd" / descriptor)
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            return True
    return False


def holders(inodes: set[int], proc: Path = Path("/proc")) -> list[int]:
    """The processes that have these sockets open, of those this user may look into."""
    pids = (int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    return [pid for pid in pids if holds(pid, inodes, proc)]


def describe(pid: int, proc: Path = Path("/proc")) -> str:
    """"pid 123 (python3) of user mallory", as far as it can be read."""
    import pwd

    try:
        name = (proc / str(pid) / "comm").read_text().strip()
        user = pwd.getpwuid((proc / str(pid)).stat().st_uid).pw_name
    except (OSError, KeyError):
        return f"pid {pid}"
    return f"pid {pid} ({name}) of user {user}"


def children_of(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The processes `pid` started (the kernel's list; empty where it has none)."""
    try:
        return [int(child) for child in (proc / str(pid) / "task" / str(pid) / "children").read_text().split()]
    except (OSError, ValueError):
        return []


def taken_by_another(port: int, ours: Callable[[], Iterable[int]], proc: Path = Path("/proc")) -> str | None:
    """Who listens on `port` when none of `ours` (the platform's processes) does; None when one of them does,
    or when nothing listens yet. Ours are looked at first: scanning every process takes tens of milliseconds."""
    inodes = listening_sockets(port, proc)
    if not inodes or held_by(inodes, ours(), proc):
        return None
    found = holders(inodes, proc)
    return describe(found[0], proc) if found else "a process of another user"


def held_by(inodes: set[int], pids: Iterable[int], proc: Path = Path("/proc")) -> bool:
    return any(holds(pid, inodes, proc) for pid in pids)
