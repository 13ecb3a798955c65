"""A setting the platform cannot use ends the command with a line naming it: no traceback, and never its value."""

from __future__ import annotations

import os
import subprocess
import sys


def boxoffice(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    return subprocess.run([sys.executable, "-m", "boxoffice", *args], env={**clean, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_port_that_is_not_a_number_is_named_without_a_traceback() -> None:
    done = boxoffice("status", BOXOFFICE_HTTP_PORT="eighty")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "boxoffice: invalid settings",
        "  BOXOFFICE_HTTP_PORT: Input should be a valid integer, unable to parse string as an integer"]
    assert "eighty" not in done.stderr + done.stdout


def test_settings_that_need_each_other_say_what_is_missing_and_never_a_password() -> None:
    done = boxoffice("service", "gateway", BOXOFFICE_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                     BOXOFFICE_KAFKA_SASL_PASSWORD="hunter2-secret")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "BOXOFFICE_KAFKA_SASL_MECHANISM" in done.stderr and "hunter2-secret" not in done.stderr + done.stdout
