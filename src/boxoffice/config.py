"""Settings, read from BOXOFFICE_* environment variables (and a .env file if present)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("gateway", "booking", "payment", "catalog", "notification", "realtime")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", env_file=".env", extra="ignore")

    http_port: int = 8000
    http_host: str = "127.0.0.1"
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    smtp_url: str | None = None
    hold_seconds: float = Field(600, gt=0)
    data_dir: Path = Path(".boxoffice")
    auth: str = "off"

    topic_partitions: int = Field(12, ge=1)
    booking_reply_seconds: float = Field(3.0, gt=0)
    max_seats_per_booking: int = Field(10, ge=1)
    # A waiting fetch is answered after this long even if data arrived earlier: keep it low on latency paths.
    kafka_fetch_wait_ms: int = 25
    # Consumers off the request path (counts, emails) poll less often: idle fetches cost broker CPU.
    kafka_background_fetch_wait_ms: int = 500
    # The embedded broker holds a join for half the session: short sessions make restarts rejoin fast.
    kafka_session_timeout_ms: int = 2000
    kafka_heartbeat_interval_ms: int = 500
    heartbeat_seconds: float = 1.0
    # A service whose last heartbeat is older than this is reported down.
    heartbeat_stale_seconds: float = 5.0
    db_pool_size: int = 8
    gateway_workers: int = Field(1, ge=1)
    # The realtime service's own port (0: `up` picks one) and where the gateway finds it.
    realtime_port: int = 0
    realtime_url: str | None = None
    payment_provider: str = "simulated"
    payment_latency_ms: float = Field(150, ge=0)
    # How long PUT /bookings/{id}/confirm waits for the payment's outcome before answering 202.
    confirm_reply_seconds: float = Field(10.0, gt=0)
    mail_from: str = "boxoffice <tickets@boxoffice.test>"
    # The embedded mailbox's ports (used when smtp_url is unset); unset = free ports picked at `up`.
    mailbox_smtp_port: int | None = None
    mailbox_http_port: int | None = None

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def embedded_database(self) -> bool:
        return not self.database_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
