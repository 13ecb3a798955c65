"""The same kind of crowd as `bench holds`' own client, and the same payments as `bench lifecycle`'s, sent by wrk
(Debian's load generator, in C, with a Lua script): the figures then do not depend on what our Python client
costs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Each wrk thread has its own Lua state: it counts its answers, and `done` reports the threads' counts added up,
# then the run's timeouts, latency p50 and p99 and duration (µs), on one line after the script's tag.
_THREADS = r"""
local threads = {}
local count = 0

function setup(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end

function report(tag, summary, latency, ...)
  local line = {tag}
  for _, name in ipairs({...}) do
    local sum = 0
    for _, thread in ipairs(threads) do sum = sum + thread:get(name) end
    table.insert(line, string.format("%d", sum))
  end
  for _, value in ipairs({summary.errors.timeout, latency:percentile(50), latency:percentile(99),
                          summary.duration}) do
    table.insert(line, string.format("%d", value))
  end
  io.write(table.concat(line, " ") .. "\n")
end
"""

SCRIPT = _THREADS + r"""
function init(args)
  event_id, per_row, max_seats = args[1], tonumber(args[3]), tonumber(args[4])
  rows = {}
  for label in string.gmatch(args[2], "[^,]+") do table.insert(rows, label) end
  math.randomseed(tonumber(args[5]) * 1000 + id)
  created, refused, other, sent = 0, 0, 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  -- Popular rows near the front get more requests, as in the Python crowd.
  local row = rows[math.min(#rows, 1 + math.floor(-math.log(1 - math.random()) * #rows / 3))]
  local n = math.random(max_seats)
  local first = math.random(per_row - n + 1)
  local seats = {}
  for number = first, first + n - 1 do table.insert(seats, '"' .. row .. number .. '"') end
  sent = sent + 1
  local body = '{"eventId":"' .. event_id .. '","seatIds":[' .. table.concat(seats, ",") ..
               '],"userId":"wrk_' .. id .. '_' .. sent .. '"}'
  return wrk.format(nil, "/bookings", nil, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 409 then refused = refused + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  report("WRK-RESULT", summary, latency, "created", "refused", "other")
end
"""

# Each thread pays its share of the holds listed in a file ("bookingId amount" a line), each once; a thread that
# has paid all of its share asks for /health instead, which is not counted.
PAY_SCRIPT = _THREADS + r"""
function init(args)
  local path, share = args[1], tonumber(args[2])
  mine, line_no, next_one = {}, 0, 1
  for line in io.lines(path) do
    if line_no % share == id - 1 then table.insert(mine, line) end
    line_no = line_no + 1
  end
  paid, other, ran_out = 0, 0, 0
  -- wrk calls the first thread's request() once before the run, to check it, and sends nothing of it.
  checked = id ~= 1
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  if not checked then
    checked = true
    return wrk.format("GET", "/health")
  end
  local line = mine[next_one]
  if line == nil then
    ran_out = 1
    return wrk.format("GET", "/health")
  end
  next_one = next_one + 1
  local booking, amount = line:match("^(%S+) (%S+)$")
  local body = '{"paymentId":"wrk_' .. booking:sub(1, 12) .. '","amount":' .. amount ..
               ',"card":"4242424242424242"}'
  return wrk.format("PUT", "/bookings/" .. booking .. "/confirm", nil, body)
end

function response(status, headers, body)
  if not body:find('"bookingId"', 1, true) then return end
  if status == 200 then paid = paid + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  report("WRK-PAID", summary, latency, "paid", "other", "ran_out")
end
"""
WRK_THREADS = 2



@dataclass(frozen=True)
class WrkRun:
    created: int
    refused: int
    other: int  # any other status, or a socket error wrk counted as an answer
    timeouts: int
    p50_ms: float
    p99_ms: float
    seconds: float

    @property
    def decided(self) -> int:
        return self.created + self.refused


def ensure_wrk(say: object = print) -> str | None:
    """The wrk binary, installed from Debian's packages when missing and the machine allows it; None if not."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        return None
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        return None
    say("wrk is not installed: installing Debian's package (apt-get install wrk)")  # type: ignore[operator]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([*sudo, apt, "install", "-y", "-qq", "wrk"], [*sudo, apt, "update", "-qq"],
                    [*sudo, apt, "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(command, env=env, capture_output=True, check=False, timeout=600)
        if done.returncode == 0 and shutil.which("wrk"):
            break
    return shutil.which("wrk")


def wrk_or_skip(say: object) -> str | None:
    """ensure_wrk, saying that a bench's wrk run is skipped when there is no wrk."""
    wrk = ensure_wrk(say)
    if wrk is None:
        say("[yellow]wrk is not installed and could not be (apt-get install wrk): its run is skipped[/]")  # type: ignore[operator]
    return wrk


@dataclass(frozen=True)
class WrkPayments:
    paid: int  # answered 200
    other: int  # any other status, or a socket error wrk counted as an answer
    timeouts: int
    p50_ms: float
    p99_ms: float
    seconds: float
    ran_out: bool  # a thread paid all of its share before the time was up: the rate is a floor


def run_wrk(wrk: str, base_url: str, event_id: str, rows: list[str], per_row: int, max_seats: int,
            connections: int, seconds: float, seed: int) -> WrkRun:
    created, refused, other, timeouts, p50_us, p99_us, duration_us = _run(
        wrk, "WRK-RESULT", SCRIPT, base_url, connections, seconds,
        [event_id, ",".join(rows), str(per_row), str(max_seats), str(seed)])
    return WrkRun(created, refused, other, timeouts, p50_us / 1000, p99_us / 1000, duration_us / 1e6)


def run_wrk_payments(wrk: str, base_url: str, bookings: list[tuple[str, str]], connections: int,
                     seconds: float) -> WrkPayments:
    """Pays each (booking id, amount) at most once, for `seconds`, from `connections` connections."""
    listed = "".join(f"{booking} {amount}\n" for booking, amount in bookings)
    paid, other, ran_out, timeouts, p50_us, p99_us, duration_us = _run(
        wrk, "WRK-PAID", PAY_SCRIPT, base_url, connections, seconds, [str(WRK_THREADS)], listed)
    return WrkPayments(paid, other, timeouts, p50_us / 1000, p99_us / 1000, duration_us / 1e6, bool(ran_out))


def _run(wrk: str, tag: str, script: str, base_url: str, connections: int, seconds: float, args: list[str],
         listed: str | None = None) -> list[int]:
    """The numbers of the script's report line. `listed` goes to a file, whose path is the script's first argument."""
    with tempfile.TemporaryDirectory(prefix="boxoffice-wrk-") as scratch:
        script_path, listed_path = Path(scratch) / "load.lua", Path(scratch) / "listed.txt"
        script_path.write_text(script)
        if listed is not None:
            listed_path.write_text(listed)
            args = [str(listed_path), *args]
        done = subprocess.run(
            [wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
             "-s", str(script_path), base_url, "--", *args],
            capture_output=True, text=True, check=False, timeout=seconds + 120)
    found = re.search(rf"^{tag}((?: \d+)+)$", done.stdout, re.M)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
    return [int(n) for n in found.group(1).split()]
