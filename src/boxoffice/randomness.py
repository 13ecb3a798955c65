"""Random bytes from the operating system, read in blocks, and the ids made of them.

Under `bench holds` py-spy put `uuid.uuid4()` (a system call for 16 bytes, then the UUID class) at 4 % of the
gateway's samples per hold, and `secrets.token_hex` for request ids at 2 %. The bytes are the same
`os.urandom`, taken 4 KiB at a time; a child process after a fork starts a block of its own.
"""

from __future__ import annotations

import os
import threading

_BLOCK_BYTES = 4096


class _Blocks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._block):
                self._block, self._at = os.urandom(max(_BLOCK_BYTES, n)), 0
            start = self._at
            self._at += n
            return self._block[start:self._at]

    def forget(self) -> None:
        self._block, self._at = b"", 0


_blocks = _Blocks()
os.register_at_fork(after_in_child=_blocks.forget)


def random_bytes(n: int) -> bytes:
    return _blocks.take(n)


def uuid4_text() -> str:
    """A random (version 4, RFC 9562) UUID in its text form, as str(uuid.uuid4()) gives it."""
    b = bytearray(_blocks.take(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
