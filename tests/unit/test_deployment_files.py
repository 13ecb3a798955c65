"""The deployment files: compose.yaml runs every service in its own container against Apache Kafka,
PostgreSQL and an SMTP server (nothing embedded), and docs/configuration.md documents every setting."""

from __future__ import annotations

import base64
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner

from boxoffice.config import SERVICES, Settings
from boxoffice.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
CONTAINERS: dict[str, dict[str, Any]] = COMPOSE["services"]
SETTING_VARIABLES = {f"BOXOFFICE_{name.upper()}" for name in Settings.model_fields}
# Apache Kafka's default group.min.session.timeout.ms: shorter consumer sessions are refused.
KAFKA_MIN_SESSION_MS = 6000


def interpolated(value: object) -> str:
    """A value as Compose passes it when no variable is set: `${X:-default}` → default, `${X}` → ""."""
    text = str(value)
    text = re.sub(r"\$\{[A-Za-z0-9_]+:?-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{[A-Za-z0-9_]+\}", "", text)


def environment(container: dict[str, Any]) -> dict[str, str]:
    env = container.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolated(value) for key, value in env.items()}


def command(container: dict[str, Any]) -> list[str]:
    cmd = container.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def boxoffice_containers() -> dict[str, dict[str, Any]]:
    return {name: c for name, c in CONTAINERS.items() if str(c.get("image", "")).startswith("boxoffice")}


def settings_of(container: dict[str, Any]) -> Settings:
    """What the container's process would read, validated by Settings itself (no .env, no host variables)."""
    values = {key.removeprefix("BOXOFFICE_").lower(): value for key, value in environment(container).items()
              if key.startswith("BOXOFFICE_")}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_every_service_runs_in_a_container_of_its_name_with_a_health_check_and_a_restart_policy() -> None:
    for service in SERVICES:
        running = [name for name, c in CONTAINERS.items() if command(c) == ["service", service]]
        # Named after the service, so that `docker compose stop booking` / `start booking` address it.
        assert running == [service], f"containers running `boxoffice service {service}`: {running}"
        container = CONTAINERS[service]
        assert container["image"] == CONTAINERS["gateway"]["image"], "one image for every service"
        assert container["healthcheck"]["test"], f"{service} has no health check"
        assert container.get("restart") in ("always", "unless-stopped", "on-failure"), service


def test_the_image_runs_the_boxoffice_command_as_an_unprivileged_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["boxoffice"\]', dockerfile, re.MULTILINE)
    for variable in re.findall(r"\bBOXOFFICE_[A-Z0-9_]+", dockerfile):
        assert variable in SETTING_VARIABLES, f"Dockerfile sets {variable}, which is not a setting"


def test_health_checks_are_commands_the_image_has() -> None:
    runner = CliRunner()
    for service in SERVICES:
        test = CONTAINERS[service]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL")
        if service == "gateway":
            assert "http://127.0.0.1:8000/health" in " ".join(test)
            continue
        # The container's own process: with --scale, each replica reports on itself.
        assert test[1:] == ["boxoffice", "health", service, "--this-host"], test
        result = runner.invoke(app, [*test[2:], "--help"])
        assert result.exit_code == 0, result.output
        assert "--this-host" in result.output


def test_only_the_gateway_publishes_a_port_so_that_services_scale() -> None:
    assert [p.rsplit(":", 1)[-1] for p in map(interpolated, CONTAINERS["gateway"]["ports"])] == ["8000"]
    for service in SERVICES:
        if service != "gateway":
            assert "ports" not in CONTAINERS[service], f"{service} publishes a port: --scale would clash"
        assert "container_name" not in CONTAINERS[service], f"{service} has a fixed name: --scale would clash"


def test_every_boxoffice_variable_in_the_compose_file_is_a_setting() -> None:
    used = set(re.findall(r"\bBOXOFFICE_[A-Z0-9_]+", COMPOSE_TEXT))
    assert used, "compose.yaml configures nothing"
    assert not used - SETTING_VARIABLES, f"not settings: {sorted(used - SETTING_VARIABLES)}"


def test_no_container_relies_on_an_embedded_server() -> None:
    containers = boxoffice_containers()
    assert set(SERVICES) | {"migrate"} <= set(containers)
    for name, container in containers.items():
        env = environment(container)
        for variable in ("BOXOFFICE_KAFKA_BOOTSTRAP", "BOXOFFICE_DATABASE_URL", "BOXOFFICE_SMTP_URL"):
            assert env.get(variable), f"{name}: {variable} unset means an embedded server"
        settings = settings_of(container)
        assert not settings.embedded_kafka and not settings.embedded_database
        # Every address names a container of this file.
        brokers = [urlsplit(f"//{address}") for address in (settings.kafka_bootstrap or "").split(",")]
        assert all(b.hostname in CONTAINERS and b.port for b in brokers), settings.kafka_bootstrap
        assert urlsplit(settings.database_url).hostname in CONTAINERS
        assert urlsplit(settings.smtp_url).hostname in CONTAINERS


def test_services_listen_where_the_others_look_for_them() -> None:
    gateway, realtime = settings_of(CONTAINERS["gateway"]), settings_of(CONTAINERS["realtime"])
    assert gateway.http_host == realtime.http_host == "0.0.0.0"
    target = urlsplit(gateway.realtime_url)
    assert target.hostname == "realtime" and target.port == realtime.realtime_port != 0


def test_services_start_after_kafka_postgres_and_the_init_job() -> None:
    migrate = CONTAINERS["migrate"]
    assert command(migrate) == ["init"]
    assert CliRunner().invoke(app, ["init", "--help"]).exit_code == 0
    for dependency in ("kafka", "postgres"):
        assert CONTAINERS[dependency]["healthcheck"]["test"]
        assert migrate["depends_on"][dependency]["condition"] == "service_healthy"
    for service in SERVICES:
        depends = CONTAINERS[service]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_kafka_runs_in_kraft_mode_on_the_advertised_address_the_services_use() -> None:
    kafka = CONTAINERS["kafka"]
    assert re.match(r"apache/kafka:\d", kafka["image"])
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in env["KAFKA_LISTENERS"]
    assert not [key for key in env if "ZOOKEEPER" in key]
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    advertised = {urlsplit(listener).netloc for listener in
                  env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, container in boxoffice_containers().items():
        assert set(environment(container)["BOXOFFICE_KAFKA_BOOTSTRAP"].split(",")) <= advertised, name


@pytest.mark.parametrize("service", SERVICES)
def test_consumer_sessions_are_accepted_by_a_stock_kafka_broker(service: str) -> None:
    minimum = int(environment(CONTAINERS["kafka"]).get("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", KAFKA_MIN_SESSION_MS))
    settings = settings_of(CONTAINERS[service])
    assert settings.kafka_session_timeout_ms >= minimum
    assert settings.kafka_heartbeat_interval_ms * 3 <= settings.kafka_session_timeout_ms


def test_the_configuration_doc_documents_every_setting() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(v for v in SETTING_VARIABLES if f"`{v}`" not in doc)
    assert not missing, f"docs/configuration.md does not document {missing}"
    for name in ("configuration.md", "deployment.md"):
        stale = sorted(set(re.findall(r"\bBOXOFFICE_[A-Z0-9_]+", (ROOT / "docs" / name).read_text()))
                       - SETTING_VARIABLES)
        assert not stale, f"docs/{name} names variables that are not settings: {stale}"


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "gateway"])
def test_the_connection_budget_in_the_deployment_doc_matches_each_services_pool(service: str) -> None:
    source = (ROOT / "src" / "boxoffice" / "entrypoints" / f"{service}.py").read_text()
    pool = re.search(r"bootstrap\.runtime\(.*pool_size=(\d+)", source)
    assert pool, f"{service}: no pool size found in its entrypoint"
    doc = (ROOT / "docs" / "deployment.md").read_text()
    assert re.search(rf"^\| {service} \| {pool[1]}\b", doc, re.MULTILINE), \
        f"docs/deployment.md: the {service} row of the connection table should say {pool[1]}"
