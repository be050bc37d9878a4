"""The one harness of every service's batch tests (issue 13, `tests/integration/*/test_batch*.py`).

- **A batch equals its records one by one.** The same records are delivered once as one batch and
  once as one batch each, on two fresh databases: what was published (ids, causes, payloads) and
  what was stored must be the same, but for what the clock stamps. Each service says what of its
  events and tables counts (`published`, `stored`): the harness does the rest the same way for all.
- **A batch costs the same statements whatever its size.** `statements` counts what one batch
  issues on a connection (testkit.sql.count_statements), so a test can hold 10 and 200 records of
  a kind to the same number, give or take a small constant.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.consumer import BatchProcessor, BatchResult, RawRecord, Router
from shared.outbox import OutboxMessage
from shared.settings import Settings
from testkit.sql import count_statements
from tests.support import deliver, scratch_pool, service_config

# What a service's test makes of the messages a delivery published, and of what its database holds.
Published = Callable[[Sequence[OutboxMessage]], list[Any]]
Stored = Callable[[asyncpg.Pool], Awaitable[Any]]

ENVELOPE_FIELDS = ("event_id", "event_type", "data", "causation_id", "correlation_id")


def envelopes(messages: Sequence[OutboxMessage]) -> list[dict[str, Any]]:
    """Each message's topic, key and envelope, less the instant it was written (`occurred_at`)."""
    out = []
    for m in messages:
        envelope = json.loads(m.value())
        out.append({"topic": m.topic, "key": m.key, **{f: envelope.get(f) for f in ENVELOPE_FIELDS}})
    return out


def tables(columns: Mapping[str, str]) -> Stored:
    """What the database holds: each table's `columns` ("*" for all), its rows in a stable order."""

    async def stored(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        async with pool.acquire() as conn:
            for table, selected in columns.items():
                rows = await conn.fetch(f"SELECT {selected} FROM {table}")
                out[table] = sorted((tuple(r) for r in rows), key=repr)
        return out

    return stored


@dataclass(frozen=True)
class Ended:
    """Where one way of delivering the records ended."""

    published: list[Any]
    stored: Any


@dataclass(frozen=True)
class Compared:
    batch: Ended  # the records as one batch
    one_by_one: Ended  # the same records, one batch each

    def assert_same(self) -> None:
        assert self.batch.published == self.one_by_one.published
        if isinstance(self.batch.stored, dict):  # table by table, so a failure names its table
            assert self.batch.stored.keys() == self.one_by_one.stored.keys()
            for part in self.batch.stored:
                assert self.batch.stored[part] == self.one_by_one.stored[part], part
        else:
            assert self.batch.stored == self.one_by_one.stored


@dataclass(frozen=True)
class BatchHarness:
    """One service's handlers, as its consumer runs them (no Kafka), on scratch databases."""

    router: Router
    stored: Stored
    published: Published = envelopes
    settings: Settings | None = None  # None: the service's defaults
    config: Any = None  # None: what the service's own loader makes of `settings`

    def processor(self) -> BatchProcessor:
        processor = BatchProcessor(self.router, self.settings or Settings(service=self.router.service))
        processor.config = (
            self.config
            if self.config is not None
            else service_config(self.router.service, processor.settings)
        )
        return processor

    async def compare(self, records: Sequence[RawRecord], *, before: Sequence[RawRecord] = ()) -> Compared:
        """`records` as one batch and as one batch each, both after `before` (one batch)."""
        service = self.router.service
        async with scratch_pool(service) as together, scratch_pool(service) as apart:
            if before:
                for pool in (together, apart):
                    await self._deliver(pool, before)
            batch = await self._deliver(together, records)
            each = [await self._deliver(apart, [r]) for r in records]
            return Compared(
                Ended(self.published(batch.outbox), await self.stored(together)),
                Ended(self.published([m for r in each for m in r.outbox]), await self.stored(apart)),
            )

    async def process(self, conn: asyncpg.Connection, records: Sequence[RawRecord]) -> BatchResult:
        """One batch of `records` on `conn`, in its own transaction."""
        async with conn.transaction():
            return await self.processor().process(conn, list(records))

    async def statements(self, conn: asyncpg.Connection, records: Sequence[RawRecord]) -> int:
        """The statements one batch of `records` issues on `conn`; every record must be handled."""
        async with count_statements(conn) as counted:
            result = await self.process(conn, records)
        assert result.handled == len(records), result
        return counted.count

    async def _deliver(self, pool: asyncpg.Pool, records: Sequence[RawRecord]) -> BatchResult:
        return await deliver(pool, self.router, *records, settings=self.settings, config=self.config)
