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
    assert "start it with `./run.sh up`" in printed, printed
    printed = _run(["bash", "run.sh", "dead-letters"], tmp_path)
    assert "start it with `./run.sh up`" in printed, printed


def test_run_as_a_module_the_hint_names_the_module(tmp_path: Path) -> None:
    printed = _run([sys.executable, "-m", "boxoffice", "stop", "booking"], tmp_path)
    assert f"start it with `{sys.executable} -m boxoffice up`" in printed, printed


def test_as_boxoffice_on_the_path_the_hint_names_boxoffice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = tmp_path / "bin" / "boxoffice"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    monkeypatch.delenv("BOXOFFICE_INVOKED_AS", raising=False)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    script.chmod(0o755)
    assert cli.invoked_as() == "boxoffice"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert cli.invoked_as() == str(script)
    assert cli._commands("start it with `boxoffice up`") == f"start it with `{script} up`"  # noqa: SLF001
