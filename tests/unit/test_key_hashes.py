"""The producers' partitioner keeps each key's hash, and must still choose what Kafka's default one chooses:
an event's messages from every client, ours or another's, go to one partition."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from boxoffice.adapters.kafka import KeyHashes


@given(keys=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=30),
       partitions=st.integers(min_value=1, max_value=64))
def test_each_key_goes_where_the_default_partitioner_sends_it_asked_once_or_again(keys: list[bytes],
                                                                                  partitions: int) -> None:
    chosen, default = KeyHashes(), DefaultPartitioner()
    every = list(range(partitions))
    for key in keys + keys:  # the second time from the kept hash
        assert chosen(key, every, every) == default(key, every, every)


def test_a_kept_hash_follows_a_change_in_the_number_of_partitions() -> None:
    chosen, default = KeyHashes(), DefaultPartitioner()
    key = b"0b5e3a52-4d0c-4b8e-9d7e-2f4f6f3c9a11"
    for partitions in (16, 3, 16, 7):
        every = list(range(partitions))
        assert chosen(key, every, every) == default(key, every, every)


def test_when_full_it_forgets_and_still_chooses_the_same(monkeypatch) -> None:
    monkeypatch.setattr(KeyHashes, "MOST", 3)
    chosen, default = KeyHashes(), DefaultPartitioner()
    every = list(range(16))
    for n in range(20):
        key = f"event-{n % 7}".encode()
        assert chosen(key, every, every) == default(key, every, every)
    assert len(chosen) <= 3


def test_a_message_without_a_key_goes_to_an_available_partition() -> None:
    chosen = KeyHashes()
    assert {chosen(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
