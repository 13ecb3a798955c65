"""An external Kafka's credentials reach every Kafka client the platform makes; incomplete ones are refused at
start, and credentials never go to the embedded broker, which takes plain connections only."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from pydantic import ValidationError

from boxoffice.adapters import dead_letters, kafka
from boxoffice.config import Settings
from boxoffice.platform import Runtime, _service_env

SASL = {"kafka_bootstrap": "kafka1:9093", "kafka_security_protocol": "sasl_ssl",
        "kafka_sasl_mechanism": "scram-sha-512", "kafka_sasl_username": "boxoffice",
        "kafka_sasl_password": "s3cret-from-the-vault"}


class Recorded:
    """Stands in for an aiokafka client class: keeps what the constructor was given."""

    made: list[dict[str, Any]]

    def __init__(self, *topics: str, **options: Any) -> None:
        type(self).made.append(options)

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def start(self) -> None:
        raise RuntimeError("recorded only")  # the constructor's arguments are what is checked

    async def close(self) -> None:
        pass

    async def stop(self) -> None:
        pass


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    Recorded.made = []
    for module in (kafka, dead_letters):
        for name in ("AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, Recorded)
    return Recorded.made


def _assert_sasl(options: dict[str, Any]) -> None:
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("boxoffice", "s3cret-from-the-vault")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


async def test_the_credentials_reach_every_client_of_the_services_and_the_tools(made: list[dict[str, Any]]) -> None:
    settings = Settings(_env_file=None, **SASL)  # type: ignore[call-arg]
    kafka.make_producer(settings)
    kafka.make_group_consumer(settings, "booking", ["seat.reservation.requested"])
    with pytest.raises(RuntimeError, match="recorded only"):
        await kafka.make_tail_consumer(settings, ["seat.reserved"])
    with pytest.raises(RuntimeError, match="recorded only"):
        await kafka.ensure_topics("kafka1:9093", 12, attempts=1, security=kafka.client_security(settings))
    with pytest.raises(RuntimeError, match="recorded only"):
        await dead_letters.read_dead_letters("kafka1:9093", security=kafka.client_security(settings))
    letter = dead_letters.DeadLetter("id", "seat.reserved", "booking", "", "", 0, 0, None, b"{}")
    with pytest.raises(RuntimeError, match="recorded only"):
        await dead_letters.replay("kafka1:9093", letter, security=kafka.client_security(settings))
    assert len(made) == 6
    for options in made:
        _assert_sasl(options)


def test_unset_the_clients_connect_plainly(made: list[dict[str, Any]]) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap="kafka1:9092")  # type: ignore[call-arg]
    kafka.make_producer(settings)
    assert made[0]["security_protocol"] == "PLAINTEXT"
    assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "ssl_context"} & made[0].keys()


def test_tls_without_sasl_sends_no_credentials() -> None:
    options = kafka.client_security(Settings(_env_file=None, kafka_security_protocol="SSL"))  # type: ignore[call-arg]
    assert options["security_protocol"] == "SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_plain_password" not in options


@pytest.mark.parametrize("left_out", ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_all_of_its_settings_is_refused(left_out: str) -> None:
    given = {k: v for k, v in SASL.items() if k != left_out}
    with pytest.raises(ValidationError, match=f"BOXOFFICE_{left_out.upper()}") as refused:
        Settings(_env_file=None, admin_password="admin-secret", **given)  # type: ignore[call-arg]
    assert "s3cret" not in str(refused.value) and "admin-secret" not in str(refused.value)  # it goes to logs


def test_an_unknown_mechanism_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{**SASL, "kafka_sasl_mechanism": "GSSAPI"})  # type: ignore[call-arg]


def _runtime(embedded_kafka: bool) -> Runtime:
    return Runtime(kafka_bootstrap="127.0.0.1:9092", database_url="postgresql://x@127.0.0.1/boxoffice",
                   http_port=8000, embedded_kafka=embedded_kafka, embedded_database=True)


def test_up_passes_the_credentials_to_the_services_of_an_external_kafka_only() -> None:
    settings = Settings(_env_file=None, **SASL)  # type: ignore[call-arg]
    external = _service_env(settings, _runtime(embedded_kafka=False))
    assert external["BOXOFFICE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert external["BOXOFFICE_KAFKA_SASL_PASSWORD"] == "s3cret-from-the-vault"
    embedded = _service_env(settings, _runtime(embedded_kafka=True))
    assert embedded["BOXOFFICE_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not [name for name in embedded if name.startswith("BOXOFFICE_KAFKA_SASL_")]
