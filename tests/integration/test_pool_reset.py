"""What a pooled connection carries back to the pool (shared/db.py: create_pool's reset).

asyncpg's default reset ran four statements on every release (a round trip per batch of every
service); now only a session marked as holding session-level state (the outbox relay's: a session
advisory lock and LISTEN) gets it. These tests hold both halves: the marked session comes back
clean whatever it left behind, and an unmarked one still comes back out of any transaction."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.admin import admin_settings
from shared.db import holds_session_state
from shared.envelope import new_envelope
from shared.outbox import OutboxMessage, OutboxRelay, make_producer, write_outbox
from shared.settings import Settings
from shared.topics import INTAKE_DOCUMENTS
from testkit.sql import count_statements
from tests.kafka_support import create_topics, delete_topics, isolated_settings, read_topic
from tests.support import scratch_pool

pytestmark = pytest.mark.integration

_LOCK = 4242


async def test_a_marked_session_comes_back_without_its_lock_listen_or_settings() -> None:
    async with scratch_pool(None) as pool:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            holds_session_state(conn)
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK)
            await conn.execute("LISTEN concord_test; SET statement_timeout = '7s'")
        async with pool.acquire() as other:
            # One connection in the pool until a second is needed: the same session again.
            assert other.get_server_pid() == pid
            assert await other.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
            assert await other.fetchval("SHOW statement_timeout") == "0"
            async with pool.acquire() as third:
                assert await third.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK), "the lock leaked"
                await third.execute("SELECT pg_advisory_unlock($1)", _LOCK)


async def test_an_unmarked_session_is_released_without_a_statement_and_outside_any_transaction() -> None:
    async with scratch_pool(None) as pool:
        conn = await pool.acquire()
        raw = conn._con  # the pool's connection itself: the release's statements run on it
        async with count_statements(raw) as counted:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await pool.release(conn)  # a batch that never committed nor rolled back
        # asyncpg's own step still rolls an abandoned transaction back (and with it the
        # transaction-scoped lock); nothing else was sent on release.
        assert [s for s in counted.statements if "pg_advisory_unlock_all" in s] == []
        assert counted.statements[-1] == "ROLLBACK"
        async with pool.acquire() as again:
            assert await again.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK)
            await again.execute("SELECT pg_advisory_unlock($1)", _LOCK)


async def test_a_relay_cancelled_twice_while_it_leads_leaves_no_lock_and_no_listen_behind() -> None:
    # A second cancellation while the relay's `finally` unlistens skips its own unlock (it
    # suppresses Exceptions, not a cancellation), as a shutdown that cancels twice does: the
    # release's full reset is what frees the lock for the next leader. Where the second
    # cancellation lands depends on the event loop's turns, so it is tried after 0…11 of them.
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    producer = make_producer(Settings())  # never started: an empty outbox sends nothing
    async with scratch_pool(None) as pool:
        for turns in range(12):
            relay = OutboxRelay("test", pool, producer, poll_interval_s=60)
            task = asyncio.create_task(relay.run())
            for _ in range(200):
                if relay.is_leader:
                    break
                await asyncio.sleep(0.02)
            assert relay.is_leader
            task.cancel()
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with pool.acquire() as conn:
                # The relay's session is the pool's only one, back in the pool (or replaced).
                assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
                assert await conn.fetchval(held) == 0, f"lock leaked (second cancel after {turns} turns)"
    await producer.stop()


async def test_the_relays_asynchronous_mark_does_not_outlive_its_transaction() -> None:
    # The relay marks rows published with synchronous_commit off for that one transaction (a lost
    # mark only re-publishes); whatever runs next on its session must commit synchronously again.
    settings = isolated_settings()
    await create_topics(settings, (INTAKE_DOCUMENTS,))
    producer = make_producer(admin_settings(settings))
    await producer.start()
    try:
        async with scratch_pool(None) as pool, pool.acquire() as conn:
            await write_outbox(
                conn,
                [
                    OutboxMessage(
                        settings.topic(INTAKE_DOCUMENTS),
                        f"PO-{n}",
                        new_envelope("purchase_order.accepted", {"n": n}, source="test"),
                    )
                    for n in range(3)
                ],
            )
            relay = OutboxRelay("test", pool, producer)
            assert await relay.publish_pending(conn) == 3
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
            assert not conn.is_in_transaction()
        records = await read_topic(settings, INTAKE_DOCUMENTS, until=lambda r: len(r) >= 3, settle_s=0.5)
        assert sorted(r["key"] for r in records) == ["PO-0", "PO-1", "PO-2"]
    finally:
        await producer.stop()
        await delete_topics(settings, (INTAKE_DOCUMENTS,))
