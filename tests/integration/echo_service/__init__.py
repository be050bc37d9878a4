"""A minimal service on the shared machinery, to test at-least-once behaviour on real Kafka and PostgreSQL.

It credits funding accounts: each `funding.received` adds a row to `credits` and emits one balanced
`journal.entry_posted` with a fresh event id, so a record processed twice would show as two rows and
two outgoing events. Accounts named `flaky-*` fail their first two attempts; `always-fails` never succeeds;
for `locked-*` the handler waits at most 100 ms for an advisory lock on the account, which a test may
hold from another session (PostgreSQL's own lock_not_available, as a collision with another replica).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from shared.consumer import HandlerContext, Router
from shared.contracts.inbound import FundingReceived
from shared.service import Service
from shared.settings import Settings
from shared.topics import IN_FUNDING, OUT_JOURNAL

# It does the ledger's job on these topics (reads in.funding, writes out.journal and the deadletter),
# so it runs as the ledger would: principal `ledger`, consumer group `concord-ledger`, the ledger's ACLs.
router = Router("ledger", topics=[IN_FUNDING])
_attempts: Counter[str] = Counter()


@router.handles("funding.received")
async def on_funding_received(ctx: HandlerContext, data: FundingReceived) -> str:
    _attempts[data.funding_id] += 1
    if data.account_id == "always-fails" or (
        data.account_id.startswith("flaky") and _attempts[data.funding_id] <= 2
    ):
        raise RuntimeError(f"simulated handler failure for {data.funding_id}")
    if data.account_id.startswith("locked"):
        await ctx.conn.execute("SELECT set_config('lock_timeout', '100ms', true)")
        await ctx.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", data.account_id)
        await ctx.conn.execute("SELECT set_config('lock_timeout', '0', true)")
    await ctx.conn.execute(
        "INSERT INTO credits (funding_id, account_id, amount, pid) VALUES ($1, $2, $3, $4)",
        data.funding_id,
        data.account_id,
        data.amount,
        os.getpid(),
    )
    ctx.emit(
        OUT_JOURNAL,
        data.funding_id,
        "journal.entry_posted",
        {
            "entry_id": f"je_{data.funding_id}",
            "source_event_id": ctx.envelope.event_id,
            "source_event_type": ctx.envelope.event_type,
            "posted_at": ctx.now.isoformat(),
            "description": "funding received",
            "lines": [
                {
                    "account": f"asset:funding:{data.account_id}",
                    "currency": data.currency,
                    "debit": str(data.amount),
                },
                {
                    "account": f"equity:funding:{data.legal_entity}",
                    "currency": data.currency,
                    "credit": str(data.amount),
                },
            ],
            "links": {},
        },
    )
    return "credited"


def build_service(settings: Settings | None = None) -> Service:
    return Service(router, Path(__file__).parent / "migrations", settings=settings)


if __name__ == "__main__":
    build_service().main()
