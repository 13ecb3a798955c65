"""The embedded mailbox writes its log lines as the services do: JSON with BOXOFFICE_LOG_FORMAT=json. Found from
outside: its lines stayed text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from boxoffice.adapters.embedded import free_port


def test_the_mailbox_logs_json_lines_when_the_platform_does(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}, "BOXOFFICE_LOG_FORMAT": "json",
           "BOXOFFICE_DATA_DIR": str(tmp_path)}
    mailbox = subprocess.Popen([sys.executable, "-m", "boxoffice", "mailbox", "--smtp-port", str(free_port()),
                                "--http-port", str(free_port()), "--dir", str(tmp_path / "mail")],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert mailbox.stderr is not None
        first = mailbox.stderr.readline()  # blocks until the line that says where it listens
    finally:
        mailbox.terminate()
        mailbox.wait(timeout=10)
    line = orjson.loads(first)
    assert line["service"] == "mailbox" and line["message"].startswith("mailbox: SMTP on 127.0.0.1:"), first
