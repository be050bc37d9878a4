"""At-least-once on real Kafka and PostgreSQL (SPEC §1 rules 1–5), through a minimal service on shared/."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.envelope import new_envelope
from shared.publish import Publisher
from shared.settings import Settings
from shared.topics import DEADLETTER, IN_FUNDING, OUT_JOURNAL
from tests.integration import echo_service
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings, read_topic
from tests.support import scratch_database

pytestmark = pytest.mark.integration
ECHO_MIGRATIONS = Path(echo_service.__file__).parent / "migrations"
TOPICS = (IN_FUNDING, OUT_JOURNAL, DEADLETTER)


def funding(funding_id: str, account_id: str = "acct-1", amount: str = "100.00") -> dict[str, Any]:
    return {
        "funding_id": funding_id,
        "account_id": account_id,
        "legal_entity": "LE-1",
        "currency": "EUR",
        "amount": amount,
        "received_at": "2026-11-21T10:00:00Z",
    }


@pytest.fixture
async def echo_env() -> AsyncIterator[tuple[Settings, asyncpg.Connection]]:
    async with scratch_database(None, ECHO_MIGRATIONS) as dsn:
        settings = isolated_settings(db_dsn=dsn, handler_max_attempts=3)
        await create_topics(settings, TOPICS)
        conn = await asyncpg.connect(dsn)
        try:
            yield settings, conn
        finally:
            await conn.close()
            await delete_topics(settings, TOPICS)


async def wait_for(predicate: Any, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def credits(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT funding_id, count(*) AS n FROM credits GROUP BY funding_id")
    return {r["funding_id"]: r["n"] for r in rows}


async def test_the_same_event_twice_changes_state_once_and_emits_once(echo_env: Any) -> None:
    settings, conn = echo_env
    service = echo_service.build_service(settings)
    await service.start()
    try:
        async with Publisher(settings) as pub:
            env = new_envelope("funding.received", funding("f-1"), source="test")
            await pub.publish(IN_FUNDING, "acct-1", env)
            await pub.publish(IN_FUNDING, "acct-1", env)  # a producer retry: same event_id
            await pub.publish_event(IN_FUNDING, "acct-1", "funding.received", funding("f-2"))
        await wait_for(lambda: _has(conn, {"f-1", "f-2"}))
        journal = await read_topic(settings, OUT_JOURNAL, until=lambda r: len(r) >= 2, settle_s=1.5)
    finally:
        await service.stop()
    assert await credits(conn) == {"f-1": 1, "f-2": 1}
    assert sorted(r["key"] for r in journal) == ["f-1", "f-2"]
    inbox = await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", env.event_id)
    assert inbox == 1


async def _has(conn: asyncpg.Connection, funding_ids: set[str]) -> bool:
    return funding_ids <= set(await credits(conn))


async def test_a_raising_handler_is_redelivered_and_no_record_of_any_partition_is_skipped(
    echo_env: Any,
) -> None:
    settings, conn = echo_env
    service = echo_service.build_service(settings)
    await service.start()
    try:
        async with Publisher(settings) as pub:
            for i in range(12):
                account = "flaky-1" if i == 3 else f"acct-{i}"  # keys spread over the three partitions
                await pub.publish_event(IN_FUNDING, account, "funding.received", funding(f"f-{i}", account))
        await wait_for(lambda: _has(conn, {f"f-{i}" for i in range(12)}))
    finally:
        await service.stop()
    assert await credits(conn) == {f"f-{i}": 1 for i in range(12)}


async def test_a_poison_record_goes_to_deadletter_and_its_partition_moves_on(echo_env: Any) -> None:
    settings, conn = echo_env
    service = echo_service.build_service(settings)
    await service.start()
    try:
        async with Publisher(settings) as pub:
            await pub.publish(IN_FUNDING, "acct-p", new_envelope("x", {}, source="t"), raw_value=b"{not json")
            bad = new_envelope(
                "funding.received", {**funding("f-bad", "acct-p"), "amount": 12.5}, source="test"
            )
            await pub.publish(IN_FUNDING, "acct-p", bad)  # money as a float: invalid payload
            await pub.publish_event(
                IN_FUNDING, "acct-p", "funding.received", funding("f-unknown-type", "acct-p")
            )
            await pub.publish(
                IN_FUNDING, "acct-p", new_envelope("funding.refunded", funding("f-x", "acct-p"), source="t")
            )
            await pub.publish_event(
                IN_FUNDING, "always-fails", "funding.received", funding("f-fails", "always-fails")
            )
            await pub.publish_event(IN_FUNDING, "acct-p", "funding.received", funding("f-after", "acct-p"))
        await wait_for(lambda: _has(conn, {"f-after", "f-unknown-type"}))
        dead = await read_topic(settings, DEADLETTER, until=lambda r: len(r) >= 4, settle_s=1.0)
    finally:
        await service.stop()
    assert await credits(conn) == {"f-unknown-type": 1, "f-after": 1}
    errors = {d["value"]["data"]["error"].split(":")[0] for d in dead}
    assert len(dead) == 4, errors
    origins = [d["value"]["data"]["origin"] for d in dead]
    assert all(o["topic"] == settings.topic(IN_FUNDING) for o in origins)
    garbage = next(d for d in dead if d["value"]["data"]["error"].startswith("invalid envelope"))
    assert base64.b64decode(garbage["value"]["data"]["value_base64"]) == b"{not json"
    assert any("money must be a decimal string" in d["value"]["data"]["error"] for d in dead)
    assert any("unknown event_type 'funding.refunded'" in d["value"]["data"]["error"] for d in dead)
    assert any(d["value"]["data"]["error"].startswith("handler failed 3 times") for d in dead)


async def test_killed_after_commit_before_publish_publishes_after_restart_exactly_once(echo_env: Any) -> None:
    settings, conn = echo_env
    svc = ServiceProcess("tests.integration.echo_service", settings, "echo")
    # The relay holds rows back: the transaction commits, then the process dies before publishing.
    svc.start(relay_start_delay_s=600)
    try:
        await svc.wait_ready()
        async with Publisher(settings) as pub:
            await pub.publish_event(IN_FUNDING, "acct-1", "funding.received", funding("f-crash"))
        await wait_for(lambda: _has(conn, {"f-crash"}))
        unpublished = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert unpublished == 1
        svc.kill()
        svc.start()
        await svc.wait_ready()
        journal = await read_topic(settings, OUT_JOURNAL, until=lambda r: len(r) >= 1, settle_s=2.0)
    finally:
        svc.stop()
    assert await credits(conn) == {"f-crash": 1}
    assert [r["key"] for r in journal] == ["f-crash"]
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_fixed_deadletter_record_replayed_twice_is_processed_exactly_once(echo_env: Any) -> None:
    from tools.cli.dlq import read_deadletters, replay

    settings, conn = echo_env
    service = echo_service.build_service(settings)
    await service.start()
    try:
        async with Publisher(settings) as pub:
            broken = new_envelope("funding.received", funding("f-dlq", "always-fails"), source="test")
            await pub.publish(IN_FUNDING, "always-fails", broken)
        await read_topic(settings, DEADLETTER, until=lambda r: len(r) >= 1)
        [entry] = await read_deadletters(settings)
        assert entry.origin["topic"] == settings.topic(IN_FUNDING)
        fixed = broken.model_copy(update={"data": funding("f-dlq", "acct-fixed")}).model_dump_json().encode()
        await replay(settings, entry, fixed)
        await replay(settings, entry, fixed)  # an operator's double click
        await wait_for(lambda: _has(conn, {"f-dlq"}))
        await asyncio.sleep(1.5)
    finally:
        await service.stop()
    assert await credits(conn) == {"f-dlq": 1}
