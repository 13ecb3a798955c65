"""supervisord runs and restarts every process of the platform; this renders its config and talks to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_GROUP = "services"


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]
    priority: int
    autostart: bool
    user: str | None = None
    stopsignal: str = "TERM"
    environment: dict[str, str] | None = None


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'" if any(c in arg for c in " \"'") else arg


def _escape(value: str) -> str:
    return value.replace("%", "%%")


class Supervisor:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.conf = data_dir / "supervisord.conf"
        self.pidfile = data_dir / "supervisord.pid"
        self.socket = data_dir / "supervisor.sock"
        self.logs = data_dir / "logs"

    def write_config(self, infrastructure: list[Program], services: list[Program]) -> None:
        # Logs hold buyers' ids and emails: the platform user's alone, like the files in them (umask below).
        self.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.logs.chmod(0o700)
        # supervisord opens its own log before it takes the umask: made here, it is the platform user's alone too.
        supervisord_log = self.logs / "supervisord.log"
        supervisord_log.touch(mode=0o600)
        supervisord_log.chmod(0o600)
        lines = [
            "[unix_http_server]", f"file={self.socket}", "chmod=0700", "",
            "[supervisord]", f"logfile={self.logs / 'supervisord.log'}", f"pidfile={self.pidfile}",
            # Logs and every file the platform's processes write are the platform user's alone.
            f"directory={Path.cwd()}", "umask=077", "logfile_maxbytes=10MB", "logfile_backups=2", "loglevel=info",
            "minfds=4096", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{self.socket}", "",
        ]
        for program in [*infrastructure, *services]:
            lines += [
                f"[program:{program.name}]",
                "command=" + _escape(" ".join(_quote(a) for a in program.command)),
                f"priority={program.priority}", f"autostart={'true' if program.autostart else 'false'}",
                "autorestart=true", "startsecs=1", "startretries=100", f"stopsignal={program.stopsignal}",
                "stopwaitsecs=15", "stopasgroup=true", "killasgroup=true",
                f"stdout_logfile={self.logs / (program.name + '.log')}", "redirect_stderr=true",
                "stdout_logfile_maxbytes=20MB", "stdout_logfile_backups=2",
            ]
            if program.user:
                lines.append(f"user={program.user}")
            if program.environment:
                env = ",".join(f'{k}="{_escape(v)}"' for k, v in program.environment.items())
                lines.append(f"environment={env}")
            lines.append("")
        lines += [f"[group:{SERVICE_GROUP}]", "programs=" + ",".join(p.name for p in services), ""]
        # It carries every secret passed to the services (admin password, token key): the owner's alone.
        self.conf.touch(mode=0o600)
        self.conf.chmod(0o600)
        self.conf.write_text("\n".join(lines))

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(self) -> None:
        subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 15
        while not self.socket.exists() or self.pid() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("supervisord did not start; see " + str(self.logs / "supervisord.log"))
            time.sleep(0.05)

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), *args],
                              capture_output=True, text=True, check=check)

    def status(self) -> list[tuple[str, str, str]]:
        """(program, state, description) for every program."""
        rows = []
        for line in self.ctl("status").stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2:
                rows.append((parts[0].split(":")[-1], parts[1], parts[2] if len(parts) > 2 else ""))
        return rows

    def shutdown(self, timeout: float = 60, starting: bool = False) -> None:
        """Stops supervisord and everything it runs. `starting`: one interrupted while it started may still be on
        its way to running (it daemonizes): waited for a little, so that it does not come up after this."""
        pid = self.pid()
        deadline = time.monotonic() + (10 if starting else 0)
        while pid is None and time.monotonic() < deadline:
            time.sleep(0.1)
            pid = self.pid()
        if pid is None:
            return
        while starting and not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.ctl("shutdown")
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)
