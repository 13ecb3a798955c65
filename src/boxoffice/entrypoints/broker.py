"""The embedded broker's supervisor program: `python -m boxoffice.entrypoints.broker PORT`.

The broker keeps its messages in memory, so each start is a broker that has forgotten everything. This
process becomes the broker itself (exec, so that the supervisor signals and watches the broker), and a child
it forks first sees to what the start calls for (`bootstrap/broker.py`): the topics made with the configured
partitions, and a new Kafka epoch in PostgreSQL, upon which every producer publishes what it kept once more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from boxoffice import logs
from boxoffice.bootstrap import broker
from boxoffice.config import get_settings

log = logging.getLogger("boxoffice.broker")


def main(argv: list[str]) -> None:
    port = int(argv[0])
    settings = get_settings()
    command = broker.command(port)
    sys.stdout.flush()
    broker_pid = os.getpid()  # after the exec, the broker's
    if os.fork() == 0:
        try:
            logs.configure("broker", settings.log_format, logging.getLevelName(settings.log_level))
            asyncio.run(broker.after_start(settings, port, broker_alive=lambda: os.getppid() == broker_pid))
        except BaseException:  # the child must never return into the broker's place
            log.exception("after the broker's start")
        finally:
            os._exit(0)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
