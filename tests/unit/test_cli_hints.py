"""Every command the CLI names in a hint works as printed: through run.sh on a fresh machine (where
`boxoffice` is not on the PATH), as `boxoffice` once it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from boxoffice.entrypoints import cli

ROOT = Path(__file__).resolve().parents[2]


def _run(command: list[str], data_dir: Path, cwd: Path = ROOT) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env |= {"BOXOFFICE_DATA_DIR": str(data_dir), "COLUMNS": "60"}  # narrow: hints must not wrap
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done
    return done.stdout + done.stderr


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="run.sh needs the project's .venv")
def test_through_run_sh_the_hint_names_run_sh(tmp_path: Path) -> None:
    printed = _run(["./run.sh", "stop", "booking"], tmp_path)
    assert f"start it with `BOXOFFICE_DATA_DIR={tmp_path} ./run.sh up`" in printed, printed
    printed = _run(["bash", "run.sh", "dead-letters"], tmp_path)
    assert f"start it with `BOXOFFICE_DATA_DIR={tmp_path} ./run.sh up`" in printed, printed


def test_run_as_a_module_the_hint_names_the_module(tmp_path: Path) -> None:
    printed = _run([sys.executable, "-m", "boxoffice", "stop", "booking"], tmp_path)
    assert f"start it with `BOXOFFICE_DATA_DIR={tmp_path} {sys.executable} -m boxoffice up`" in printed, printed
    printed = _run([sys.executable, "-m", "boxoffice", "service", "booking"], tmp_path)
    assert f"(`BOXOFFICE_DATA_DIR={tmp_path} {sys.executable} -m boxoffice up` sets them)" in printed, printed


def test_as_boxoffice_on_the_path_the_hint_names_boxoffice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = tmp_path / "bin" / "boxoffice"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    monkeypatch.delenv("BOXOFFICE_INVOKED_AS", raising=False)
    monkeypatch.delenv("BOXOFFICE_DATA_DIR", raising=False)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    script.chmod(0o755)
    assert cli.invoked_as() == "boxoffice"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert cli.invoked_as() == str(script)
    assert cli._commands("start it with `boxoffice up`") == f"start it with `{script} up`"  # noqa: SLF001


def test_the_readme_shows_what_up_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's sample of `up`, given the same ports and paths, is the output byte for byte, and every
    line but the `try:` command fits an 80-column terminal without being cut."""
    import io

    from rich.console import Console

    from boxoffice.platform import Runtime

    readme = (ROOT / "README.md").read_text()
    after = readme.index("`up` prints where to look")
    start = readme.index("```\n", after) + 4
    sample = readme[start:readme.index("```\n", start)]
    runtime = Runtime(kafka_bootstrap="127.0.0.1:36005", database_url="", http_port=8000, embedded_kafka=True,
                      embedded_database=True, mailbox_url="http://127.0.0.1:56217/r8FqYp2LkV0xW3nT5bHs9A")
    terminal = Console(width=80, record=True, file=io.StringIO())
    cli.print_started(terminal, runtime, Path("/home/you/boxoffice/.boxoffice/logs"), 6.7, detach=False)
    printed = terminal.export_text()
    assert printed == sample
    assert all(len(line) <= 81 for line in printed.splitlines() if "try:" not in line)
    monkeypatch.setenv("BOXOFFICE_INVOKED_AS", "./run.sh")
    monkeypatch.delenv("BOXOFFICE_DATA_DIR", raising=False)
    detached = Console(width=80, record=True, file=io.StringIO())
    cli.print_started(detached, runtime, Path("/logs"), 6.7, detach=True)
    assert detached.export_text().splitlines()[-1] == "Stop it with ./run.sh down."


def test_a_platform_in_another_data_dir_is_stopped_as_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """`down` finds the platform by its data directory: the printed command carries the one `up` was given."""
    import io

    from rich.console import Console

    from boxoffice.platform import Runtime

    runtime = Runtime(kafka_bootstrap="127.0.0.1:36005", database_url="", http_port=8620, embedded_kafka=True,
                      embedded_database=True)
    monkeypatch.setenv("BOXOFFICE_INVOKED_AS", "./run.sh")
    monkeypatch.setenv("BOXOFFICE_DATA_DIR", "/tmp/on sale")
    detached = Console(width=80, record=True, file=io.StringIO())
    cli.print_started(detached, runtime, Path("/logs"), 6.7, detach=True)
    assert detached.export_text().splitlines()[-1] == "Stop it with BOXOFFICE_DATA_DIR='/tmp/on sale' ./run.sh down."


def test_with_accounts_up_shows_the_way_to_a_token_not_a_hold_that_would_be_refused() -> None:
    import io

    from rich.console import Console

    from boxoffice.platform import Runtime

    runtime = Runtime(kafka_bootstrap="127.0.0.1:36005", database_url="", http_port=8000, embedded_kafka=True,
                      embedded_database=True)
    terminal = Console(width=80, record=True, file=io.StringIO())
    cli.print_started(terminal, runtime, Path("/logs"), 6.7, detach=True, accounts=True)
    printed = terminal.export_text()
    assert "curl" not in printed and "/auth/register" in printed and "/auth/token" in printed


def test_piped_output_keeps_a_long_sentence_on_one_line() -> None:
    """Found from outside: `bench` piped to a file broke its sentences at 160 columns."""
    import subprocess
    import sys

    sentence = " ".join(["platform stopped; its logs are in /tmp/somewhere"] * 6)
    printed = subprocess.run(
        [sys.executable, "-c", f"from boxoffice.entrypoints.cli import console; console.print({sentence!r})"],
        capture_output=True, text=True, timeout=60, check=True)
    assert printed.stdout == sentence + "\n"
