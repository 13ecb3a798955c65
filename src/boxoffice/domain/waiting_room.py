"""The waiting room in front of an on-sale (CONTRACT §8.1): places, the opening's draw, metered admission.

Those who join before the opening wait in a pre-queue without a place; at the opening they are given the
first places in a uniformly random order (drawn with the random source the caller passes: a cryptographic
one in the service), and whoever joins later is placed behind them in the order their joins arrive. The
serving position then advances at `admit_per_minute`, never faster: it is metered from a base (a position
and a moment) that is moved whenever the rate changes or nobody is left waiting, so unused time is not
saved up for a burst later. With `"auto"` it advances as far as keeps the admitted visitors who have not
finished under a ceiling. A visitor's status follows from two numbers, their position and the serving one.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from boxoffice.domain.moments import to_milliseconds

MAX_ADMIT_PER_MINUTE = 1_000_000
MAX_ADMISSION_MINUTES = 24 * 60
AUTO: Literal["auto"] = "auto"
AdmitRate = int | Literal["auto"]  # admissions a minute, or as fast as the booking side takes them
DEFAULT_ACTIVE_CEILING = 500


@dataclass(frozen=True)
class OnSale:
    """An organiser's on-sale settings for an event."""

    opens_at: datetime
    waiting_room: bool = True
    admit_per_minute: AdmitRate = 600
    admission_minutes: int = 10

    def __post_init__(self) -> None:
        # Kept at the precision GET /events shows, so that the opening read back is the opening stored.
        object.__setattr__(self, "opens_at", to_milliseconds(self.opens_at))

    def opens_before(self, starts_at: datetime) -> bool:
        """Whether the sale opens before the event starts (at the precision the API shows): an opening at or
        after the start sells nothing."""
        return self.opens_at < to_milliseconds(starts_at)

    def moves_opening(self, opens_at: datetime, opened: bool) -> bool:
        """Whether these settings would move an opening (`opens_at`) that can no longer move: the sale has
        opened (`sale_opened`). Compared at the precision the API shows, so a room stored finer (by an older
        release) still takes its opening as read back."""
        return opened and to_milliseconds(opens_at) != self.opens_at


def first_opening(on_sale: OnSale, seats_held: bool, now: datetime) -> OnSale:
    """An event's first on-sale. Without one the event has sold since it was created: while buyers hold seats in
    it, an opening later than now would close that sale, so the sale opens now instead."""
    if seats_held and on_sale.opens_at > now:
        return replace(on_sale, opens_at=now)
    return on_sale


def sale_opened(opens_at: datetime, waiting_room: bool, room_opened: bool, now: datetime) -> bool:
    """Whether an on-sale's sale has opened, after which its opening no longer moves: its waiting room has
    opened or, without a waiting room, its opening time has come (holds are taken from then on; moving the
    opening later would close a sale that buyers already bought in)."""
    return room_opened or (not waiting_room and now >= opens_at)


@dataclass
class WaitingRoom:
    event_id: str
    opens_at: datetime
    admit_per_minute: AdmitRate
    admission_minutes: int
    enabled: bool = True
    opened_at: datetime | None = None
    joined: int = 0  # joins so far, in Kafka order: the next one's join_seq is joined + 1
    last_position: int = 0  # the queue's end
    serving_position: int = 0  # every position up to this one is admitted
    metered_from_position: int = 0
    metered_from: datetime | None = None
    pre_queue_size: int | None = None
    shuffle_digest: str | None = None

    @property
    def opened(self) -> bool:
        return self.opened_at is not None

    @property
    def waiting(self) -> int:
        """Visitors not yet admitted, with or without a place."""
        return self.joined - self.serving_position

    def join(self, now: datetime) -> tuple[int, int | None]:
        """A new visitor's (join_seq, position): no position before the opening."""
        self.joined += 1
        if not self.opened:
            return self.joined, None
        if self.serving_position >= self.last_position:
            # The first to wait after a lull: metering starts from now, not from when the queue emptied.
            self.metered_from_position, self.metered_from = self.serving_position, now
        self.last_position += 1
        return self.joined, self.last_position

    def sale_opened(self, now: datetime) -> bool:
        return sale_opened(self.opens_at, self.enabled, self.opened, now)

    def due_to_open(self, now: datetime) -> bool:
        return self.enabled and not self.opened and now >= self.opens_at

    def open(self, pre_queue: list[int], now: datetime, rng: random.Random) -> dict[int, int]:
        """The pre-queue's places (join_seq → position): a uniformly random order of positions 1..N."""
        if self.opened:
            raise ValueError(f"the waiting room of {self.event_id} is open already")
        order = sorted(pre_queue)
        rng.shuffle(order)  # Fisher-Yates: every order equally likely with a uniform source
        places = {seq: self.last_position + i + 1 for i, seq in enumerate(order)}
        self.last_position += len(order)
        self.opened_at = now
        self.pre_queue_size = len(order)
        self.shuffle_digest = permutation_digest(order)
        self.metered_from_position, self.metered_from = self.serving_position, now
        return places

    @property
    def auto(self) -> bool:
        return self.admit_per_minute == AUTO

    def admit(self, now: datetime, active: int = 0,
              ceiling: int = DEFAULT_ACTIVE_CEILING) -> tuple[int, int] | None:
        """Moves the serving position as far as the rate allows by `now` (with "auto": as far as keeps the
        `active` admitted visitors who have not finished within `ceiling`); the positions admitted, if any."""
        if not self.enabled or not self.opened:
            return None
        if self.metered_from is None:
            self.metered_from_position, self.metered_from = self.serving_position, now
        if isinstance(self.admit_per_minute, int):
            elapsed = max(0.0, (now - self.metered_from).total_seconds())
            allowed = self.metered_from_position + math.floor(elapsed * self.admit_per_minute / 60 + 1e-9)
            target = min(self.last_position, allowed)
        else:
            target = auto_admission_target(self.serving_position, self.last_position, active, ceiling)
        admitted = None
        if target > self.serving_position:
            admitted = (self.serving_position + 1, target)
            self.serving_position = target
        if self.serving_position >= self.last_position:
            # Nobody waits: time passing now must not let a crowd arriving later in all at once.
            self.metered_from_position, self.metered_from = self.serving_position, now
        return admitted

    def change(self, on_sale: OnSale, now: datetime) -> None:
        """New on-sale settings. The rate applies from now (what the old rate allowed so far is admitted
        first, by the caller's `admit`); the opening time can no longer move once the sale has opened."""
        if not self.sale_opened(now):
            self.opens_at = on_sale.opens_at
        self.enabled = on_sale.waiting_room
        self.admission_minutes = on_sale.admission_minutes
        if on_sale.admit_per_minute != self.admit_per_minute:
            self.admit_per_minute = on_sale.admit_per_minute
            self.metered_from_position, self.metered_from = self.serving_position, now

    def next_admission_at(self) -> datetime | None:
        """When the next position is due, if anyone waits with a place (with "auto": unknown, None)."""
        if not self.enabled or not self.opened or self.serving_position >= self.last_position \
                or self.metered_from is None or not isinstance(self.admit_per_minute, int):
            return None
        due = self.serving_position + 1 - self.metered_from_position
        return self.metered_from + timedelta(seconds=due * 60 / self.admit_per_minute)


def auto_admission_target(serving_position: int, last_position: int, active: int, ceiling: int) -> int:
    """The serving position "auto" moves to: in order, as far as the queue goes, and no further than keeps the
    admitted visitors who have not finished (`active`) within `ceiling`; never back."""
    room_for = max(0, ceiling - active)
    return max(serving_position, min(last_position, serving_position + room_for))


def permutation_digest(join_seqs_in_order: list[int]) -> str:
    """SHA-256 of the drawn order (join sequence numbers, first place first), kept for audits."""
    return hashlib.sha256(",".join(map(str, join_seqs_in_order)).encode()).hexdigest()


@dataclass(frozen=True)
class Serving:
    """An event's figures a visitor's status is derived from."""

    serving_position: int
    admit_per_minute: AdmitRate
    admission_minutes: int
    opens_at: datetime
    opened: bool
    admitted_last_minute: int = 0  # what "auto" estimates the wait from

    @property
    def rate(self) -> int:
        """Admissions a minute: the set rate, or with "auto" the rate of the last minute."""
        return self.admit_per_minute if isinstance(self.admit_per_minute, int) else self.admitted_last_minute


@dataclass(frozen=True)
class VisitorStatus:
    status: str  # "waiting" | "admitted" | "expired"
    position: int | None
    ahead: int | None
    serving_position: int
    estimated_wait_seconds: int | None
    admitted_at: datetime | None = None
    admitted_until: datetime | None = None


def visitor_status(position: int | None, serving: Serving, admitted_at: datetime | None,
                   now: datetime) -> VisitorStatus:
    """A visitor's status from their position and the event's serving position; `admitted_at` is when the
    serving position passed theirs (needed once it has)."""
    if position is None:
        until_opening = max(0, math.ceil((serving.opens_at - now).total_seconds()))
        return VisitorStatus("waiting", None, None, serving.serving_position, until_opening)
    if position <= serving.serving_position:
        at = admitted_at or now
        until = at + timedelta(minutes=serving.admission_minutes)
        status = "expired" if now >= until else "admitted"
        return VisitorStatus(status, position, 0, serving.serving_position, 0, at, until)
    ahead = position - serving.serving_position - 1
    if serving.rate <= 0:
        # "auto" with nobody admitted in the last minute: nothing to estimate from.
        return VisitorStatus("waiting", position, ahead, serving.serving_position, None)
    wait = math.ceil((ahead + 1) * 60 / serving.rate)
    if not serving.opened:
        wait += max(0, math.ceil((serving.opens_at - now).total_seconds()))
    return VisitorStatus("waiting", position, ahead, serving.serving_position, wait)
