"""`GET /metrics` for Prometheus, and what the gateway measures of every HTTP request.

Each service counts in its own process (boxoffice/metrics.py) and sends its counters with its heartbeat,
one row per instance; this renders every instance's last heartbeat with `service` and `instance` labels,
and the gateway's own counters as they are now. Heartbeats also give the gauges: service up, consumer lag.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from boxoffice import metrics
from boxoffice.adapters.heartbeat import instance_name, read_instances
from boxoffice.config import SERVICES
from boxoffice.entrypoints.gateway.deps import GatewayDep
from boxoffice.entrypoints.gateway.state import ServiceHealth
from boxoffice.logs import CORRELATION_ID, Outage

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
READ_TIMEOUT_SECONDS = 2.0
_last_read: list[dict[str, Any]] = []  # the heartbeats of the last scrape, should the database blink
_reading = Outage(log, "reading heartbeats for /metrics")


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def prometheus_metrics(gw: GatewayDep) -> Response:
    """Counters and gauges of every service instance, in the Prometheus text format."""
    global _last_read
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            _last_read = await read_instances(gw.pool)
    except Exception as exc:  # noqa: BLE001 - the last read is served instead
        _reading.failed(exc)
    else:
        _reading.recovered()
    collector = HeartbeatCollector(_last_read, gw.health, instance_name())
    return Response(generate_latest(collector), media_type=CONTENT_TYPE)


class HeartbeatCollector:
    """A prometheus_client collector over heartbeat rows (adapters/heartbeat.py read_instances)."""

    def __init__(self, instances: list[dict[str, Any]], health: ServiceHealth | None, own_instance: str,
                 stale_after: float | None = None) -> None:
        own = {"service": "gateway", "instance": own_instance, "age": 0.0, "info": {"metrics": metrics.snapshot()},
               "startedAt": _STARTED}
        # This process's counters as they are now, not as of its last beat.
        self._instances = [i for i in instances if i["instance"] != own_instance or i["service"] != "gateway"]
        self._instances.append(own)
        self._health = health
        self._stale_after = stale_after if stale_after is not None else (health.stale_after if health else 5.0)

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        up = GaugeMetricFamily("boxoffice_service_up", "1 when the service's last heartbeat is recent, else 0.",
                               labels=["service"])
        for service in sorted({*SERVICES, *(i["service"] for i in self._instances)}):
            alive = service == "gateway" or (self._health.is_up(service) if self._health else any(
                i["service"] == service and i["age"] <= self._stale_after for i in self._instances))
            up.add_metric([service], 1.0 if alive else 0.0)
        yield up
        age = GaugeMetricFamily("boxoffice_heartbeat_age_seconds", "Seconds since the instance's last heartbeat.",
                                labels=["service", "instance"])
        started = GaugeMetricFamily("boxoffice_process_start_time_seconds",
                                    "When the instance started, in seconds since the epoch.",
                                    labels=["service", "instance"])
        lag = GaugeMetricFamily("boxoffice_consumer_lag", "Kafka messages not yet consumed by the instance.",
                                labels=["service", "instance"])
        connections = GaugeMetricFamily("boxoffice_live_connections", "Open live-update connections.",
                                        labels=["service", "instance"])
        for instance in self._instances:
            labels = [instance["service"], instance["instance"]]
            age.add_metric(labels, round(instance["age"], 3))
            started.add_metric(labels, instance["startedAt"])
            if instance["age"] > self._stale_after:
                continue  # a gauge of an instance that stopped beating would be a stale reading
            info = instance["info"]
            if isinstance(info.get("lag"), int | float):
                lag.add_metric(labels, info["lag"])
            if isinstance(info.get("connections"), int | float):
                connections.add_metric(labels, info["connections"])
        yield from (age, started, lag, connections)

    def _counters(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for instance in self._instances:
            base = [instance["service"], instance["instance"]]
            for name, family in (instance["info"].get("metrics") or {}).items():
                known = metrics.FAMILIES.get(name)
                labels = ["service", "instance", *family["labels"]]
                if name not in families:
                    kind = HistogramMetricFamily if "buckets" in family else CounterMetricFamily
                    families[name] = kind(name, known.help if known else name, labels=labels)
                target = families[name]
                if "buckets" in family:
                    bounds = [floatToGoString(b) for b in family["buckets"]] + ["+Inf"]
                    for sample in family["samples"]:
                        *values, series = sample
                        cumulative, buckets = 0.0, []
                        for bound, count in zip(bounds, series[:-1], strict=True):
                            cumulative += count
                            buckets.append((bound, cumulative))
                        target.add_metric([*base, *values], buckets, series[-1])  # type: ignore[attr-defined]
                else:
                    for *values, value in family["samples"]:
                        target.add_metric([*base, *values], value)  # type: ignore[attr-defined]
        # Every known family appears, in a steady order, with no samples until something is counted.
        for name, known in metrics.FAMILIES.items():
            if name not in families:
                labels = ["service", "instance", *known.labels]
                families[name] = (HistogramMetricFamily(name, known.help, labels=labels)
                                  if isinstance(known, metrics.Histogram)
                                  else CounterMetricFamily(name, known.help, labels=labels))
            yield families.pop(name)
        yield from families.values()  # from instances that know families this process does not


_STARTED = time.time()
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_INCOMING_ID = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")
# New ids: a random prefix per process and a counter, unique without a system call per request.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(1)


class RequestTelemetry:
    """Counts and times each HTTP request by its route template (never the raw path, whose ids would
    make a series per booking), and gives it a correlation id: the caller's X-Request-ID or a new one,
    returned in the response's X-Request-ID and written on every log line about the request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        correlation_id = correlation_id_of(next((v for k, v in scope["headers"] if k == b"x-request-id"), None))
        token = CORRELATION_ID.set(correlation_id)
        header = (b"x-request-id", correlation_id.encode())
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
                observe(scope, status, started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            if not status:
                observe(scope, 500, started)  # the error handler outside answers 500
            raise  # the id stays set: the error handler logs with it
        CORRELATION_ID.reset(token)


def correlation_id_of(incoming: bytes | None) -> str:
    """The caller's X-Request-ID when it is a sane one, else a new id."""
    return (incoming.decode() if incoming and _INCOMING_ID.match(incoming)
            else f"{_ID_PREFIX}{next(_id_counter):016x}")


def observe(scope: Scope, status: int, started: float) -> None:
    # Time to the response's status line: for a stream (SSE) that is when it opens, not when it closes.
    route = getattr(scope.get("route"), "path", None) or "unmatched"
    method = scope["method"] if scope["method"] in _METHODS else "other"
    metrics.HTTP_REQUESTS.inc(method, route, str(status))
    metrics.HTTP_DURATION.observe(time.perf_counter() - started, method, route)
