"""A setting the platform cannot use ends the command with a line naming it: no traceback, and never its value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError


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


def test_urls_that_can_never_work_are_refused_at_once_and_their_passwords_never_shown() -> None:
    done = boxoffice("status", BOXOFFICE_DATABASE_URL="mysql://admin:hunter2-secret@db/x",
                     BOXOFFICE_KAFKA_BOOTSTRAP="kafka1", BOXOFFICE_SMTP_URL="ftp://mail")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "boxoffice: invalid settings",
        "  BOXOFFICE_KAFKA_BOOTSTRAP: must be Kafka brokers as host:port, separated by commas "
        "(kafka1:9092,kafka2:9092)",
        "  BOXOFFICE_DATABASE_URL: must be a PostgreSQL URL: postgresql://user:password@host:5432/database",
        "  BOXOFFICE_SMTP_URL: must be an SMTP URL: smtp://user:password@host:587 (STARTTLS) or smtps://...:465"]
    assert "hunter2-secret" not in done.stderr + done.stdout


def test_urls_of_every_shape_the_docs_give_are_taken() -> None:
    from boxoffice.config import Settings

    settings = Settings(database_url="postgres://u:p@/boxoffice?host=/run/postgresql&port=5433",
                        kafka_bootstrap="kafka1:9092,[::1]:9093", smtp_url="smtps://u:p@mail:465?verify=false")
    assert settings.kafka_bootstrap == "kafka1:9092,[::1]:9093"
    assert Settings(database_url="", kafka_bootstrap="").embedded_database


@pytest.mark.parametrize("bootstrap", ["a b:9092", "kafka1:9092,kafka\t2:9092"])
def test_a_broker_host_with_white_space_in_it_is_refused(bootstrap: str) -> None:
    from boxoffice.config import Settings

    with pytest.raises(ValidationError, match="must be Kafka brokers as host:port"):
        Settings(kafka_bootstrap=bootstrap)


@pytest.mark.parametrize("bootstrap", ["::1:9092", "kafka1:9092,fe80::1:9093", "[::1:9092", "[not-an-address]:9092"])
def test_an_ipv6_broker_address_without_brackets_is_refused_rather_than_read_as_another_address(
        bootstrap: str) -> None:
    from boxoffice.config import Settings

    with pytest.raises(ValidationError, match=re.escape("an IPv6 address goes in brackets: [::1]:9092")):
        Settings(kafka_bootstrap=bootstrap)


def test_an_invalid_setting_does_not_keep_down_from_stopping_a_platform(tmp_path: Path) -> None:
    done = boxoffice("down", BOXOFFICE_HOLD_SECONDS="-5", BOXOFFICE_DATA_DIR=str(tmp_path / "none"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BOXOFFICE_HOLD_SECONDS" in done.stderr
    assert f"boxoffice was not running under {tmp_path / 'none'} (" in done.stdout, done.stdout


def test_dead_letters_of_a_broker_that_cannot_be_reached_is_one_sentence() -> None:
    from boxoffice.adapters.embedded import free_port

    bootstrap = f"127.0.0.1:{free_port()}"
    done = boxoffice("dead-letters", BOXOFFICE_KAFKA_BOOTSTRAP=bootstrap)
    assert done.returncode == 1
    assert done.stdout.startswith(f"error: cannot reach Kafka at {bootstrap}: is the platform up"), done.stdout
    assert done.stderr == "", done.stderr  # no client left unclosed, no line per failed connection
