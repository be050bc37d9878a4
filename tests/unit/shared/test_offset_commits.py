"""What BatchConsumer does around a batch's transaction (shared/kafka.py), with stand-ins for
aiokafka's consumer and the pool: offsets are committed together, and a batch of records this
service skips opens no transaction."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiokafka import TopicPartition

from services.payout_release.handlers import router as payout_release
from shared.consumer import RawRecord, Router
from shared.envelope import EVENT_TYPE_HEADER, decode_envelope
from shared.kafka import BatchConsumer
from shared.settings import Settings
from shared.topics import IN_INVOICES
from testkit.samples import intake as samples


class Committing:
    """Stands for aiokafka's consumer: records every offset commit."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


class NoPool:
    def acquire(self) -> Any:
        raise AssertionError("a batch of skipped records must not take a connection")


def _raw(topic: str, partition: int, offset: int) -> RawRecord:
    return RawRecord(topic=topic, partition=partition, offset=offset, key=b"k", value=b"{}")


def _consumer(router: Router, **settings: Any) -> BatchConsumer:
    return BatchConsumer(router, Settings(service=router.service, **settings), pool_getter=NoPool)


async def test_the_offsets_of_batches_handled_within_the_interval_are_committed_in_one_request() -> None:
    consumer = _consumer(Router("echo", topics=[IN_INVOICES]), consumer_commit_interval_s=0.2)
    kafka = Committing()
    consumer._commit_behind(kafka, [_raw("t", 0, 5), _raw("t", 1, 2)])  # type: ignore[arg-type]
    consumer._commit_behind(kafka, [_raw("t", 0, 6)])  # type: ignore[arg-type]
    consumer._commit_behind(kafka, [_raw("t", 0, 7), _raw("t", 1, 3)])  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert kafka.commits == []  # not one request per batch
    await asyncio.sleep(0.3)
    assert kafka.commits == [{TopicPartition("t", 0): 8, TopicPartition("t", 1): 4}]
    consumer._commit_behind(kafka, [_raw("t", 0, 8)])  # type: ignore[arg-type]
    await consumer.flush_commits()  # at shutdown: now, not after the interval
    assert kafka.commits[1:] == [{TopicPartition("t", 0): 9}]


async def test_a_batch_of_records_the_service_skips_takes_no_connection_and_commits_its_offsets() -> None:
    def labelled(rec: RawRecord) -> RawRecord:
        event_type = decode_envelope(rec.value).event_type
        return dataclasses.replace(rec, headers=(*rec.headers, (EVENT_TYPE_HEADER, event_type.encode())))

    # payout_release does not handle receipts: labelled, they are skipped undecoded.
    receipts = [
        dataclasses.replace(labelled(samples.receipt(f"GR-{n}", po_number=f"PO-{n}")), offset=n)
        for n in range(3)
    ]
    consumer = _consumer(payout_release, consumer_commit_interval_s=0)
    kafka = Committing()
    result = await consumer.handle_batch(kafka, receipts)  # type: ignore[arg-type]
    assert result is not None and (result.ignored, result.handled) == (3, 0)
    await consumer.flush_commits()
    assert kafka.commits == [{TopicPartition(receipts[0].topic, receipts[0].partition): 3}]
