"""Transactional outbox: rows written in the handler's transaction, published by one relay per service.

The relay is the only code that publishes a service's events (SPEC §1 rule 2). A crash between
publish and "mark published" re-publishes; consumers dedupe by event_id, so that is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, NamedTuple

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared.db import holds_session_state
from shared.envelope import Envelope, envelope_json
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
# Rows handed to the relay and not yet sent, at most: past it (a broker that does not answer) they
# are dropped from memory and selected from the table once the broker is back.
_HANDED_MAX = 5000


@dataclass(frozen=True)
class OutboxMessage:
    topic: str  # the full topic name, prefix applied
    key: str
    envelope: Envelope
    headers: dict[str, str] = field(default_factory=dict)

    def value(self) -> bytes:
        return self._value

    @cached_property
    def _value(self) -> bytes:  # serialised once: for the outbox row and for a hand-off's send
        return envelope_json(self.envelope)

    @cached_property
    def row_headers(self) -> dict[str, str]:
        """The headers as stored in the row, and as sent."""
        return {"content-type": "application/json", **self.headers}


async def write_outbox(
    conn: asyncpg.Connection, messages: list[OutboxMessage], *, handed_off: bool = False
) -> None:
    """Insert in one statement that also NOTIFYs: the relay wakes at commit (a hint only, it
    also polls). `handed_off`: the caller gives the messages to this process's relay once the
    transaction has committed (OutboxRelay.hand_off)."""
    if messages:
        await conn.execute(
            f"WITH written AS ({OUTBOX_INSERT}) {notify_relay(handed_off)}", *outbox_columns(messages)
        )


# The outbox rows of a unit of work as `unnest` columns ($1…$6): outbox_columns(messages).
# The headers go as JSON text (orjson, once per row) cast by the server: as `jsonb[]` each dict was
# encoded by the pools' codec, json.dumps: 1.8% of intake's py-spy samples at 100 flows/s, and
# the only jsonb parameter its batches sent through the codec (37 codec calls for 27 records, 0 now).
OUTBOX_INSERT = """INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
           SELECT e, t, tp, k, v, h::jsonb
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[])
                  AS x(e, t, tp, k, v, h)
           ON CONFLICT (event_id) DO NOTHING"""
# pg_notify is NOTIFY as a function: delivered at commit, so it rides in the insert's statement
# (one round trip fewer per unit of work than a NOTIFY of its own).
NOTIFY_RELAY = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"
# This process's name in the notifications of rows it hands to its own relay (OutboxRelay.hand_off):
# that relay, already given them, need not select them again; any other relay must.
PROCESS_TOKEN = secrets.token_hex(8)
NOTIFY_RELAY_HANDED_OFF = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '{PROCESS_TOKEN}')"


def notify_relay(handed_off: bool) -> str:
    return NOTIFY_RELAY_HANDED_OFF if handed_off else NOTIFY_RELAY


def outbox_columns(messages: list[OutboxMessage]) -> list[list[Any]]:
    return [
        [m.envelope.event_id for m in messages],
        [m.envelope.event_type for m in messages],
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value() for m in messages],
        [orjson.dumps(m.row_headers).decode() for m in messages],
    ]


_DEFAULT_PARTITIONER = DefaultPartitioner()


@lru_cache(maxsize=8192)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def key_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's DefaultPartitioner (the Java client's murmur2, so a key lands on the same
    partition as from any other client), with each key's hash remembered: aiokafka's murmur2 is
    pure Python (10 µs a key here) and a relay sends many keys more than once (a PO's number keys
    its documents on concord.intake.documents). The partition is still taken from the topic's
    partitions of the moment, so a topic that grows is followed. Tested against DefaultPartitioner."""
    if key is None:
        return int(_DEFAULT_PARTITIONER(key, all_partitions, available))
    return all_partitions[_key_hash(key) % len(all_partitions)]


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer authenticated as the settings' principal (SPEC §11).
    Idempotence implies acks=all: a broker ack means the record is durable in the log.
    No linger: the relay hands a whole batch to the producer without yielding (send() only
    appends while the topic's metadata is known), so the records batch anyway; lingering only
    added its 2 ms to each wave of every hop."""
    return AIOKafkaProducer(
        **client_options(settings),
        enable_idempotence=True,
        partitioner=key_partitioner,
        linger_ms=0,
        max_request_size=8 * 1024 * 1024,
        request_timeout_ms=30000,
    )


class _Handed(NamedTuple):
    """A row handed to the relay, as it will be sent."""

    handed_at: float  # monotonic
    event_id: str
    topic: str
    key: str
    value: bytes
    headers: dict[str, str]


class OutboxRelay:
    """Publishes the outbox of one service database, as its only publisher (one leader at a time,
    by an advisory lock).

    Two ways rows reach it. Rows this process commits are handed to it in memory once their
    transaction has committed (`hand_off`): it sends them without selecting them again and marks
    them published a little later, many batches in one statement. Every other row — committed by
    another process (a replica), left unpublished by a crash or a failed send, or written before
    this relay led — is selected from the table, in id order, as before. The hand-off path is
    taken only while the relay is *caught up*: its last selection found every unpublished row,
    nothing has failed since and no other process has notified rows of its own. Otherwise it
    selects, and the selection covers what was handed off in the meantime (those rows are
    committed), so a row is never sent ahead of an earlier unpublished one of its process."""

    def __init__(
        self,
        service: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        batch_max: int = 500,
        poll_interval_s: float = 0.2,
        start_delay_s: float = 0.0,
        mark_interval_s: float = 0.25,
    ) -> None:
        self.start_delay_s = start_delay_s
        self.service = service
        self.pool = pool
        self.producer = producer
        self.batch_max = batch_max
        self.poll_interval_s = poll_interval_s
        # How long rows sent from a hand-off may wait to be marked published, with later ones.
        self.mark_interval_s = mark_interval_s
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.is_leader = False
        # Committed by this process, handed off, not yet sent, as they will be sent.
        self._handed: list[_Handed] = []
        self._unmarked: list[str] = []  # event ids sent from hand-offs, not yet marked published
        self._unmarked_since = 0.0
        self._caught_up = False
        self._must_select = True  # another process notified rows, or a poll interval passed
        self._lag = OUTBOX_LAG.labels(service)  # the metrics' children, made once
        self._published = OUTBOX_PUBLISHED.labels(service)

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def caught_up(self) -> bool:
        """Leading, and its last selection found every row it had not been handed."""
        return self.is_leader and self._caught_up

    def hand_off(self, messages: list[OutboxMessage]) -> None:
        """Rows this process has just committed (written with `handed_off=True`): sent by this
        relay if it leads; if it does not, the leader selects them (their NOTIFY names this
        process, which only this relay ignores)."""
        if self.is_leader and messages:
            if len(self._handed) >= _HANDED_MAX:  # the broker is slow or away: the table has them
                self._handed = []
                self._must_select = True
            now = time.monotonic()
            # What the send needs, not the message: its envelope (the payload as Python objects)
            # is three times the size of its bytes, and thousands wait here behind a slow send.
            self._handed.extend(
                _Handed(now, m.envelope.event_id, m.topic, m.key, m.value(), m.row_headers) for m in messages
            )
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
            # A session lock, LISTEN and a session setting: the pool resets this connection in
            # full on release.
            holds_session_state(conn)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
                self.is_leader = False
                await asyncio.sleep(2.0)
                return
            # Marks commit without waiting for their WAL flush: a mark lost to a server crash only
            # re-publishes rows the broker already acknowledged, which consumers dedupe by
            # event_id — the path a relay crash between publish and mark always took. This
            # connection writes nothing else (inbox, outbox rows, the services' state commit
            # synchronously). 10–40% less of the relay backend's CPU per row (bench/outbox_cost.py).
            await conn.execute("SET synchronous_commit = off")
            self._handed.clear()  # committed before it led: the first selection has them
            self._caught_up, self._must_select = False, True
            self.is_leader = True
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            try:
                while not self._stopping:
                    # Cleared before the round, not after the publish: a commit (NOTIFY, or a
                    # hand-off) that lands while this round is being sent is not in it, and its
                    # wake-up must survive to start the next round at once — cleared after the
                    # publish, those rows waited for the poll interval.
                    self._wakeup.clear()
                    if self._caught_up and not self._must_select:
                        await self._publish_handed()
                        more = bool(self._handed)
                    else:
                        self._must_select = False
                        await self._mark(conn)  # else the selection sends them again
                        more = await self._publish_selected(conn) >= self.batch_max
                        self._caught_up = not more  # the selection found every unpublished row
                    if self._unmarked and (
                        len(self._unmarked) >= self.batch_max
                        or time.monotonic() - self._unmarked_since >= self.mark_interval_s
                    ):
                        await self._mark(conn)
                    if not more:
                        await self._wait()
            finally:
                self.is_leader = False
                self._caught_up = False
                with contextlib.suppress(Exception):
                    await self._mark(conn)
                with contextlib.suppress(Exception):
                    await conn.remove_listener(OUTBOX_CHANNEL, self._on_notify)
                    await conn.execute("SELECT pg_advisory_unlock($1)", _RELAY_LOCK)

    async def _wait(self) -> None:
        """Until a wake-up; a poll interval without one means a selection next (the net under
        the notifications), and marks that come due end the wait too."""
        timeout = self.poll_interval_s
        if self._unmarked:
            timeout = min(timeout, max(0.0, self._unmarked_since + self.mark_interval_s - time.monotonic()))
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            if not self._unmarked or timeout >= self.poll_interval_s:
                self._must_select = True

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != PROCESS_TOKEN:  # rows this relay was not (or not surely) handed
            self._must_select = True
        self._wakeup.set()

    async def _publish_handed(self) -> int:
        handed = self._handed  # hand_off may replace the list while this round sends
        batch = handed[: self.batch_max]
        if not batch:
            return 0
        self._lag.set(time.monotonic() - batch[0].handed_at)
        await self._send([(h.topic, h.key, h.value, h.headers) for h in batch])
        del handed[: len(batch)]
        if not self._unmarked:
            self._unmarked_since = time.monotonic()
        self._unmarked.extend(h.event_id for h in batch)
        self._published.inc(len(batch))
        return len(batch)

    async def _mark(self, conn: asyncpg.Connection) -> None:
        """Mark the rows sent from hand-offs published, in one statement (a join: see
        BatchProcessor.process on `= ANY` and cached plans)."""
        if not self._unmarked:
            return
        ids = self._unmarked
        await conn.execute(
            """UPDATE outbox SET published_at = now()
                 FROM unnest($1::text[]) AS sent(event_id)
                WHERE outbox.event_id = sent.event_id AND outbox.published_at IS NULL""",
            ids,
        )
        self._unmarked = []

    async def publish_pending(self, conn: asyncpg.Connection) -> int:
        """One selection of unpublished rows, sent and marked published (in the caller's
        transaction, if it has one)."""
        return await self._publish_selected(conn)

    async def _publish_selected(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            """SELECT id, event_id, topic, key, value, headers,
                      extract(epoch FROM now() - created_at) AS age_s
                 FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1""",
            self.batch_max,
        )
        if not rows:
            self._lag.set(0)
            return 0
        self._lag.set(float(rows[0]["age_s"]))
        await self._send(
            [
                (
                    r["topic"],
                    r["key"],
                    bytes(r["value"]),
                    r["headers"] if isinstance(r["headers"], dict) else json.loads(r["headers"]),
                )
                for r in rows
            ]
        )
        # Handed off while this selection ran, and in it: sent already.
        if self._handed:
            selected = {r["event_id"] for r in rows}
            self._handed = [h for h in self._handed if h.event_id not in selected]
        # The ids as a literal (bigints read from this table: nothing to escape), not a parameter:
        # planned with the real list every time, so the primary key is used however the outbox has
        # grown. With a parameter, a generic plan made while the table was small can stay a
        # sequential scan comparing every row with every id (the inbox lookup did: see
        # BatchProcessor.process). Forcing custom plans on this connection slowed the SELECT above.
        sent = ",".join(str(int(r["id"])) for r in rows)
        await conn.execute(f"UPDATE outbox SET published_at = now() WHERE id = ANY('{{{sent}}}'::bigint[])")
        self._published.inc(len(rows))
        return len(rows)

    async def _send(self, rows: list[tuple[str, str, bytes, dict[str, Any]]]) -> None:
        """(topic, key, value, headers) in order. Two waves: the statuses a supplier reads
        (SPEC §12.3) are sent and acknowledged before the rest, so nothing a later step causes
        from these events (matching's UQ/AP after intake's invoice.accepted, payout_release's PD
        after approved_to_pay) can reach the topic ahead of them — not even when a send fails and
        the rows are sent again."""
        first = [r for r in rows if r[0].endswith(_SENT_FIRST)]
        rest = [r for r in rows if not r[0].endswith(_SENT_FIRST)] if first else rows
        for wave in (first, rest):
            futures = []
            for topic, key, value, headers in wave:
                futures.append(
                    await self.producer.send(
                        topic,
                        value=value,
                        key=key.encode(),
                        headers=[(k, str(v).encode()) for k, v in headers.items()],
                    )
                )
            # All or nothing: if any send fails, nothing is marked and every row is sent again,
            # so no later row of a key is ever marked published ahead of a failed earlier one.
            await asyncio.gather(*futures)


async def prune_published(conn: asyncpg.Connection, older_than_days: int) -> int:
    result = await conn.execute(
        "DELETE FROM outbox WHERE published_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(result.split()[-1])
