"""The outbox relay survives a broker outage (found by the chaos run: after a Kafka restart a
service stayed "not ready" for good — its relay task had died on a Kafka error, so committed
events were never published again until the process was restarted)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
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


# -- rows this process commits are handed to its relay (OutboxRelay.hand_off) -------------------


def message(n: int, key: str = "k") -> OutboxMessage:
    return OutboxMessage("t.topic", key, new_envelope("x.happened", {"n": n}, source="test"), {})


class RecordingProducer:
    """Acknowledges at once; `fail` sends raise, as while the broker is away."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.fail = 0

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> asyncio.Future[None]:
        if self.fail:
            self.fail -= 1
            raise KafkaConnectionError("broker restarting")
        self.sent.append(json.loads(value)["data"]["n"])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class LoggedPool:
    """The relay's pool, recording every statement its connections run."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements: list[str] = []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            conn.add_query_logger(self._logged)
            try:
                yield conn
            finally:
                conn.remove_query_logger(self._logged)

    def _logged(self, query: Any) -> None:
        self.statements.append(query.query)

    def selections(self) -> int:
        return sum("WHERE published_at IS NULL ORDER BY id" in s for s in self.statements)


async def commit(pool: asyncpg.Pool, relay: OutboxRelay | None, *messages: OutboxMessage) -> None:
    """As the consumer does: written with handed_off=True, handed to the relay after the commit
    (relay None: the process died between the two)."""
    async with pool.acquire() as conn, conn.transaction():
        await write_outbox(conn, list(messages), handed_off=True)
    if relay is not None:
        relay.hand_off(list(messages))


async def unpublished(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def eventually(check: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def leading(relay: OutboxRelay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _true(relay.is_leader))
        yield task
    finally:
        await relay.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def _true(value: bool) -> bool:
    return value


async def test_rows_handed_off_are_sent_without_being_selected_and_marked_together() -> None:
    async with scratch_pool(None) as pool:
        logged = LoggedPool(pool)
        producer = RecordingProducer()
        relay = OutboxRelay("test", logged, producer, poll_interval_s=120, mark_interval_s=2.0)  # type: ignore[arg-type]
        async with leading(relay):
            await eventually(lambda: _true(relay.caught_up))
            selections = logged.selections()
            for n in range(3):  # three batches, one after the other
                await commit(pool, relay, message(n))
                await eventually(lambda n=n: _true(len(producer.sent) == n + 1))
            assert producer.sent == [0, 1, 2]
            assert logged.selections() == selections, "a handed-off row was selected again"
            # Marked published a moment later, the three in one statement.
            await eventually(lambda: _is(unpublished(pool), 0))
            marks = [s for s in logged.statements if s.lstrip().startswith("UPDATE outbox")]
            assert len(marks) == 1, marks


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_a_row_another_process_commits_is_selected_at_once() -> None:
    async with scratch_pool(None) as pool:
        producer = RecordingProducer()
        relay = OutboxRelay("test", pool, producer, poll_interval_s=120)  # type: ignore[arg-type]
        async with leading(relay):
            await eventually(lambda: _true(relay.caught_up))
            async with pool.acquire() as conn:
                await write_outbox(conn, [message(7)])  # another process: its NOTIFY names no hand-off
            await eventually(lambda: _is(unpublished(pool), 0), timeout_s=5)
            assert producer.sent == [7]


async def test_a_row_committed_but_never_handed_off_is_published_at_the_next_poll() -> None:
    # The process that committed it died before the hand-off: its NOTIFY said "handed off", so
    # only the poll finds it (in the real case the relay that finds it is another process's).
    async with scratch_pool(None) as pool:
        producer = RecordingProducer()
        relay = OutboxRelay("test", pool, producer, poll_interval_s=0.5)  # type: ignore[arg-type]
        async with leading(relay):
            await eventually(lambda: _true(relay.caught_up))
            await commit(pool, None, message(1))
            await eventually(lambda: _is(unpublished(pool), 0), timeout_s=5)
            assert producer.sent == [1]


async def test_after_a_failed_send_nothing_handed_off_overtakes_the_rows_left_in_the_table() -> None:
    # Row 1's send fails (the broker restarts); rows 2 and 3 of the same key are committed and
    # handed off while the relay recovers. Sent from memory first, they would reach the topic
    # ahead of row 1: the relay selects instead, in id order, and sends each row once.
    async with scratch_pool(None) as pool:
        producer = RecordingProducer()
        relay = OutboxRelay("test", pool, producer, poll_interval_s=120)  # type: ignore[arg-type]
        async with leading(relay):
            await eventually(lambda: _true(relay.caught_up))
            producer.fail = 1
            await commit(pool, relay, message(1))
            await eventually(lambda: _true(not relay.is_leader))  # the failed send ended its lead
            await commit(pool, relay, message(2))
            await commit(pool, relay, message(3))
            await eventually(lambda: _is(unpublished(pool), 0))
            assert producer.sent == [1, 2, 3]
