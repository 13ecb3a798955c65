"""Settings, read from BOXOFFICE_* environment variables (and a .env file if present)."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SEATS_PER_USER = 20
KAFKA_PARTITIONS = 12
EMBEDDED_BROKER_PARTITIONS = 4

SERVICES = ("gateway", "booking", "payment", "catalog", "notification", "realtime", "waitingroom")


def _bracketed_ipv6(host: str) -> bool:
    if not (host.startswith("[") and host.endswith("]")):
        return False
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return False
    return True


class Settings(BaseSettings):
    # An error names the setting, never its value: the input holds passwords and keys.
    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)

    http_port: int = Field(8000, ge=1, le=65535)
    http_host: str = "127.0.0.1"
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    smtp_url: str | None = None
    hold_seconds: float = Field(600, gt=0)
    data_dir: Path = Path(".boxoffice")
    auth: Literal["on", "off"] = "off"
    # Accounts: access tokens live this long; signed with this secret (unset: a key kept in PostgreSQL).
    token_seconds: int = Field(900, ge=30, le=86_400)
    auth_secret: str | None = None
    # With accounts on: "on" holds seats only for accounts whose email address was confirmed through a link
    # sent to it (and each mailbox confirms one account); "off" takes any registered account.
    email_verification: Literal["on", "off"] = "off"
    # Where links in emails point (the gateway as buyers reach it); unset: http://<http host>:<http port>.
    public_url: str | None = Field(None, max_length=512, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    # An admin account ensured at start-up when both are set (admins grant the organiser role).
    admin_email: str | None = None
    admin_password: str | None = None
    # Abuse limits. "auto": on when auth is on, off for the open demo (whose user ids are not proven).
    rate_limits: Literal["auto", "on", "off"] = "auto"
    rate_limit_user_per_minute: int = Field(60, ge=1)
    rate_limit_user_burst: int = Field(10, ge=1)
    rate_limit_ip_per_minute: int = Field(1200, ge=1)
    rate_limit_ip_burst: int = Field(100, ge=1)
    # Sign-in attempts per account (by email, whether it exists or not), with the rate limits on.
    login_attempts_per_minute: int = Field(5, ge=1)
    login_attempts_burst: int = Field(5, ge=1)
    # Seats one buyer may hold or own per event; unset: 20 when auth is on, no cap in the demo.
    max_seats_per_user: int | None = Field(None, ge=1)
    # Origins allowed to call the API from other sites' pages (comma-separated); unset: same origin only.
    cors_origins: str = ""
    # Addresses of the proxies in front of the gateway (comma-separated IPs or CIDRs, "*" for any) whose
    # X-Forwarded-For / X-Forwarded-Proto are believed; unset: none, the client is the connection's peer.
    trusted_proxies: str = ""

    # How the services authenticate to an external Kafka (docs/configuration.md); the embedded broker takes
    # plain connections only.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None

    # Partitions of each topic made at `up` / `init`; unset: 12 on an external Kafka, and on the embedded broker,
    # which reads every partition of a consumer's topics on every fetch (idle, 12 partitions cost it 60 % of a
    # core, 4 about 28 %), 4 or one per booking process if there are more.
    topic_partitions: int | None = Field(None, ge=1)
    booking_reply_seconds: float = Field(3.0, gt=0)
    max_seats_per_booking: int = Field(10, ge=1)
    # A waiting fetch is answered after this long even if data arrived earlier: keep it low on latency paths.
    kafka_fetch_wait_ms: int = 25
    # Consumers off the request path (counts, emails) poll less often: idle fetches cost broker CPU.
    kafka_background_fetch_wait_ms: int = 500
    # The embedded broker holds a join for half the session: short sessions make restarts rejoin fast.
    kafka_session_timeout_ms: int = 2000
    kafka_heartbeat_interval_ms: int = 500
    # Published outbox rows are kept this long: what a restarted embedded broker forgot is published again.
    # Unset: `up` keeps them 120 s with its embedded broker; with an external Kafka, which keeps what it
    # acknowledged, they are deleted once published (0).
    outbox_retain_seconds: float | None = Field(None, ge=0)
    heartbeat_seconds: float = 1.0
    # A service whose last heartbeat is older than this is reported down.
    heartbeat_stale_seconds: float = 5.0
    # "text" lines, or "json": one object per line with the request's ids (docs/operations.md).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    db_pool_size: int = 8
    gateway_workers: int = Field(1, ge=1)
    # Booking processes in the one `booking` consumer group: the partitions are split between them.
    booking_processes: int = Field(1, ge=1, le=16)
    # The realtime service's own port (0: `up` picks one) and where the gateway finds it.
    realtime_port: int = Field(0, ge=0, le=65535)
    realtime_url: str | None = None
    # On one machine the gateway hands each live connection's socket to a realtime process through the Unix
    # sockets in this directory (unset: <data dir>/handoff; "off": always relay through the gateway).
    realtime_handoff_dir: str | None = None
    # Realtime processes `up` runs (realtime, realtime-2, ...): each tails every change and serves its share.
    # Two by default: the fan-out to open pages is most of the live path's work, and it then uses two cores.
    realtime_processes: int = Field(2, ge=1, le=16)
    # How much lower the CPU priority of the notification service and the embedded mailbox is (a Unix nice
    # increment; 0: the same as the others). Emails are off the buyer's path: on shared cores, checkout goes first
    # and the emails go out on the CPU it leaves.
    notification_nice: int = Field(10, ge=0, le=19)
    # Emails each notification process prepares at once: one is rendered and looked up while another is on its
    # way to the mail server. Emails about one booking still go out one after the other, in order. One by
    # default: with 16, the chaos test once ended with confirmations still without an email (docs/notifications.md).
    notification_concurrency: int = Field(1, ge=1, le=256)
    # Connections each notification process keeps open to the mail server, each carrying one email at a time.
    smtp_connections: int = Field(4, ge=1, le=32)
    payment_provider: str = "simulated"
    # Charges each payment process keeps in flight at once: charges per second ≈ this ÷ the provider's answer
    # time, about 1,700 at the simulated provider's 150 ms, with room for a real provider's slower answers.
    payment_concurrency: int = Field(256, ge=1, le=4096)
    # Each try of a charge waits this long for the provider; tries on retryable errors and timeouts, then the
    # charge is put off and asked again later (docs/payments.md).
    payment_timeout_seconds: float = Field(5.0, gt=0)
    payment_attempts: int = Field(3, ge=1, le=10)
    # The simulated provider: its median answer time, its 99th percentile (lognormal between them; unset or not
    # above the median: always the median), and the share of charges it answers with a retryable error.
    payment_latency_ms: float = Field(150, ge=0)
    payment_latency_p99_ms: float | None = Field(None, ge=0)
    payment_failure_rate: float = Field(0.0, ge=0, le=1)
    # How long PUT /bookings/{id}/confirm waits for the payment's outcome before answering 202.
    confirm_reply_seconds: float = Field(10.0, gt=0)
    # The waiting room (CONTRACT §8.1): how often the waitingroom service opens rooms and admits (its grain),
    # and how many joins one address or account may make a minute (with the rate limits on).
    queue_tick_seconds: float = Field(1.0, gt=0, le=10)
    queue_joins_per_minute: int = Field(10, ge=1)
    queue_joins_burst: int = Field(5, ge=1)
    # A proof of work on each join (the page computes it): 0 = off; n = about 2**n SHA-256 hashes per join
    # (16: a second or so in a browser). A challenge lasts queue_proof_seconds.
    queue_proof_of_work_bits: int = Field(0, ge=0, le=28)
    queue_proof_seconds: int = Field(300, ge=10, le=3600)
    # "admitPerMinute": "auto": at most this many admitted visitors who have not finished (paid, or their
    # admission run out) at once, across one event's room.
    waiting_room_active_ceiling: int = Field(500, ge=1, le=1_000_000)
    mail_from: str = "boxoffice <tickets@boxoffice.test>"
    # The embedded mailbox's ports (used when smtp_url is unset); unset = free ports picked at `up`.
    mailbox_smtp_port: int | None = None
    mailbox_http_port: int | None = Field(None, ge=1, le=65535)

    @field_validator("auth", "rate_limits", "email_verification", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _sasl_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [f"BOXOFFICE_KAFKA_SASL_{name.upper()}" for name in ("mechanism", "username", "password")
                       if not getattr(self, f"kafka_sasl_{name}")]
            if missing:
                raise ValueError(f"BOXOFFICE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                                 + ", ".join(missing))
        return self

    # A URL or address that can never work is refused at once, not retried by every service until `up` gives up.
    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        return _url_of(value, ("postgresql", "postgres"), "a PostgreSQL URL: postgresql://user:password@host:5432/"
                       "database", needs_host=False)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _kafka_addresses(cls, value: str | None) -> str | None:
        if not value:
            return value
        for address in value.split(","):
            host, _, port = address.strip().rpartition(":")
            if not host or any(c.isspace() for c in host) or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError("must be Kafka brokers as host:port, separated by commas (kafka1:9092,kafka2:9092)")
            if (":" in host or host.startswith("[")) and not _bracketed_ipv6(host):
                # The Kafka client reads ::1:9092 as the address ::1:9092 on port 9092, not as ::1 on 9092.
                raise ValueError("an IPv6 address goes in brackets: [::1]:9092")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        return _url_of(value, ("smtp", "smtps"), "an SMTP URL: smtp://user:password@host:587 (STARTTLS) or "
                       "smtps://...:465", needs_host=True)

    @field_validator("log_level", "kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def auth_on(self) -> bool:
        return self.auth == "on"

    @property
    def verification_on(self) -> bool:
        return self.auth_on and self.email_verification == "on"

    @property
    def public_base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.http_port}"

    @property
    def rate_limits_on(self) -> bool:
        return self.rate_limits == "on" or (self.rate_limits == "auto" and self.auth_on)

    @property
    def seats_per_user_limit(self) -> int | None:
        if self.max_seats_per_user is not None:
            return self.max_seats_per_user
        return DEFAULT_SEATS_PER_USER if self.auth_on else None

    @property
    def handoff_dir(self) -> Path | None:
        if self.realtime_handoff_dir == "off":
            return None
        return Path(self.realtime_handoff_dir) if self.realtime_handoff_dir else self.data_path / "handoff"

    @property
    def outbox_retention(self) -> float:
        return self.outbox_retain_seconds if self.outbox_retain_seconds is not None else 0.0

    @property
    def partitions(self) -> int:
        if self.topic_partitions is not None:
            return self.topic_partitions
        return max(EMBEDDED_BROKER_PARTITIONS, self.booking_processes) if self.embedded_kafka else KAFKA_PARTITIONS

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def embedded_database(self) -> bool:
        return not self.database_url


def _url_of(value: str | None, schemes: tuple[str, ...], shape: str, needs_host: bool) -> str | None:
    """`value` if it is such a URL (unset or empty: the embedded server); a PostgreSQL URL may name its host as a
    socket directory in its query instead."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes or (needs_host and not parts.hostname):
        raise ValueError(f"must be {shape}")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    return value


def settings_problems(error: ValidationError) -> str:
    """One line per invalid setting, named as the environment spells it; never its value (it may be a secret)."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        message = str(problem["msg"]).removeprefix("Value error, ")
        names = [str(part) for part in problem["loc"]]
        lines.append(f"  BOXOFFICE_{names[0].upper()}: {message}" if names else f"  {message}")
    return "boxoffice: invalid settings\n" + "\n".join(lines)


def settings_to_stop() -> tuple[Settings, str | None]:
    """The settings, or where one invalid setting would keep a running platform from being stopped, only its data
    directory (all that stopping needs), with the problems to say."""
    try:
        return Settings(), None
    except ValidationError as exc:
        from dotenv import dotenv_values

        data_dir = os.environ.get("BOXOFFICE_DATA_DIR") or dotenv_values(".env").get("BOXOFFICE_DATA_DIR")
        return Settings.model_construct(data_dir=Path(data_dir or ".boxoffice")), settings_problems(exc)


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment. Invalid ones end the process with a line per problem, no traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(settings_problems(exc)) from None
