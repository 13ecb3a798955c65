"""Log lines as JSON, and the ids that tie the lines of every service about one HTTP request together.

`REQUEST_ID` is the Kafka message's `requestId` while that message is handled (and, in the gateway, once a
request has published its command); `CORRELATION_ID` is the gateway's per-HTTP-request id (`X-Request-ID`).
Setting them costs a context variable write; they are read only when a line is actually written.
"""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from boxoffice.domain.text import CONTROL

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is written as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, service, pid, logger, message, and the ids when known."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service
        self._pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname, "service": self._service, "pid": record.process or self._pid,
            "logger": record.name, "message": record.getMessage(),
        }
        request_id, correlation_id = REQUEST_ID.get(), CORRELATION_ID.get()
        if request_id:
            line["requestId"] = request_id
        if correlation_id:
            line["correlationId"] = correlation_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value  # `extra=` fields; an explicit requestId wins over the context's
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def text_format(service: str) -> str:
    return f"%(asctime)s {service}[%(process)d] %(levelname)s %(name)s: %(message)s"


_CONTROL = re.compile(f"[{CONTROL}]")


class TextFormatter(logging.Formatter):
    """One record, one line: a line break in the message (a URL path, a mail server's reply) is written
    escaped, as \\n, so that it cannot pass for another record. A traceback still follows on its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), super().formatMessage(record))


def configure(service: str, log_format: str = "text", level: int = logging.INFO) -> None:
    """Replaces the root handler: safe to call again, e.g. in each gateway worker process."""
    handler = logging.StreamHandler()  # stderr, which the supervisor writes to the service's log file
    handler.setFormatter(JsonFormatter(service) if log_format == "json" else TextFormatter(text_format(service)))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
