"""`up` refuses a data directory that another user made or may write to: their password files, mailbox key or
sockets in it would be trusted (found by an outside probe as a local user: a planted `postgres.password` became
the superuser's password)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boxoffice.config import Settings
from boxoffice.platform import PlatformError, refuse_a_foreign_data_dir, up


def test_a_directory_of_this_user_alone_is_taken(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    refuse_a_foreign_data_dir(mine)
    mine.chmod(0o775)  # umask 002: writable by the user's own group
    os.chown(mine, -1, os.getegid())
    refuse_a_foreign_data_dir(mine)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another group takes root")
def test_a_directory_another_group_may_write_to_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o770)
    shared.chmod(0o770)
    os.chown(shared, -1, 65534)  # nogroup
    with pytest.raises(PlatformError, match="may be written by other users"):
        refuse_a_foreign_data_dir(shared)


def test_a_directory_other_users_may_write_to_is_refused_before_anything_is_started(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PlatformError, match=r"may be written by other users \(mode drwxrwxrwx\)"):
        up(Settings(data_dir=shared))
    assert list(shared.iterdir()) == []  # nothing made in it


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user takes root")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)  # nobody
    with pytest.raises(PlatformError, match="belongs to nobody, not to this user"):
        refuse_a_foreign_data_dir(theirs)
