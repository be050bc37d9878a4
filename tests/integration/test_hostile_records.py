"""Hostile records on real Kafka and PostgreSQL (SPEC §15 "Records", §11 deadletter replay).

Through the minimal echo service (tests/integration/echo_service) for the machinery every service
shares, and through matching for a replay from an internal topic.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import TopicPartition

from services.matching.app import service as matching_service
from shared.consumer import BatchProcessor
from shared.db import connect
from shared.envelope import new_envelope
from shared.publish import Publisher
from shared.settings import Settings
from shared.topics import (
    DEADLETTER,
    IN_COMMANDS,
    IN_FUNDING,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_INVOICE_RESPONSES,
    OUT_JOURNAL,
)
from testkit.samples.intake import invoice as accepted_invoice
from tests.integration import echo_service
from tests.integration.test_at_least_once import ECHO_MIGRATIONS, credits, funding, wait_for
from tests.kafka_support import create_topics, delete_topics, isolated_settings, read_topic
from tests.support import record, scratch_database
from tools.cli.dlq import DeadLetterEntry, ReplayRefused, read_deadletters, replay

pytestmark = pytest.mark.integration
ECHO_TOPICS = (IN_FUNDING, OUT_JOURNAL, DEADLETTER)


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Settings, asyncpg.Connection]]:
    async with scratch_database(None, ECHO_MIGRATIONS) as dsn:
        # The default attempts (5), as in the run that found the slow poison.
        settings = isolated_settings(db_dsn=dsn)
        await create_topics(settings, ECHO_TOPICS)
        conn = await asyncpg.connect(dsn)
        try:
            yield settings, conn
        finally:
            await conn.close()
            await delete_topics(settings, ECHO_TOPICS)


def value_of(funding_id: str, account: str) -> bytes:
    return (
        new_envelope("funding.received", funding(funding_id, account), source="test")
        .model_dump_json()
        .encode()
    )


async def committed(service: Any, tp: TopicPartition) -> int | None:
    consumer = service.consumer.subscriber.consumer
    return await consumer.committed(tp)  # type: ignore[no-any-return]


async def test_a_record_with_an_undecodable_header_or_key_is_deadlettered_alone_and_its_batch_is_processed(
    echo: Any,
) -> None:
    """Finding 1: one `traceparent` holding 0xff lost every record fetched with it, silently."""
    settings, conn = echo
    topic = settings.topic(IN_FUNDING)
    ok_headers = [("content-type", b"application/json")]
    good = [f"f-good-{i}" for i in range(8)]
    sent: dict[str, tuple[int, int]] = {}  # funding id → (partition, offset)
    async with Publisher(settings) as pub:  # all of it in the log before the service fetches a batch
        for funding_id in good[:4]:
            meta = await (await pub.producer_for(IN_FUNDING)).send_and_wait(
                topic, value=value_of(funding_id, "acct-b"), key=b"acct-b", headers=ok_headers
            )
            sent[funding_id] = (meta.partition, meta.offset)
        bad_trace = [
            *ok_headers,
            ("traceparent", b"00-\xff4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ]
        meta = await (await pub.producer_for(IN_FUNDING)).send_and_wait(
            topic, value=value_of("f-bad-header", "acct-b"), key=b"acct-b", headers=bad_trace
        )
        sent["f-bad-header"] = (meta.partition, meta.offset)
        meta = await (await pub.producer_for(IN_FUNDING)).send_and_wait(
            topic, value=value_of("f-bad-key", "acct-b"), key=b"acct-\xff", headers=ok_headers
        )
        sent["f-bad-key"] = (meta.partition, meta.offset)
        for funding_id in good[4:]:
            meta = await (await pub.producer_for(IN_FUNDING)).send_and_wait(
                topic, value=value_of(funding_id, "acct-b"), key=b"acct-b", headers=ok_headers
            )
            sent[funding_id] = (meta.partition, meta.offset)
    ends: dict[TopicPartition, int] = {}
    for partition, offset in sent.values():
        tp = TopicPartition(topic, partition)
        ends[tp] = max(ends.get(tp, 0), offset + 1)

    service = echo_service.build_service(settings)
    await service.start()
    try:
        await wait_for(lambda: _credited(conn, set(good)))
        dead = await read_topic(settings, DEADLETTER, until=lambda r: len(r) >= 2, settle_s=1.0)

        async def all_committed() -> bool:
            return all([await committed(service, tp) == end for tp, end in ends.items()])

        await wait_for(all_committed)  # past the bad records too: nothing left to redeliver
    finally:
        await service.stop()
    assert await credits(conn) == dict.fromkeys(good, 1)
    by_offset = {
        (d["value"]["data"]["origin"]["partition"], d["value"]["data"]["origin"]["offset"]): d["value"][
            "data"
        ]
        for d in dead
    }
    assert len(dead) == 2
    assert by_offset[sent["f-bad-header"]]["reason"] == "undecodable_header"
    assert "traceparent" in by_offset[sent["f-bad-header"]]["error"]
    assert by_offset[sent["f-bad-key"]]["reason"] == "undecodable_key"


async def _credited(conn: asyncpg.Connection, funding_ids: set[str]) -> bool:
    return funding_ids <= set(await credits(conn))


async def test_records_that_fail_in_the_database_hold_a_good_record_back_seconds_not_minutes(
    echo: Any,
) -> None:
    """Finding 6: five records failing in PostgreSQL (NUL bytes) held a good one back for 107 s,
    whole batches rolled back and redelivered with back-off until each bad one failed 5 times."""
    settings, conn = echo
    assert settings.handler_max_attempts == 5
    async with Publisher(settings) as pub:
        for i in range(5):  # PostgreSQL text cannot hold NUL: the INSERT fails, every time
            await pub.publish_event(
                IN_FUNDING, "acct-s", "funding.received", funding(f"f-nul-{i}\x00", "acct-s")
            )
        await pub.publish_event(IN_FUNDING, "acct-s", "funding.received", funding("f-good", "acct-s"))
    service = echo_service.build_service(settings)
    await service.start()
    started = time.monotonic()
    try:
        await wait_for(lambda: _credited(conn, {"f-good"}), timeout_s=60)
        delay = time.monotonic() - started
        dead = await read_topic(settings, DEADLETTER, until=lambda r: len(r) >= 5, settle_s=1.0)
    finally:
        await service.stop()
    assert delay < 10, f"the good record waited {delay:.1f}s behind five bad ones"
    assert await credits(conn) == {"f-good": 1}
    assert len(dead) == 5  # none skipped: each bad record has its deadletter entry
    assert {d["value"]["data"]["reason"] for d in dead} == {"handler_failed"}
    assert all("handler failed 5 times" in d["value"]["data"]["error"] for d in dead)


MATCHING_TOPICS = (
    INTAKE_DOCUMENTS,
    IN_COMMANDS,
    DEADLETTER,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_INVOICE_RESPONSES,  # matching answers suppliers too (SPEC §12.3)
)


async def test_a_record_deadlettered_from_an_internal_topic_is_replayed_by_its_service_once() -> None:
    """§11: the CLI never writes an internal topic back; matching replays its own deadletter on a
    signed command, the original bytes through the same handler, and twice asked is once done."""
    async with scratch_database("matching") as dsn:
        settings = isolated_settings(db_dsn=dsn, service="matching")
        await create_topics(settings, MATCHING_TOPICS)
        conn = await asyncpg.connect(dsn)
        service = matching_service.with_settings(settings)
        try:
            # A fault that a fix removes: matching's invoices table is away while the record arrives.
            await conn.execute("ALTER TABLE invoices RENAME TO invoices_away")
            await service.start()
            rec = accepted_invoice("INV-REPLAY-1", po_number=None)
            async with Publisher(settings) as pub:
                await (await pub.producer_for(INTAKE_DOCUMENTS)).send_and_wait(
                    settings.topic(INTAKE_DOCUMENTS), value=rec.value, key=rec.key
                )
            [dead] = await read_topic(settings, DEADLETTER, until=lambda r: len(r) >= 1)
            assert dead["value"]["data"]["reason"] == "handler_failed"
            assert dead["value"]["source"] == "matching"
            await conn.execute("ALTER TABLE invoices_away RENAME TO invoices")

            [entry] = await read_deadletters(settings)
            where = await replay(settings, entry, requested_by="ops.lead@example.com")
            assert "deadletter.replay_requested" in where
            await wait_for(lambda: _invoice_count(conn, "INV-REPLAY-1", 1))
            await replay(settings, entry, requested_by="ops.lead@example.com")  # a double click

            async def both_commands_answered() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM inbox WHERE event_type = 'deadletter.replay_requested'"
                    " AND result = 'replayed'"
                )
                return bool(n == 2)

            await wait_for(both_commands_answered)
            await asyncio.sleep(1.0)
            documents = await read_topic(
                settings, INTAKE_DOCUMENTS, until=lambda r: len(r) >= 1, settle_s=1.0
            )
            commands = await read_topic(settings, IN_COMMANDS, until=lambda r: len(r) >= 2, settle_s=0.5)
            invoice_rows = await conn.fetchval(
                "SELECT count(*) FROM invoices WHERE invoice_id = 'INV-REPLAY-1'"
            )
            applied = await conn.fetch("SELECT result FROM inbox WHERE event_id = $1", _event_id(rec.value))
            decisions = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", settings.topic(MATCHING_DECISIONS)
            )
        finally:
            await service.stop()
            await conn.close()
            await delete_topics(settings, MATCHING_TOPICS)
    assert invoice_rows == 1
    assert [r["result"] for r in applied] != ["deadlettered"] and len(applied) == 1
    assert decisions == 1  # one decision for the invoice, not one per replay request
    assert len(documents) == 1  # nobody wrote the internal topic back
    assert [c["value"]["event_type"] for c in commands] == ["deadletter.replay_requested"] * 2
    assert all(c["headers"].get("concord-signature") for c in commands)
    assert {c["value"]["data"]["deadletter_offset"] for c in commands} == {dead["offset"]}


def _event_id(value: bytes) -> str:
    return str(json.loads(value)["event_id"])


async def _invoice_count(conn: asyncpg.Connection, invoice_id: str, n: int) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM invoices WHERE invoice_id = $1", invoice_id) == n)


async def test_a_failing_batch_is_isolated_record_by_record_without_kafka() -> None:
    """The same isolation as above, on the processor alone: the bad record costs exactly its
    attempts, each in a savepoint; the good ones around it are applied in the same transaction."""
    async with scratch_database(None, ECHO_MIGRATIONS) as dsn:
        settings = Settings(service="echo", db_dsn=dsn)
        processor = BatchProcessor(echo_service.router, settings)
        records = [
            record(IN_FUNDING, "funding.received", funding("f-iso-1", "acct-i")),
            record(IN_FUNDING, "funding.received", funding("f-iso-nul\x00", "acct-i")),
            record(IN_FUNDING, "funding.received", funding("f-iso-2", "acct-i")),
        ]
        conn = await connect(dsn)  # with the services' codecs (jsonb)
        try:
            with pytest.raises(asyncpg.PostgresError):
                async with conn.transaction():
                    await processor.process(conn, records)
            async with conn.transaction():
                result = await processor.process_isolated(conn, records)
            assert await credits(conn) == {"f-iso-1": 1, "f-iso-2": 1}
        finally:
            await conn.close()
    assert (result.handled, result.deadlettered) == (2, 1)
    [dead] = [json.loads(m.value()) for m in result.outbox if m.envelope.event_type == "deadletter.recorded"]
    assert dead["data"]["reason"] == "handler_failed"
    assert dead["data"]["error"].startswith(f"handler failed {settings.handler_max_attempts} times")


async def test_a_collision_with_another_transaction_is_retried_later_and_never_deadlettered() -> None:
    """A lock another replica holds (here: another session's advisory lock, PostgreSQL's real
    lock_not_available; a deadlock is the same class of error) says nothing about the record. It
    was once charged as an attempt: five collisions in a row deadlettered a valid rail answer in
    the three-broker chaos run and left its payout `released` for ever. Now the batch is rolled
    back for redelivery however often it collides, and applied once the lock is free."""
    async with scratch_database(None, ECHO_MIGRATIONS) as dsn:
        settings = Settings(service="echo", db_dsn=dsn)
        processor = BatchProcessor(echo_service.router, settings)
        records = [
            record(IN_FUNDING, "funding.received", funding("f-lock-1", "acct-l")),
            record(IN_FUNDING, "funding.received", funding("f-lock-2", "locked-1")),
            record(IN_FUNDING, "funding.received", funding("f-lock-3", "acct-l")),
        ]
        other_replica = await asyncpg.connect(dsn)
        conn = await connect(dsn)
        try:
            await other_replica.execute("SELECT pg_advisory_lock(hashtext('locked-1'))")
            with pytest.raises(asyncpg.LockNotAvailableError):
                async with conn.transaction():
                    await processor.process(conn, records)
            for _ in range(settings.handler_max_attempts + 2):  # more than a bad record is allowed
                with pytest.raises(asyncpg.LockNotAvailableError):
                    async with conn.transaction():
                        await processor.process_isolated(conn, records)
            assert await credits(conn) == {}
            await other_replica.execute("SELECT pg_advisory_unlock(hashtext('locked-1'))")
            async with conn.transaction():
                result = await processor.process(conn, records)
            assert await credits(conn) == {"f-lock-1": 1, "f-lock-2": 1, "f-lock-3": 1}
        finally:
            await conn.close()
            await other_replica.close()
    assert (result.handled, result.deadlettered) == (3, 0)


async def test_the_cli_never_writes_a_changed_record_to_an_internal_topic() -> None:
    entry = DeadLetterEntry(
        event_id="evt_x",
        occurred_at="",
        origin={"topic": "concord.matching.decisions", "partition": 0, "offset": 3, "key": "INV-1"},
        error="handler failed 5 times",
        value=b"{}",
        headers={},
        offset=7,
        source="payout_release",
    )
    with pytest.raises(ReplayRefused, match="written by its owner alone"):
        await replay(Settings(), entry, b'{"forged": true}')


def _deadletter_entry(source: str, origin_topic: str, value: bytes, key: str = "PO-1") -> dict[str, Any]:
    return {
        "event_id": "evt_dead",
        "event_type": "deadletter.recorded",
        "source": source,
        "data": {
            "origin": {"topic": origin_topic, "partition": 2, "offset": 17, "key": key},
            "reason": "handler_failed",
            "error": "handler failed 5 times: ...",
            "value_base64": base64.b64encode(value).decode(),
            "headers": {"content-type": "application/json"},
        },
    }


@pytest.mark.parametrize(
    ("source", "origin", "outcome"),
    [
        ("matching", "concord.intake.documents", "replayed"),
        ("payout_release", "concord.intake.documents", "not_ours"),  # another service's entry
        ("matching", "concord.matching.decisions", "not_ours"),  # a topic matching does not read
        ("matching", None, "not_ours"),  # no deadletter entry at that offset
        ("matching", "malformed", "not_ours"),  # an entry the contract does not recognise
    ],
)
async def test_a_replay_request_is_served_only_by_the_service_that_deadlettered_the_record(
    source: str, origin: str | None, outcome: str
) -> None:
    from services.matching.handlers import router as matching_router

    still_bad = b'{"not": "an envelope"}'
    entry = _deadletter_entry(source, origin, still_bad) if origin else None
    if origin == "malformed":
        entry = {"event_type": "deadletter.recorded", "source": source, "data": {"origin": "?"}}

    async def reader(offset: int) -> dict[str, Any] | None:
        assert offset == 5
        return entry

    async with scratch_database("matching") as dsn:
        processor = BatchProcessor(matching_router, Settings(service="matching", db_dsn=dsn))
        processor.deadletter_reader = reader
        command = record(
            IN_COMMANDS,
            "deadletter.replay_requested",
            {"replay_id": "rpl_1", "deadletter_offset": 5, "requested_by": "ops.lead@example.com"},
        )
        conn = await connect(dsn)
        try:
            async with conn.transaction():
                result = await processor.process(conn, [command])
            answered = await conn.fetchval(
                "SELECT result FROM inbox WHERE event_type = 'deadletter.replay_requested'"
            )
            # The replayed record is processed in a savepoint of its own and writes its own outbox rows.
            dead = [
                json.loads(r["value"])
                for r in await conn.fetch("SELECT value FROM outbox WHERE event_type = 'deadletter.recorded'")
            ]
        finally:
            await conn.close()
    assert answered == outcome
    assert result.handled == 1
    if outcome == "replayed":  # the original bytes ran again, failed again: a new entry, named by the replay
        [again] = dead
        assert again["data"]["replay_id"] == "rpl_1"
        assert base64.b64decode(again["data"]["value_base64"]) == still_bad
        assert again["data"]["origin"]["offset"] == 17
    else:
        assert dead == []
