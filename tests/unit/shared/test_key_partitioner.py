"""The relay's partitioner remembers each key's hash; it must place every record exactly where
aiokafka's DefaultPartitioner (the Java client's murmur2) does, or a key's records would split
across partitions between producers and per-key order would be lost."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.outbox import key_partitioner

_default = DefaultPartitioner()


@settings(max_examples=500)
@given(key=st.binary(max_size=80), n=st.integers(min_value=1, max_value=64))
def test_same_partition_as_the_default_partitioner(key: bytes, n: int) -> None:
    partitions = list(range(n))
    expected = _default(key, partitions, partitions)
    assert key_partitioner(key, partitions, partitions) == expected
    # Asked again (the remembered hash), and after the topic grew: still the default's choice.
    assert key_partitioner(key, partitions, partitions) == expected
    grown = list(range(n + 3))
    assert key_partitioner(key, grown, grown) == _default(key, grown, grown)


def test_known_placements_of_the_java_client() -> None:
    # Kafka's own test vectors for murmur2 (Utils.murmur2), through the partition formula.
    for key, hash_ in (
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
    ):
        assert key_partitioner(key, list(range(1000)), []) == (hash_ & 0x7FFFFFFF) % 1000


def test_no_key_goes_to_an_available_partition() -> None:
    for _ in range(50):
        assert key_partitioner(None, [0, 1, 2, 3], [2]) == 2
