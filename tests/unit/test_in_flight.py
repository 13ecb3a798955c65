"""What the concurrent consumer may commit: per partition, the position after the oldest message not yet
finished, whatever finished behind it."""

from __future__ import annotations

from aiokafka import TopicPartition

from boxoffice.adapters.concurrent_consumer import InFlight

P0, P1 = TopicPartition("payment.requested", 0), TopicPartition("payment.requested", 1)


def test_a_slow_message_holds_its_partition_back_and_not_the_others() -> None:
    offsets = InFlight()
    first, slow, *later = (offsets.take(P0, n) for n in range(10, 16))
    other = offsets.take(P1, 3)

    offsets.finish(first)
    for ticket in later:
        offsets.finish(ticket)
    offsets.finish(other)

    assert offsets.committable() == {P0: 11, P1: 4}
    offsets.committed({P0: 11, P1: 4})
    assert offsets.committable() == {}

    offsets.finish(slow)
    assert offsets.committable() == {P0: 16}


def test_nothing_is_committable_before_the_first_message_finishes() -> None:
    offsets = InFlight()
    first, second = offsets.take(P0, 0), offsets.take(P0, 1)

    offsets.finish(second)

    assert offsets.committable() == {}
    offsets.finish(first)
    assert offsets.committable() == {P0: 2}


def test_a_failed_commit_is_offered_again() -> None:
    offsets = InFlight()
    offsets.finish(offsets.take(P0, 5))
    assert offsets.committable() == {P0: 6}
    assert offsets.committable() == {P0: 6}  # not marked committed: the next commit carries it


def test_a_forgotten_partition_ignores_what_finishes_from_before() -> None:
    """Given up in a rebalance, or rewound after a broker restart: a late finish from before must not move
    the position of the messages taken since, which may carry the same offsets."""
    offsets = InFlight()
    stale = offsets.take(P0, 0)
    offsets.forget([P0])
    fresh = offsets.take(P0, 0)

    offsets.finish(stale)
    assert offsets.committable() == {}
    offsets.finish(fresh)
    assert offsets.committable() == {P0: 1}


def test_what_is_taken_and_not_finished_counts_as_unfinished_until_it_finishes() -> None:
    offsets = InFlight()
    first, slow, last = (offsets.take(P0, n) for n in range(3))
    other = offsets.take(P1, 7)
    assert offsets.unfinished() == 4
    offsets.finish(first)
    offsets.finish(last)  # finished behind the slow one: done, though not yet committable
    assert offsets.unfinished() == 2
    offsets.finish(slow)
    offsets.finish(other)
    assert offsets.unfinished() == 0


def test_a_partition_read_again_from_further_back_counts_only_what_is_taken_since() -> None:
    """The group reset the position to its last commit: the messages taken before are delivered again, and
    those that finish first must not move the position past the ones read again."""
    offsets = InFlight()
    for ticket in [offsets.take(P0, n) for n in range(10, 14)]:
        offsets.finish(ticket)
    again = offsets.take(P0, 8)

    assert offsets.committable() == {}
    offsets.finish(again)
    assert offsets.committable() == {P0: 9}
