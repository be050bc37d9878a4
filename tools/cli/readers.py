"""What the CLI reads from the services' own databases: the ledger's queries, matching's open holds.

The CLI is an operator tool, not a service: it may read a service's database (read-only) where
the service answers a question no topic carries (which holds are open right now). It reads as
`concord_reader` (SPEC §11), a login role with SELECT on ledger's and matching's tables only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db import connect as db_connect
from shared.settings import local_dsn

READER_ROLE = "concord_reader"


class CliDatabases(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_", extra="ignore")

    # Empty: the local stack's ledger and matching databases, as concord_reader.
    ledger_db_dsn: str = ""
    matching_db_dsn: str = ""
    pg_port: int = 54329

    @model_validator(mode="after")
    def _local_defaults(self) -> CliDatabases:
        self.ledger_db_dsn = self.ledger_db_dsn or local_dsn(READER_ROLE, "ledger", self.pg_port)
        self.matching_db_dsn = self.matching_db_dsn or local_dsn(READER_ROLE, "matching", self.pg_port)
        return self


class NotReachable(Exception):
    pass


@asynccontextmanager
async def connect(dsn: str, what: str) -> AsyncIterator[asyncpg.Connection]:
    try:
        conn = await db_connect(dsn, connect_timeout_s=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise NotReachable(f"cannot reach the {what} database ({exc}); is the stack up? (make up)") from None
    try:
        async with conn.transaction(readonly=True):
            yield conn
    finally:
        await conn.close()


_AGE = re.compile(r"^(\d+)\s*([dhm])$")


def parse_age(text: str) -> timedelta:
    """'2d', '12h', '90m' → a timedelta; anything else is refused with the accepted forms."""
    match = _AGE.match(text.strip().lower())
    if match is None:
        raise ValueError(f"cannot read the age {text!r}: use a number with d, h or m, e.g. 2d, 12h, 90m")
    n, unit = int(match.group(1)), match.group(2)
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]


@dataclass(frozen=True)
class OpenHoldRow:
    hold_id: str
    invoice_id: str
    po_number: str | None
    line_id: str | None
    reason: str
    queue: str
    owner: str
    opened_at: datetime
    due_by: datetime
    escalated: bool
    next_action: str


async def open_holds(
    conn: asyncpg.Connection, *, queue: str | None, opened_before: datetime | None
) -> list[OpenHoldRow]:
    rows = await conn.fetch(
        """SELECT hold_id, invoice_id, po_number, line_id, reason, queue, owner, opened_at, due_by,
                  escalated_at IS NOT NULL AS escalated, next_action
             FROM holds
            WHERE status = 'open'
              AND ($1::text IS NULL OR queue = $1)
              AND ($2::timestamptz IS NULL OR opened_at <= $2)
            ORDER BY opened_at, hold_id""",
        queue,
        opened_before,
    )
    return [OpenHoldRow(**dict(r)) for r in rows]
