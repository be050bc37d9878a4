"""The batch subscriber's poll (shared/kafka.py: BatchConsumer.next_batch).

FastStream's batch subscriber sleeps `batch_timeout_ms` after every empty poll; a record arriving
during that sleep waited for nothing, once per hop. Our subscriber polls through next_batch,
which returns as soon as anything is fetched and never sleeps."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import anyio
import pytest
from faststream.kafka.subscriber.usecase import LogicSubscriber

from shared.consumer import Router
from shared.kafka import POLL_TIMEOUT_MS, BatchConsumer, make_broker
from shared.settings import Settings
from shared.topics import IN_INVOICES


class FetchedOnce:
    """Stands for aiokafka's consumer: one getmany's result, then nothing."""

    def __init__(self, fetched: dict[Any, list[str]]) -> None:
        self.fetched = fetched
        self.calls: list[dict[str, Any]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[str]]:
        self.calls.append({"timeout_ms": timeout_ms, "max_records": max_records})
        fetched, self.fetched = self.fetched, {}
        return fetched


def _consumer() -> BatchConsumer:
    settings = Settings(service="echo", consumer_batch_max=7)
    consumer = BatchConsumer(Router("echo", topics=[IN_INVOICES]), settings, pool_getter=lambda: None)
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
    kafka = FetchedOnce({"p0": ["a", "b"], "p1": ["c"]})
    assert await consumer.next_batch(kafka) == ("a", "b", "c")  # type: ignore[arg-type]
    assert await consumer.next_batch(kafka) == ()  # type: ignore[arg-type]
    assert kafka.calls == [{"timeout_ms": POLL_TIMEOUT_MS, "max_records": 7}] * 2
