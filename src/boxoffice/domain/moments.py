"""Which times the platform takes for an event's start and an on-sale's opening.

Far outside this range a time is a mistake or an attack, and at the ends of Python's calendar PostgreSQL and
Python disagree: 0001-01-01T00:00Z is stored as -infinity and read back without a time zone, and a time that
a UTC offset moves past year 1 or 9999 cannot be converted at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "must be from 2000-01-01 to 2099-12-31 (UTC)"


def parse(text: str) -> datetime:
    """An ISO-8601 time with a time zone, in the range the platform takes; ValueError says what is wrong."""
    try:
        moment = from_iso(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not an ISO-8601 date and time") from None
    if moment.tzinfo is None:
        raise ValueError("give a time zone (e.g. Z)")
    if not supported(moment):
        raise ValueError(OUT_OF_RANGE)
    return moment


def from_iso(text: str) -> datetime:
    """`datetime.fromisoformat`, without what Python 3.11 lets through: any character as the date's separator
    and a NUL before the zone (`2027-01-01é10:00:00\\x00+00:00` is read as 10:00 UTC)."""
    if not (text.isascii() and text.isprintable()):
        raise ValueError("an ISO-8601 time is printable ASCII")
    return datetime.fromisoformat(text)


def to_milliseconds(moment: datetime) -> datetime:
    """The moment at the precision the API shows (ISO-8601 with milliseconds): what is kept and compared is what
    a caller can read back and send again."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def supported(moment: datetime) -> bool:
    """A time with a time zone, in the range the platform takes."""
    return moment.tzinfo is not None and EARLIEST <= moment < LATEST
