"""How many partitions `up` and `init` make: fewer on the embedded broker, whose fetches read every one."""

from __future__ import annotations

from boxoffice.config import Settings
from boxoffice.platform import Runtime, _service_env


def _settings(**given: object) -> Settings:
    return Settings(_env_file=None, **given)  # type: ignore[call-arg]


def test_unset_it_is_4_on_the_embedded_broker_and_12_on_an_external_kafka() -> None:
    assert _settings().partitions == 4
    assert _settings(kafka_bootstrap="kafka1:9092").partitions == 12


def test_the_embedded_broker_gets_a_partition_per_booking_process_beyond_4() -> None:
    assert _settings(booking_processes=3).partitions == 4
    assert _settings(booking_processes=6).partitions == 6


def test_a_configured_count_stands_everywhere() -> None:
    assert _settings(topic_partitions=12).partitions == 12
    assert _settings(topic_partitions=2, kafka_bootstrap="kafka1:9092").partitions == 2


def test_up_hands_its_count_to_the_services_which_reach_the_embedded_broker_by_address() -> None:
    runtime = Runtime(kafka_bootstrap="127.0.0.1:9092", database_url="postgresql://x@127.0.0.1/boxoffice",
                      http_port=8000, embedded_kafka=True, embedded_database=True)
    env = _service_env(_settings(booking_processes=5), runtime)
    service = _settings(**{name.removeprefix("BOXOFFICE_").lower(): value for name, value in env.items()
                           if name in ("BOXOFFICE_KAFKA_BOOTSTRAP", "BOXOFFICE_TOPIC_PARTITIONS")})
    assert service.embedded_kafka is False and service.partitions == 5
