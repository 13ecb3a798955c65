"""What a service counts, kept in its own process: an increment is one dict update, so the hold path can
afford it. The heartbeat carries a snapshot of this process's values to the database; the gateway renders
every instance's values at `GET /metrics` (entrypoints/gateway/telemetry.py). A restarted process is a new
instance (host:pid), so its counters start again at zero under a label of their own."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any


class Counter:
    __slots__ = ("help", "labels", "name", "values")

    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[tuple[str, ...], float] = {}
        FAMILIES[name] = self

    def inc(self, *label_values: str, by: float = 1) -> None:
        values = self.values
        values[label_values] = values.get(label_values, 0) + by


class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and the sum, per label values."""

    __slots__ = ("buckets", "help", "labels", "name", "values")

    def __init__(self, name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.labels, self.buckets = name, help, labels, tuple(sorted(buckets))
        self.values: dict[tuple[str, ...], list[float]] = {}
        FAMILIES[name] = self

    def observe(self, amount: float, *label_values: str) -> None:
        series = self.values.get(label_values)
        if series is None:
            series = self.values[label_values] = [0] * (len(self.buckets) + 2)
        series[bisect_left(self.buckets, amount)] += 1  # a bucket counts values <= its bound
        series[-1] += amount


FAMILIES: dict[str, Counter | Histogram] = {}

HOLDS_GRANTED = Counter("boxoffice_holds_granted_total", "Reservation requests granted: seats held for a booking.")
HOLDS_REFUSED = Counter("boxoffice_holds_refused_total", "Reservation requests refused, by reason (error code).",
                        ("reason",))
HOLDS_EXPIRED = Counter("boxoffice_holds_expired_total", "Holds that expired unpaid; their seats were released.")
BOOKINGS_CONFIRMED = Counter("boxoffice_bookings_confirmed_total", "Bookings confirmed after a successful payment.")
BOOKINGS_CANCELLED = Counter("boxoffice_bookings_cancelled_total", "Pending bookings cancelled by their user.")
BOOKING_COMMANDS_REJECTED = Counter(
    "boxoffice_booking_commands_rejected_total", "Confirmations and cancellations refused, by command and reason.",
    ("command", "reason"))
PAYMENTS = Counter("boxoffice_payments_total", "Charges decided by the payment provider, by outcome.", ("outcome",))
EMAILS_SENT = Counter("boxoffice_emails_sent_total", "Emails handed to the mail server, by kind.", ("kind",))
MESSAGES_CONSUMED = Counter("boxoffice_messages_consumed_total", "Kafka messages consumed, by topic.", ("topic",))
DEAD_LETTERS = Counter("boxoffice_dead_letters_total",
                       "Messages a consumer could not handle, put in <topic>.dead, by original topic.", ("topic",))
INVALID_SKIPPED = Counter("boxoffice_messages_skipped_total",
                          "Messages a tail reader (gateway replies, realtime) skipped as malformed, by topic.",
                          ("topic",))
FORGED_OUTCOMES = Counter("boxoffice_unrecorded_outcomes_total",
                          "Payment and refund outcomes read from Kafka that the payment service had not recorded "
                          "(forged), ignored, by topic.", ("topic",))
FORGED_JOINS = Counter("boxoffice_forged_queue_joins_total",
                       "queue.joined messages whose queue token the gateway did not make (forged), ignored.")
HANDLER_RETRIES = Counter("boxoffice_handler_retries_total", "Batches whose handling failed and was retried.")
OUTBOX_PUBLISHED = Counter("boxoffice_outbox_published_total", "Outbox messages published to Kafka.")
HTTP_REQUESTS = Counter("boxoffice_http_requests_total", "HTTP requests answered by the gateway.",
                        ("method", "route", "status"))
HTTP_DURATION = Histogram(
    "boxoffice_http_request_duration_seconds", "Time from a request's arrival to its response status, at the gateway.",
    ("method", "route"), (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
LIVE_SPLICED = Counter("boxoffice_live_connections_total", "Live-update connections spliced to the realtime service.")


def snapshot() -> dict[str, Any]:
    """This process's values, for the heartbeat (JSON): families without values are left out."""
    return {
        family.name: {"labels": family.labels, "samples": [[*key, value] for key, value in family.values.items()],
                      **({"buckets": family.buckets} if isinstance(family, Histogram) else {})}
        for family in FAMILIES.values() if family.values
    }
