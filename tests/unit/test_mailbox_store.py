"""The embedded mailbox's store: a message the email library fails on is still listed, not the list's end."""

from __future__ import annotations

from pathlib import Path

import pytest

from boxoffice.adapters import mailbox_store
from boxoffice.adapters.mailbox_store import MailStore


def test_a_message_the_email_library_fails_on_is_listed_as_unreadable(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = MailStore(tmp_path)
    fine = store.save(b"Subject: fine\r\nTo: a@boxoffice.test\r\n\r\nhello\r\n", "s@boxoffice.test",
                      ["a@boxoffice.test"])
    odd = store.save(b"Subject: odd\r\n\r\nx\r\n", "s@boxoffice.test", ["a@boxoffice.test"])
    real_describe = mailbox_store.describe

    def describe(message_id: str, message: object) -> dict[str, object]:
        if message_id == odd:
            raise IndexError("a parser's bug")
        return real_describe(message_id, message)  # type: ignore[arg-type]

    monkeypatch.setattr(mailbox_store, "describe", describe)
    summaries = {i: store.summary(i) for i in store.ids()}
    assert summaries[fine] is not None and summaries[fine]["subject"] == "fine"
    assert summaries[odd] is not None and summaries[odd]["subject"] == "(this message could not be read: IndexError)"
    assert summaries[odd]["receivedAt"] and summaries[odd]["attachments"] == []
