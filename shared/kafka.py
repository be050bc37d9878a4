"""FastStream wiring: one batch subscriber per service, with at-least-once done by hand.

FastStream's default ack policy commits before the handler runs, and its ACK policy commits even
when the handler raises (../notes: both lose records). Here the subscriber runs with MANUAL acks:
after the batch's transaction commits we commit exactly the offsets we processed, per partition;
when the transaction cannot be committed we seek every partition of the batch back to its first
record.

FastStream's own batch parser decodes every header of every record as UTF-8 before any of our
code runs: one `traceparent` holding the byte 0xff raised there, and the whole fetched batch was
dropped without a trace (SPEC §15). The subscriber therefore gets a parser that decodes nothing
(`_undecoded_batch`); keys, headers and values are decoded per record by BatchProcessor.parse,
where a record that cannot be read is deadlettered on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import FAKE_CONSUMER
from faststream.middlewares import AckPolicy

from shared.acl import consumer_group
from shared.consumer import BatchProcessor, BatchResult, RawRecord, Router, retry_later
from shared.kafka_auth import client_options, faststream_security
from shared.metrics import BATCH_SIZE, CONSUMER_LAG, HANDLER_FAILURES, HANDLER_LATENCY
from shared.settings import Settings
from shared.topics import DEADLETTER

log = structlog.get_logger(__name__)

MAX_RECORD_BYTES = 4 * 1024 * 1024  # > the 1 MiB documents intake must see in order to refuse them
# How long one poll of the batch subscriber waits for a first record. aiokafka's getmany returns as
# soon as any record has been fetched, so this bounds only an idle loop's turns (BatchConsumer.next_batch).
POLL_TIMEOUT_MS = 500


def make_broker(settings: Settings) -> KafkaBroker:
    quiet = logging.getLogger("faststream.concord")
    quiet.setLevel(logging.WARNING)
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=faststream_security(settings),
        logger=quiet,
        client_id=f"concord-{settings.service}",
    )


async def _raw_decoder(*_: Any) -> None:
    # Records are parsed by BatchProcessor: a body FastStream cannot decode must reach us, not fail earlier.
    return None


async def _undecoded_batch(records: tuple[ConsumerRecord[Any, Any], ...]) -> KafkaMessage:
    """The batch as FastStream's message, with nothing decoded: this cannot raise for any bytes."""
    first = records[0] if records else None
    return KafkaMessage(
        raw_message=records,
        body=[],
        headers={},
        batch_headers=[],
        message_id=f"{first.topic}-{first.partition}-{first.offset}" if first else None,
        consumer=FAKE_CONSUMER,  # offsets are committed by BatchConsumer on the subscriber's consumer
    )


def to_raw(record: ConsumerRecord[Any, Any]) -> RawRecord:
    return RawRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=tuple(record.headers or ()),
    )


def make_deadletter_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A group-less reader of concord.deadletter (the one Kafka consumer a service makes besides
    its FastStream subscriber): it serves `deadletter.replay_requested` (SPEC §11)."""
    return AIOKafkaConsumer(
        **client_options(settings),  # as the service's own principal: every service reads the deadletter
        client_id=f"concord-{settings.service}-deadletter-reader",
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_RECORD_BYTES * 2,  # an entry holds a record in base64
        fetch_max_bytes=MAX_RECORD_BYTES * 4,
    )


class DeadletterReader:
    """Reads one entry of concord.deadletter (one partition) by its offset, as a dict, or None
    when there is no readable entry there. Started on first use, kept for the next one."""

    def __init__(self, settings: Settings, *, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, offset: int) -> dict[str, Any] | None:
        tp = TopicPartition(self.settings.topic(DEADLETTER), 0)
        async with self._lock:
            consumer = await self._started(tp)
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            if not first <= offset < end:
                return None
            consumer.seek(tp, offset)
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                fetched = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                for record in fetched.get(tp, []):
                    if record.offset != offset or record.value is None:
                        return None
                    try:
                        entry = json.loads(record.value)
                    except ValueError:
                        return None
                    return entry if isinstance(entry, dict) else None
            return None

    async def _started(self, tp: TopicPartition) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = make_deadletter_consumer(self.settings)
            await consumer.start()
            consumer.assign([tp])
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None


# How far apart in time the records of one window of a batch may be (ArrivalOrder.take).
ARRIVAL_WINDOW_MS = 1000


class ArrivalOrder:
    """Fetched records not yet handed to a batch, per partition, handed out in windows of arrival
    time across all partitions: the oldest record fetched and everything produced within
    ARRIVAL_WINDOW_MS after it, then the next window. Inside a window the records go topic by
    topic in the order the router lists its topics (upstream documents first: POs before receipts
    before invoices), so a batch holds a few long runs of one handler (BatchProcessor's runs);
    each partition's own order is always kept.

    aiokafka's getmany drains its fetched partitions one after the other, each until it is empty:
    behind a backlog one partition's fetch (up to MAX_RECORD_BYTES, thousands of records) went
    out whole, batch after batch, before the next partition's. A service then read one topic
    seconds ahead of another: under `make bench`'s saturating load intake accepted invoices
    before the receipts sent a second earlier, and matching held them until those came — 15% to
    48% of the throughput window's flows took that hold-and-release path, each a spurious hold an
    AP clerk would see opened and released. Strict arrival order instead (record by record across
    topics) cut the holds to none but made every run one record long: PostgreSQL's CPU per flow
    doubled. Order across topics is still not promised (SPEC §1 rule 4); this only stops a service
    from making it worse than it arrived."""

    def __init__(self, rank: Mapping[str, int] | None = None) -> None:
        self._queues: dict[TopicPartition, deque[ConsumerRecord[Any, Any]]] = {}
        self._rank = rank or {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def holding(self, tp: TopicPartition) -> int:
        queue = self._queues.get(tp)
        return len(queue) if queue else 0

    def add(self, fetched: Mapping[TopicPartition, Iterable[ConsumerRecord[Any, Any]]]) -> None:
        for tp, records in fetched.items():
            self._queues.setdefault(tp, deque()).extend(records)

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget these partitions' records (sought back: they will be fetched again)."""
        for tp in partitions:
            self._queues.pop(tp, None)

    def keep_only(self, assigned: Collection[TopicPartition]) -> None:
        """Forget the records of partitions no longer assigned (their new owner reads them)."""
        for tp in [tp for tp in self._queues if tp not in assigned]:
            del self._queues[tp]

    def take(self, limit: int, window_ms: int = ARRIVAL_WINDOW_MS) -> tuple[ConsumerRecord[Any, Any], ...]:
        """Up to `limit` records, window after window (see the class)."""
        waiting = [tp for tp, q in self._queues.items() if q]
        if len(waiting) == 1:  # one partition (light load, mostly): its records as they are
            queue = self._queues[waiting[0]]
            return tuple(queue.popleft() for _ in range(min(limit, len(queue))))
        unranked = len(self._rank)
        waiting.sort(key=lambda tp: (self._rank.get(tp.topic, unranked), tp.topic, tp.partition))
        taken: list[ConsumerRecord[Any, Any]] = []
        while waiting and len(taken) < limit:
            cutoff = min(self._queues[tp][0].timestamp for tp in waiting) + window_ms
            for tp in waiting:
                queue = self._queues[tp]
                while queue and queue[0].timestamp <= cutoff and len(taken) < limit:
                    taken.append(queue.popleft())
            waiting = [tp for tp in waiting if self._queues[tp]]
        return tuple(taken)


class BatchConsumer:
    """Consumes one batch at a time: parse → one transaction → commit offsets, or rewind and back off."""

    def __init__(
        self, router: Router, settings: Settings, pool_getter: Any, on_committed: Any = None
    ) -> None:
        self.router = router
        self.settings = settings
        self.processor = BatchProcessor(router, settings)
        self.deadletter_reader = DeadletterReader(settings)
        self.processor.deadletter_reader = self.deadletter_reader
        self._pool_getter = pool_getter  # the pool exists only after start-up
        self._on_committed = on_committed
        self._failures_in_row = 0
        self.batches = 0
        self.subscriber: Any = None  # FastStream's batch subscriber, once registered
        self._committing: asyncio.Task[None] | None = None  # commits the pending offsets
        self._pending_offsets: dict[TopicPartition, int] = {}  # committed in PostgreSQL, not yet in Kafka
        self._flushing = asyncio.Event()  # set: commit the pending offsets without waiting
        # Fetched, not yet in a batch; windows go topic by topic in the router's order.
        self._arrivals = ArrivalOrder({settings.topic(t): n for n, t in enumerate(router.topics)})
        # The metrics' children for this service, made once: `labels()` takes a lock and builds a
        # tuple (~2 µs), several times a batch.
        self._latency = HANDLER_LATENCY.labels(router.service)
        self._batch_size = BATCH_SIZE.labels(router.service)
        self._lag: dict[str, Any] = {}

    def register(self, broker: KafkaBroker) -> None:
        topics = [self.settings.topic(t) for t in self.router.topics]

        subscriber = broker.subscriber(
            *topics,
            group_id=consumer_group(self.router.service, self.settings.topic_prefix),
            batch=True,
            max_records=self.settings.consumer_batch_max,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            parser=_undecoded_batch,
            decoder=_raw_decoder,
            max_partition_fetch_bytes=MAX_RECORD_BYTES,
            fetch_max_bytes=16 * MAX_RECORD_BYTES,
            title=f"{self.router.service}",
            description=f"{self.router.service} consumes: " + ", ".join(sorted(self.router.routes)),
        )

        async def never_called(body: Any, msg: KafkaMessage) -> None:
            raise AssertionError("consume_one is replaced below: batches go to consume_batch")

        subscriber(never_called)  # FastStream sets a subscriber up only once it has a handler
        # FastStream's batch subscriber, when a poll comes back empty, sleeps `batch_timeout_ms`
        # (not passed: nothing reads it any more) before it polls again
        # (faststream/kafka/subscriber/usecase.py, BatchSubscriber.get_msg):
        # a record that arrives during that sleep waits for nothing. Ours polls without the sleep.
        subscriber.get_msg = self.next_batch  # type: ignore[method-assign]
        # And it hands each batch straight to handle_batch: FastStream's per-message path (context
        # scopes, its logging middleware, parser, decoder and dependency injection around `consume`)
        # does nothing this subscriber uses — no middlewares, MANUAL acks, an undecoded batch.
        subscriber.consume_one = self.consume_batch  # type: ignore[method-assign]
        self.subscriber = subscriber

    async def consume_batch(self, msg: tuple[ConsumerRecord[Any, Any], ...]) -> None:
        """One fetched batch (FastStream's `consume_one` calls it `msg`) → handle_batch."""
        consumer = self.subscriber.consumer
        if consumer is None or not self.subscriber.running:
            return
        raws = [to_raw(r) for r in msg]
        try:
            await self.handle_batch(consumer, raws)
        except Exception:  # a bug, not a record (handle_batch handles those): never skip the batch
            log.exception("batch_failed", records=len(raws))
            self._rewind(consumer, raws)
            await asyncio.sleep(1.0)

    async def next_batch(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        """The next batch: whatever is fetched, up to `consumer_batch_max` records, as soon as there
        is any; empty after POLL_TIMEOUT_MS without a record (the subscriber's loop polls again).

        Behind a backlog (a full batch fetched, or records left from one) every assigned
        partition's next records are taken too, and the batch is the oldest of them across
        partitions, window by window (ArrivalOrder)."""
        limit = self.settings.consumer_batch_max
        arrivals = self._arrivals
        assigned = consumer.assignment()
        arrivals.keep_only(assigned)
        if not arrivals:
            fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=limit)
            arrivals.add(fetched)
            if sum(len(records) for records in fetched.values()) < limit:
                return arrivals.take(limit)  # all that was fetched: nothing of it waits behind
        for tp in assigned:
            room = limit - arrivals.holding(tp)
            if room > 0:
                arrivals.add(await consumer.getmany(tp, timeout_ms=0, max_records=room))
        return arrivals.take(limit)

    async def handle_batch(
        self, consumer: AIOKafkaConsumer, records: Sequence[RawRecord]
    ) -> BatchResult | None:
        if not records:
            return None
        started = time.perf_counter()
        pool: asyncpg.Pool = self._pool_getter()
        parsed = self.processor.parse_all(records)
        try:
            try:
                if self.processor.all_skipped(parsed):  # no connection, no BEGIN and COMMIT
                    result = await self.processor.process(None, records, parsed)
                else:
                    async with pool.acquire() as conn, conn.transaction():
                        result = await self.processor.process(conn, records, parsed)
            except Exception as exc:
                if retry_later(exc):  # away, or a deadlock with another replica: all of it later
                    raise
                HANDLER_FAILURES.labels(self.router.service).inc()
                log.warning(
                    "batch_isolating",
                    error=f"{type(exc).__name__}: {exc}"[:500],
                    records=len(records),
                    exc_info=not isinstance(exc, asyncpg.PostgresError),
                )
                async with pool.acquire() as conn, conn.transaction():
                    result = await self.processor.process_isolated(conn, records)
        except Exception as exc:  # the database or the broker is away, or a conflict: redeliver the batch
            HANDLER_FAILURES.labels(self.router.service).inc()
            self._rewind(consumer, records)
            self._failures_in_row += 1
            delay = min(5.0, 0.1 * (2 ** min(self._failures_in_row, 6)))
            log.warning(
                "batch_rolled_back",
                error=f"{type(exc).__name__}: {exc}",
                records=len(records),
                retry_in_s=delay,
                exc_info=not isinstance(exc, OSError | asyncpg.PostgresError),
            )
            await asyncio.sleep(delay)
            return None
        self._failures_in_row = 0
        self.processor.forget_attempts(records)
        self._latency.observe(time.perf_counter() - started)
        self._batch_size.observe(len(records))
        self.batches += 1
        if self._on_committed is not None and result.outbox:
            # The rows are committed: to the relay, which need not wait for the offsets nor
            # select them again.
            self._on_committed(result.outbox)
        self._commit_behind(consumer, records)
        return result

    def _commit_behind(self, consumer: AIOKafkaConsumer, records: Sequence[RawRecord]) -> None:
        """Commit this batch's offsets later, with those of the batches handled in the meantime:
        one OffsetCommit request every `consumer_commit_interval_s` at most, instead of one per
        batch (at light load every record is a batch of its own, and each commit was a request
        for the broker and a task here). Only offsets of records whose transaction has committed
        are ever committed, and one commit runs at a time, so a late retry of an earlier commit
        never overwrites a later one. Offsets not yet committed when the process dies or loses
        the partition mean those records are delivered again and the inbox skips them, as when a
        crash fell between the transaction and the offset commit before."""
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            self._pending_offsets[tp] = max(self._pending_offsets.get(tp, -1), r.offset + 1)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(
                self._commit_pending(consumer), name=f"{self.router.service}-offset-commit"
            )

    async def _commit_pending(self, consumer: AIOKafkaConsumer) -> None:
        while self._pending_offsets:
            if not self._flushing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flushing.wait(), self.settings.consumer_commit_interval_s)
            offsets, self._pending_offsets = self._pending_offsets, {}
            await self._commit(consumer, offsets)

    async def flush_commits(self) -> None:
        """Commit the pending offsets now and wait for it (at shutdown, while the consumer still runs)."""
        self._flushing.set()
        try:
            if self._committing is not None:
                await asyncio.wait([self._committing])
        finally:
            self._flushing.clear()

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # a rebalance took the partition: the new owner redelivers, inbox dedupes
            log.warning("offset_commit_failed", error=str(exc))
        self._report_lag(consumer, offsets)

    def _report_lag(self, consumer: AIOKafkaConsumer, next_offsets: dict[TopicPartition, int]) -> None:
        for tp, next_offset in next_offsets.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = self._lag.get(tp.topic)
                if lag is None:
                    lag = self._lag[tp.topic] = CONSUMER_LAG.labels(self.router.service, tp.topic)
                lag.set(max(0, highwater - next_offset))

    def _rewind(self, consumer: AIOKafkaConsumer, records: Sequence[RawRecord]) -> None:
        earliest: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            earliest[tp] = min(earliest.get(tp, r.offset), r.offset)
        # A batch that keeps failing holds its partitions back: the lag gauge must show them
        # growing (the "consumer lag growing" alert), not the value of the last good commit.
        self._report_lag(consumer, earliest)
        self._arrivals.drop(earliest)  # fetched again from the offsets sought
        for tp, offset in earliest.items():
            try:
                consumer.seek(tp, offset)
            except Exception as exc:  # partition no longer ours: its new owner starts from the commit
                log.warning("seek_failed", partition=str(tp), error=str(exc))
