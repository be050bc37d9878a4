"""FastStream wiring: one batch subscriber per service, with at-least-once done by hand.

FastStream's default ack policy commits before the handler runs, and its ACK policy commits even
when the handler raises (../notes: both lose records). Here the subscriber runs with MANUAL acks:
after the batch's transaction commits we commit exactly the offsets we processed, per partition;
when the transaction rolls back we seek every partition of the batch back to its first record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.middlewares import AckPolicy

from shared.acl import consumer_group
from shared.consumer import BatchProcessor, BatchResult, RawRecord, Router
from shared.kafka_auth import faststream_security
from shared.metrics import BATCH_SIZE, CONSUMER_LAG, HANDLER_FAILURES, HANDLER_LATENCY
from shared.settings import Settings

log = structlog.get_logger(__name__)

MAX_RECORD_BYTES = 4 * 1024 * 1024  # > the 1 MiB documents intake must see in order to refuse them


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


def to_raw(record: ConsumerRecord[Any, Any]) -> RawRecord:
    return RawRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=tuple(record.headers or ()),
    )


class BatchConsumer:
    """Consumes one batch at a time: parse → one transaction → commit offsets, or rewind and back off."""

    def __init__(
        self, router: Router, settings: Settings, pool_getter: Any, on_committed: Any = None
    ) -> None:
        self.router = router
        self.settings = settings
        self.processor = BatchProcessor(router, settings)
        self._pool_getter = pool_getter  # the pool exists only after start-up
        self._on_committed = on_committed
        self._failures_in_row = 0
        self.batches = 0

    def register(self, broker: KafkaBroker) -> None:
        topics = [self.settings.topic(t) for t in self.router.topics]

        @broker.subscriber(
            *topics,
            group_id=consumer_group(self.router.service, self.settings.topic_prefix),
            batch=True,
            max_records=self.settings.consumer_batch_max,
            batch_timeout_ms=50,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_decoder,
            max_partition_fetch_bytes=MAX_RECORD_BYTES,
            fetch_max_bytes=16 * MAX_RECORD_BYTES,
            title=f"{self.router.service}",
            description=f"{self.router.service} consumes: " + ", ".join(sorted(self.router.routes)),
        )
        async def consume(body: Any, msg: KafkaMessage) -> None:
            raw = msg.raw_message
            records = raw if isinstance(raw, tuple) else (raw,)
            await self.handle_batch(msg.consumer, [to_raw(r) for r in records])

    async def handle_batch(
        self, consumer: AIOKafkaConsumer, records: Sequence[RawRecord]
    ) -> BatchResult | None:
        if not records:
            return None
        started = time.perf_counter()
        pool: asyncpg.Pool = self._pool_getter()
        try:
            async with pool.acquire() as conn, conn.transaction():
                result = await self.processor.process(conn, records)
        except Exception as exc:  # every failure means: redeliver the whole batch
            self.processor.record_failure(exc)
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
        HANDLER_LATENCY.labels(self.router.service).observe(time.perf_counter() - started)
        BATCH_SIZE.labels(self.router.service).observe(len(records))
        await self._commit(consumer, records)
        self.batches += 1
        if self._on_committed is not None and result.outbox:
            self._on_committed()
        return result

    async def _commit(self, consumer: AIOKafkaConsumer, records: Sequence[RawRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # a rebalance took the partition: the new owner redelivers, inbox dedupes
            log.warning("offset_commit_failed", error=str(exc))
        for tp, next_offset in offsets.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.router.service, tp.topic).set(max(0, highwater - next_offset))

    @staticmethod
    def _rewind(consumer: AIOKafkaConsumer, records: Sequence[RawRecord]) -> None:
        earliest: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            earliest[tp] = min(earliest.get(tp, r.offset), r.offset)
        for tp, offset in earliest.items():
            try:
                consumer.seek(tp, offset)
            except Exception as exc:  # partition no longer ours: its new owner starts from the commit
                log.warning("seek_failed", partition=str(tp), error=str(exc))
