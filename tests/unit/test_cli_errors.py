"""Mistakes a newcomer makes on the command line get one sentence saying what to do, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    return subprocess.run([sys.executable, "-m", "boxoffice", *args], capture_output=True, text=True, timeout=120,
                          env={**clean, "BOXOFFICE_DATA_DIR": str(data_dir), **env})


def test_dead_letters_of_a_platform_that_stopped_says_so(tmp_path: Path) -> None:
    """`down` leaves runtime.json behind: its broker address must not be dialled as if it were up."""
    (tmp_path / "runtime.json").write_text(json.dumps({
        "kafka_bootstrap": "127.0.0.1:9", "database_url": "", "http_port": 8000, "embedded_kafka": True,
        "embedded_database": True}))
    done = _run("dead-letters", data_dir=tmp_path)
    printed = done.stdout + done.stderr
    assert done.returncode == 1 and "the platform is not running" in printed, printed
    assert "Traceback" not in printed


def test_a_port_out_of_range_is_an_invalid_setting(tmp_path: Path) -> None:
    for value in ("99999", "0", "-1"):
        done = _run("status", data_dir=tmp_path, BOXOFFICE_HTTP_PORT=value)
        printed = done.stdout + done.stderr
        assert done.returncode != 0 and "boxoffice: invalid settings" in printed, printed
        assert "BOXOFFICE_HTTP_PORT: Input should be" in printed and "Traceback" not in printed


def test_a_log_format_that_is_neither_text_nor_json_is_named_so(tmp_path: Path) -> None:
    done = _run("status", data_dir=tmp_path, BOXOFFICE_LOG_FORMAT="xml")
    assert "BOXOFFICE_LOG_FORMAT: Input should be 'text' or 'json'" in done.stdout + done.stderr


def test_a_usage_error_names_the_command_as_it_was_typed(tmp_path: Path) -> None:
    done = _run("stp", "booking", data_dir=tmp_path)
    printed = done.stdout + done.stderr
    assert done.returncode == 2 and "No such command 'stp'" in printed, printed
    assert f"Try '{sys.executable} -m boxoffice --help' for help." in printed
    through_run_sh = _run("stp", data_dir=tmp_path, BOXOFFICE_INVOKED_AS="./run.sh")
    assert "Try './run.sh --help' for help." in through_run_sh.stdout + through_run_sh.stderr


def test_health_of_a_platform_that_is_not_running_says_how_to_start_it(tmp_path: Path) -> None:
    done = _run("health", "gateway", data_dir=tmp_path)
    printed = done.stdout + done.stderr
    assert done.returncode == 1 and "is running (start it with" in printed and "Traceback" not in printed, printed


def test_help_shows_no_value_beside_a_flag_and_the_type_beside_an_option() -> None:
    from typer.testing import CliRunner

    from boxoffice.entrypoints.cli import app

    for command in ([], ["up"], ["bench", "holds"], ["health"]):
        shown = CliRunner().invoke(app, [*command, "--help"], terminal_width=120).output
        assert "--help" in shown and "<bool>" not in shown, (command, shown)
    assert "<int range>" in CliRunner().invoke(app, ["bench", "holds", "--help"], terminal_width=120).output
