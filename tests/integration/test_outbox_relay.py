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


class LateAckProducer:
    """Records the order of sends; a send to `slow_topic` fails once, as a broker failover does
    after the record left the client, and is only acknowledged some time after it was sent."""

    def __init__(self, slow_topic: str) -> None:
        self.slow_topic = slow_topic
        self.sent: list[str] = []
        self.failed_once = False

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if topic == self.slow_topic and not self.failed_once:
            self.failed_once = True
            loop.call_later(0.05, done.set_exception, KafkaTimeoutError())
            return done
        self.sent.append(topic)
        loop.call_later(0.05 if topic == self.slow_topic else 0.0, done.set_result, None)
        return done


async def test_supplier_statuses_reach_the_broker_before_the_events_that_cause_the_next_status() -> None:
    # SPEC §12.3: AB before UQ before AP before PD. Intake writes AB and invoice.accepted in one
    # transaction; if invoice.accepted landed first (AB's send failing and retried), matching
    # could publish UQ/AP before the AB the supplier must see first (the chaos run saw AP → AB).
    responses, documents = "t.concord.out.invoice-responses", "t.concord.intake.documents"
    async with scratch_pool(None) as pool:
        async with pool.acquire() as conn:
            await write_outbox(
                conn,
                [
                    OutboxMessage(documents, "k", new_envelope("po.seen", {}, source="test"), {}),
                    OutboxMessage(
                        responses, "inv", new_envelope("invoice_response.issued", {}, source="test"), {}
                    ),
                    OutboxMessage(documents, "k", new_envelope("invoice.accepted", {}, source="test"), {}),
                ],
            )
        producer = LateAckProducer(responses)
        relay = OutboxRelay("test", pool, producer, poll_interval_s=0.05)  # type: ignore[arg-type]
        task = asyncio.create_task(relay.run())
        try:
            for _ in range(100):
                if await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0:
                    break
                await asyncio.sleep(0.1)
            assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
        finally:
            await relay.stop()
            task.cancel()
    assert producer.failed_once
    # The failed first attempt sent nothing else; the retry acknowledged the status first.
    assert producer.sent == [responses, documents, documents]


class GatedProducer:
    """Acknowledges nothing until `gate` opens (a slow broker); says when the first send happened."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.gate = asyncio.Event()
        self.sending = asyncio.Event()
        self._acks: set[asyncio.Task[None]] = set()

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        self.sent.append(value)
        self.sending.set()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def ack() -> None:
            await self.gate.wait()
            done.set_result(None)

        task = asyncio.create_task(ack())
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)
        return done


async def test_a_commit_while_the_relay_is_sending_is_published_without_waiting_for_the_poll() -> None:
    # A row committed while the relay waits for the broker's acks is not in the batch being sent.
    # Its NOTIFY arrives during that send; the relay used to clear that wake-up after the send and
    # sleep a whole poll interval (0.2 s by default) before publishing the row.
    def row(n: int) -> OutboxMessage:
        return OutboxMessage("t.topic", "k", new_envelope("x.happened", {"n": n}, source="test"), {})

    async with scratch_pool(None) as pool:
        async with pool.acquire() as conn:
            await write_outbox(conn, [row(1)])
        producer = GatedProducer()
        # A poll interval longer than the test's patience: only the wake-up can publish row 2 in time.
        relay = OutboxRelay("test", pool, producer, poll_interval_s=120)  # type: ignore[arg-type]
        task = asyncio.create_task(relay.run())
        try:
            await asyncio.wait_for(producer.sending.wait(), 30)
            async with pool.acquire() as conn:
                await write_outbox(conn, [row(2)])  # commits, and NOTIFYs the relay
            await asyncio.sleep(0.5)  # the notification reaches the relay while row 1 is in flight
            producer.gate.set()
            for _ in range(100):
                if await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0:
                    break
                await asyncio.sleep(0.1)
            assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0, (
                "the row committed during the send waited for the poll interval"
            )
            assert len(producer.sent) == 2
        finally:
            await relay.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
