"""The list of common passwords that new passwords are checked against (see boxoffice/data/NOTICE.md)."""

from __future__ import annotations

import functools
import gzip
from importlib import resources


@functools.cache
def common_passwords() -> frozenset[str]:
    data = resources.files("boxoffice").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip() for line in gzip.decompress(data).decode().splitlines() if line.strip())
