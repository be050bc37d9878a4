"""The outbox relay survives a broker outage (found by the chaos run: after a Kafka restart a
service stayed "not ready" for good — its relay task had died on a Kafka error, so committed
events were never published again until the process was restarted)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from shared.envelope import new_envelope
from shared.outbox import OutboxMessage, OutboxRelay, write_outbox
from tests.support import scratch_pool

pytestmark = pytest.mark.integration


class FlakyProducer:
    """Fails like aiokafka does while the broker is down, then delivers."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.sent: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_relay_keeps_running_through_kafka_errors_and_publishes_everything() -> None:
    async with scratch_pool(None) as pool:
        async with pool.acquire() as conn:
            await write_outbox(
                conn,
                [
                    OutboxMessage("t.topic", "k", new_envelope("x.happened", {"n": n}, source="test"), {})
                    for n in range(3)
                ],
            )
        producer = FlakyProducer([KafkaTimeoutError(), KafkaConnectionError("broker restarting")])
        relay = OutboxRelay("test", pool, producer, poll_interval_s=0.05)  # type: ignore[arg-type]
        task = asyncio.create_task(relay.run())
        try:
            for _ in range(100):
                if await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0:
                    break
                await asyncio.sleep(0.1)
            assert not task.done(), task.exception() if task.done() else None
            assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
            assert len(producer.sent) == 3
        finally:
            await relay.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
