"""Transactional outbox: rows written in the handler's transaction, published by one relay per service.

The relay is the only code that publishes a service's events (SPEC §1 rule 2). A crash between
publish and "mark published" re-publishes; consumers dedupe by event_id, so that is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from shared.db import holds_session_state
from shared.envelope import Envelope
from shared.kafka_auth import client_options
from shared.metrics import OUTBOX_LAG, OUTBOX_PUBLISHED
from shared.settings import Settings
from shared.topics import ALL_TOPICS

log = structlog.get_logger(__name__)

OUTBOX_CHANNEL = "concord_outbox"
# One relay per service database publishes, so per-key order is the outbox's id order.
_RELAY_LOCK = 0x6F7574626F78  # "outbox"
# The topics whose rows are sent and acknowledged before the rest of a batch (Topic.sent_first);
# matched by suffix, as a test stack prefixes topic names.
_SENT_FIRST = tuple(t.name for t in ALL_TOPICS if t.sent_first)


@dataclass(frozen=True)
class OutboxMessage:
    topic: str  # the full topic name, prefix applied
    key: str
    envelope: Envelope
    headers: dict[str, str] = field(default_factory=dict)

    def value(self) -> bytes:
        return self.envelope.model_dump_json().encode()


async def write_outbox(conn: asyncpg.Connection, messages: list[OutboxMessage]) -> None:
    """Insert in one statement that also NOTIFYs: the relay wakes at commit (a hint only, it
    also polls)."""
    if messages:
        await conn.execute(f"WITH written AS ({OUTBOX_INSERT}) {NOTIFY_RELAY}", *outbox_columns(messages))


# The outbox rows of a unit of work as `unnest` columns ($1…$6): outbox_columns(messages).
OUTBOX_INSERT = """INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::jsonb[])
           ON CONFLICT (event_id) DO NOTHING"""
# pg_notify is NOTIFY as a function: delivered at commit, so it rides in the insert's statement
# (one round trip fewer per unit of work than a NOTIFY of its own).
NOTIFY_RELAY = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"


def outbox_columns(messages: list[OutboxMessage]) -> list[list[Any]]:
    return [
        [m.envelope.event_id for m in messages],
        [m.envelope.event_type for m in messages],
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value() for m in messages],
        [{"content-type": "application/json", **m.headers} for m in messages],
    ]


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer authenticated as the settings' principal (SPEC §11).
    Idempotence implies acks=all: a broker ack means the record is durable in the log.
    No linger: the relay hands a whole batch to the producer without yielding (send() only
    appends while the topic's metadata is known), so the records batch anyway; lingering only
    added its 2 ms to each wave of every hop."""
    return AIOKafkaProducer(
        **client_options(settings),
        enable_idempotence=True,
        linger_ms=0,
        max_request_size=8 * 1024 * 1024,
        request_timeout_ms=30000,
    )


class OutboxRelay:
    def __init__(
        self,
        service: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        batch_max: int = 500,
        poll_interval_s: float = 0.2,
        start_delay_s: float = 0.0,
    ) -> None:
        self.start_delay_s = start_delay_s
        self.service = service
        self.pool = pool
        self.producer = producer
        self.batch_max = batch_max
        self.poll_interval_s = poll_interval_s
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.is_leader = False

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Hold the relay lock on a dedicated connection for as long as this instance leads."""
        if self.start_delay_s:
            await asyncio.sleep(self.start_delay_s)
        while not self._stopping:
            try:
                await self._lead()
            except Exception as exc:
                # Any failure — database or broker (aiokafka's errors are not OSErrors: a
                # KafkaTimeoutError while the broker restarts used to end this task for good,
                # leaving committed events unpublished until the process restarted) — is
                # retried: the rows stay unpublished and are sent again, downstream dedupes.
                log.warning("outbox_relay_error", error=repr(exc))
                self.is_leader = False
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def _lead(self) -> None:
        async with self.pool.acquire() as conn:
            # A session lock and LISTEN: the pool resets this connection in full on release.
            holds_session_state(conn)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                self.is_leader = False
                await asyncio.sleep(2.0)
                return
            self.is_leader = True
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            try:
                while not self._stopping:
                    # Cleared before the SELECT, not after the publish: a commit (NOTIFY, or the
                    # consumer's wake) that lands while this batch is being sent is not in the
                    # SELECT's snapshot, and its wake-up must survive to start the next round at
                    # once — cleared after the publish, those rows waited for the poll interval.
                    self._wakeup.clear()
                    published = await self.publish_pending(conn)
                    if published < self.batch_max:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), self.poll_interval_s)
            finally:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(OUTBOX_CHANNEL, self._on_notify)
                    await conn.execute("SELECT pg_advisory_unlock($1)", _RELAY_LOCK)

    def _on_notify(self, *_: Any) -> None:
        self._wakeup.set()

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            """SELECT id, topic, key, value, headers, extract(epoch FROM now() - created_at) AS age_s
                 FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1""",
            self.batch_max,
        )
        if not rows:
            OUTBOX_LAG.labels(self.service).set(0)
            return 0
        OUTBOX_LAG.labels(self.service).set(float(rows[0]["age_s"]))
        # Two waves: the statuses a supplier reads (SPEC §12.3) are sent and acknowledged before
        # the rest of the batch, so nothing a later step causes from this batch's events (matching's
        # UQ/AP after intake's invoice.accepted, payout_release's PD after approved_to_pay) can
        # reach the topic ahead of them — not even when a send fails and the batch is sent again.
        first = [r for r in rows if r["topic"].endswith(_SENT_FIRST)]
        rest = [r for r in rows if not r["topic"].endswith(_SENT_FIRST)] if first else rows
        for wave in (first, rest):
            futures = []
            for row in wave:
                headers = row["headers"] if isinstance(row["headers"], dict) else json.loads(row["headers"])
                futures.append(
                    await self.producer.send(
                        row["topic"],
                        value=bytes(row["value"]),
                        key=row["key"].encode(),
                        headers=[(k, str(v).encode()) for k, v in headers.items()],
                    )
                )
            # All or nothing: if any send fails, nothing is marked and the whole batch is retried,
            # so no later row of a key is ever marked published ahead of a failed earlier one.
            await asyncio.gather(*futures)
        # The ids as a literal (bigints read from this table: nothing to escape), not a parameter:
        # planned with the real list every time, so the primary key is used however the outbox has
        # grown. With a parameter, a generic plan made while the table was small can stay a
        # sequential scan comparing every row with every id (the inbox lookup did: see
        # BatchProcessor.process). Forcing custom plans on this connection slowed the SELECT above.
        sent = ",".join(str(int(r["id"])) for r in rows)
        mark = f"UPDATE outbox SET published_at = now() WHERE id = ANY('{{{sent}}}'::bigint[])"
        if conn.is_in_transaction():  # a caller's transaction: its commit decides
            await conn.execute(mark)
        else:
            # Committed without waiting for its WAL flush (synchronous_commit off for this
            # transaction only, in the one round trip the UPDATE took alone): a mark lost to a
            # server crash only re-publishes rows the broker already acknowledged, which consumers
            # dedupe by event_id — the path a relay crash between publish and mark always took.
            # Every other transaction (inbox, outbox rows, the services' state) still commits
            # synchronously. 10–40% less of the relay backend's CPU per row (bench/outbox_cost.py).
            await conn.execute(f"BEGIN; SET LOCAL synchronous_commit = off; {mark}; COMMIT")
        OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)


async def prune_published(conn: asyncpg.Connection, older_than_days: int) -> int:
    result = await conn.execute(
        "DELETE FROM outbox WHERE published_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(result.split()[-1])
