"""The batch subscriber's poll (shared/kafka.py: BatchConsumer.next_batch).

FastStream's batch subscriber sleeps `batch_timeout_ms` after every empty poll; a record arriving
during that sleep waited for nothing, once per hop. Our subscriber polls through next_batch,
which returns as soon as anything is fetched and never sleeps."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from aiokafka import TopicPartition
from faststream.kafka.subscriber.usecase import LogicSubscriber

from shared.consumer import RawRecord, Router
from shared.kafka import POLL_TIMEOUT_MS, ArrivalOrder, BatchConsumer, make_broker
from shared.settings import Settings
from shared.topics import IN_INVOICES, IN_RECEIPTS


@dataclass(frozen=True)
class Rec:
    """What ArrivalOrder reads of aiokafka's ConsumerRecord: its Kafka timestamp."""

    name: str
    timestamp: int


P0, P1, P2 = (
    TopicPartition("concord.in.receipts", 0),
    TopicPartition("concord.in.invoices", 0),
    TopicPartition("concord.in.invoices", 1),
)


class Fetcher:
    """Stands for aiokafka's consumer: what it has fetched per partition; getmany drains it as
    aiokafka does — partition after partition, each until it is empty — and takes one partition
    alone when asked for it."""

    def __init__(self, fetched: dict[TopicPartition, list[Rec]]) -> None:
        self.fetched = {tp: list(records) for tp, records in fetched.items()}
        self.assigned = set(fetched)
        self.calls: list[dict[str, Any]] = []
        self.sought = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    sought: list[tuple[TopicPartition, int]]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought.append((tp, offset))

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Rec]]:
        self.calls.append({"partitions": partitions, "timeout_ms": timeout_ms, "max_records": max_records})
        out: dict[TopicPartition, list[Rec]] = {}
        for tp, records in self.fetched.items():
            if (partitions and tp not in partitions) or not records or max_records == 0:
                continue
            out[tp], self.fetched[tp] = records[:max_records], records[max_records:]
            max_records -= len(out[tp])
        return out


def names(batch: tuple[Any, ...]) -> list[str]:
    return [r.name for r in batch]


def _consumer() -> BatchConsumer:
    settings = Settings(service="echo", consumer_batch_max=7)
    router = Router("echo", topics=[IN_RECEIPTS, IN_INVOICES])  # receipts first, as intake lists them
    consumer = BatchConsumer(router, settings, pool_getter=lambda: None)
    consumer.register(make_broker(settings))
    return consumer


def test_the_subscriber_polls_through_next_batch_and_hands_batches_to_consume_batch() -> None:
    consumer = _consumer()
    assert consumer.subscriber.get_msg == consumer.next_batch
    assert consumer.subscriber.consume_one == consumer.consume_batch
    # A FastStream upgrade that stops calling these would bring the sleep back unnoticed.
    loop = inspect.getsource(LogicSubscriber._run_consume_loop)
    assert "self.get_msg(" in loop and "self.consume_one(" in loop


async def test_next_batch_returns_every_partition_s_records_and_an_empty_poll_without_sleeping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_sleep(*_: Any) -> None:
        raise AssertionError("an empty poll must not sleep before the next one")

    monkeypatch.setattr(anyio, "sleep", no_sleep)
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    consumer = _consumer()
    kafka = Fetcher({P1: [Rec("c", 2)], P0: [Rec("a", 1), Rec("b", 3)]})
    # Within one window of arrivals: topic by topic as the router lists them, receipts first.
    assert names(await consumer.next_batch(kafka)) == ["a", "b", "c"]  # type: ignore[arg-type]
    assert await consumer.next_batch(kafka) == ()  # type: ignore[arg-type]
    assert kafka.calls == [{"partitions": (), "timeout_ms": POLL_TIMEOUT_MS, "max_records": 7}] * 2


async def test_behind_a_backlog_no_invoice_is_handed_out_before_the_receipt_sent_ahead_of_it() -> None:
    """aiokafka hands out one partition's fetch whole before the next: behind a backlog, receipts
    sent a second before their invoices were read after them, and matching held the invoices."""
    consumer = _consumer()  # batches of 7
    receipts = [Rec(f"r{i}", 1000 * i) for i in range(10)]
    invoices = [Rec(f"i{i}", 1000 * i + 500) for i in range(10)]
    kafka = Fetcher({P1: invoices, P0: receipts})  # aiokafka would drain the invoices first
    batches = [names(await consumer.next_batch(kafka)) for _ in range(4)]  # type: ignore[arg-type]
    # Window by window (a second of arrivals each), receipts before invoices inside each.
    assert batches[0] == ["r0", "r1", "i0", "r2", "i1", "i2", "r3"]
    handed = [n for b in batches for n in b]
    assert sorted(handed) == sorted(r.name for r in receipts + invoices)  # each once
    assert all(handed.index(f"r{i}") < handed.index(f"i{i}") for i in range(10))
    assert await consumer.next_batch(kafka) == ()  # type: ignore[arg-type]


def test_a_window_keeps_each_partition_s_own_order_whatever_its_timestamps() -> None:
    arrivals = ArrivalOrder({P0.topic: 0, P1.topic: 1})
    # A partition written by two producers whose clocks differ: offsets order it, not timestamps.
    arrivals.add({P0: [Rec("a", 50), Rec("b", 10), Rec("c", 60)], P1: [Rec("x", 20), Rec("y", 55)]})
    assert names(arrivals.take(10, window_ms=5)) == ["x", "a", "b", "y", "c"]


async def test_records_of_a_partition_no_longer_assigned_are_not_handed_out() -> None:
    consumer = _consumer()
    kafka = Fetcher(
        {P0: [Rec(f"r{i}", i) for i in range(10)], P1: [Rec(f"i{i}", 100 + i) for i in range(10)]}
    )
    assert names(await consumer.next_batch(kafka)) == ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]  # type: ignore[arg-type]
    kafka.assigned = {P1}  # a rebalance gave the receipts' partition to another process
    kafka.fetched[P0] = []  # and aiokafka dropped what it had fetched of it
    assert names(await consumer.next_batch(kafka))[:3] == ["i0", "i1", "i2"]  # type: ignore[arg-type]


async def test_a_rewind_forgets_what_was_fetched_after_the_records_sought_back() -> None:
    """The batch failed: its partitions are sought back to its first records, and aiokafka fetches
    from there again — records already buffered behind them must not be handed out twice."""
    consumer = _consumer()
    kafka = Fetcher(
        {P0: [Rec(f"r{i}", 5000 + i) for i in range(12)], P2: [Rec(f"i{i}", i) for i in range(3)]}
    )
    batch = await consumer.next_batch(kafka)  # type: ignore[arg-type]
    assert names(batch) == ["i0", "i1", "i2", "r0", "r1", "r2", "r3"]
    assert consumer._arrivals.holding(P0) == 3  # r4…r6, fetched behind the batch
    failed = [RawRecord(P0.topic, P0.partition, n, None, b"") for n in range(4)]
    consumer._rewind(kafka, failed)  # type: ignore[arg-type]
    assert kafka.sought == [(P0, 0)]
    assert consumer._arrivals.holding(P0) == 0


def test_arrival_order_takes_at_most_its_limit_and_keeps_the_rest() -> None:
    arrivals = ArrivalOrder()
    arrivals.add({P0: [Rec("a", 1), Rec("c", 3)], P1: [Rec("b", 2), Rec("d", 4)]})
    assert names(arrivals.take(3, window_ms=0)) == ["a", "b", "c"]
    assert len(arrivals) == 1 and names(arrivals.take(3)) == ["d"]
    arrivals.add({P0: [Rec("e", 5)], P2: [Rec("f", 0)]})
    arrivals.keep_only({P0})
    assert names(arrivals.take(5)) == ["e"]
