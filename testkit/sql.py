"""Counting the SQL statements a handler batch issues on a connection: the proof that a handler is
set-based is that a batch of 10 records and a batch of 200 of the same kind cost the same number
of statements, give or take a small constant.

    async with pool.acquire() as conn, count_statements(conn) as counted:
        async with conn.transaction():
            await processor.process(conn, records)
    assert counted.count <= 12, counted.statements

It uses asyncpg's query logger (`Connection.add_query_logger`, asyncpg ≥ 0.29), which sees every
`execute`, `fetch`, `fetchrow`, `fetchval` and `executemany` on that connection, transaction
control (BEGIN, COMMIT, SAVEPOINT…) included. `executemany` is one call but one execution per
argument row on the server: `executions` counts it so (given a list of rows). What the logger
does not see, and this counter therefore cannot: COPY (`copy_records_to_table` and friends,
one statement per call in any case) and statements run through a prepared statement object
(`conn.prepare(...)`), nor anything run on another connection. asyncpg's own type
introspection (the first time a connection meets a type, e.g. `int[]`) is kept apart in
`driver`, not counted: it is the driver's, once per connection, not the handler's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sized
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from asyncpg import introspection

TRANSACTION_CONTROL = ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "ABORT")


@dataclass
class CountedStatements:
    """What a `count_statements` block saw, in order."""

    statements: list[str] = field(default_factory=list)  # one per client call
    executions: int = 0  # server-side executions: `executemany` counts one per argument row
    failed: int = 0  # calls that raised (they are counted too)
    # asyncpg's own type introspection, the first time a connection meets a type: not counted.
    driver: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Client calls: each `execute`/`fetch…` one, each `executemany` one."""
        return len(self.statements)

    @property
    def data_statements(self) -> list[str]:
        """The statements less transaction control (BEGIN, COMMIT, SAVEPOINT, …)."""
        return [s for s in self.statements if _first_word(s) not in TRANSACTION_CONTROL]

    def by_kind(self) -> dict[str, int]:
        """How many of each first keyword (SELECT, INSERT, WITH, …)."""
        kinds: dict[str, int] = {}
        for s in self.statements:
            kinds[_first_word(s)] = kinds.get(_first_word(s), 0) + 1
        return kinds


_INTROSPECTION = {introspection.INTRO_LOOKUP_TYPES, getattr(introspection, "INTRO_LOOKUP_TYPES_13", "")}


def _is_driver_introspection(sql: str) -> bool:
    return sql in _INTROSPECTION or "set_config('jit'" in sql


def _first_word(sql: str) -> str:
    words = sql.split(None, 1)
    return words[0].upper().rstrip(";") if words else ""


class count_statements:
    """Counts the statements issued on `conn` (an asyncpg Connection, or a pool's connection
    proxy) inside the `async with` block."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.counted = CountedStatements()

    def _log(self, logged: Any) -> None:
        if _is_driver_introspection(str(logged.query)):
            self.counted.driver.append(str(logged.query))
            return
        self.counted.statements.append(str(logged.query))
        args = logged.args
        # executemany's args: a sequence of argument rows; execute's: a tuple of arguments.
        if self._is_many(logged):
            self.counted.executions += len(args) if isinstance(args, Sized) else 1
        else:
            self.counted.executions += 1
        if logged.exception is not None:
            self.counted.failed += 1

    @staticmethod
    def _is_many(logged: Any) -> bool:
        # execute/fetch… log their arguments as the tuple of `*args`; executemany logs the
        # iterable of argument rows it was given, in practice a list (a generator is counted as
        # one execution: it is spent by then; a tuple of rows would be taken for one call).
        return not isinstance(logged.args, tuple)

    async def __aenter__(self) -> CountedStatements:
        self._conn.add_query_logger(self._log)
        return self.counted

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await loggers_caught_up()
        self._conn.remove_query_logger(self._log)


async def loggers_caught_up() -> None:
    """asyncpg hands each logged query to its loggers with loop.call_soon: let those run before a
    logger is removed or its count read (else the last statements of a block may be missed)."""
    for _ in range(3):
        await asyncio.sleep(0)
