"""The SQL payout release needs, in one place. Functions take a connection inside the caller's
transaction; none of them commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.payout_release.domain import (
    Block,
    Candidate,
    FundingAccount,
    PayeeStanding,
    PayoutStatus,
    PlannedPayout,
    PoInForce,
    RailKind,
)

# All payout runs of one database take this lock for their transaction: two instances (or a
# scheduled and a requested run) never plan from the same funding at once. The funding CHECK
# and the one-live-payout-per-invoice index hold even if something bypassed it.
RUN_LOCK = "payout_release:payout_run"


class FundingOverdrawn(RuntimeError):
    """A reservation found less available funding than the plan assumed: roll the run back."""


# --- payees, POs, invoices -----------------------------------------------------------------


async def save_payee_standing(
    conn: asyncpg.Connection,
    payee_id: str,
    standing: PayeeStanding,
    profile_version: int | None,
    evaluated_at: datetime,
) -> bool:
    """Keep the latest evaluation; an older one arriving late changes nothing."""
    row = await conn.fetchrow(
        """INSERT INTO payees (payee_id, eligible, reasons, profile_version, evaluated_at, payout_account_ref)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (payee_id) DO UPDATE
              SET eligible = EXCLUDED.eligible, reasons = EXCLUDED.reasons,
                  profile_version = EXCLUDED.profile_version, evaluated_at = EXCLUDED.evaluated_at,
                  payout_account_ref = EXCLUDED.payout_account_ref, updated_at = now()
            WHERE payees.evaluated_at <= EXCLUDED.evaluated_at
           RETURNING payee_id""",
        payee_id,
        standing.eligible,
        list(standing.reasons),
        profile_version,
        evaluated_at,
        standing.payout_account_ref,
    )
    return row is not None


async def save_po_version(
    conn: asyncpg.Connection, po_number: str, version: int, effective_from: date, effective_to: date
) -> bool:
    """A newer version in force replaces an older one, never the reverse; closure is final."""
    row = await conn.fetchrow(
        """INSERT INTO purchase_orders (po_number, version_in_force, effective_from, effective_to)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (po_number) DO UPDATE
              SET version_in_force = EXCLUDED.version_in_force, effective_from = EXCLUDED.effective_from,
                  effective_to = EXCLUDED.effective_to, updated_at = now()
            WHERE purchase_orders.version_in_force IS NULL
               OR purchase_orders.version_in_force <= EXCLUDED.version_in_force
           RETURNING po_number""",
        po_number,
        version,
        effective_from,
        effective_to,
    )
    return row is not None


async def close_po(conn: asyncpg.Connection, po_number: str) -> None:
    await conn.execute(
        """INSERT INTO purchase_orders (po_number, closed) VALUES ($1, true)
           ON CONFLICT (po_number) DO UPDATE SET closed = true, updated_at = now()""",
        po_number,
    )


@dataclass(frozen=True)
class Approval:
    invoice_id: str
    payee_id: str
    legal_entity: str
    business_unit: str
    currency: str
    document_type: str
    issue_date: date
    payable_amount: Decimal
    po_number: str | None
    po_version: int | None
    decision_id: str
    decided_at: datetime
    traceparent: str | None = None  # of the span that handled the approval: payout runs link to it


async def save_approval(conn: asyncpg.Connection, a: Approval) -> bool:
    """Matching's decisions for one invoice arrive in order (keyed by invoice_id); the
    decided_at guard only protects against a stale replay."""
    row = await conn.fetchrow(
        """INSERT INTO invoices (invoice_id, payee_id, approved, legal_entity, business_unit, currency,
                                 document_type, issue_date, payable_amount, po_number, po_version,
                                 decision_id, decided_at, traceparent)
           VALUES ($1, $2, true, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (invoice_id) DO UPDATE
              SET payee_id = EXCLUDED.payee_id, approved = true, legal_entity = EXCLUDED.legal_entity,
                  business_unit = EXCLUDED.business_unit, currency = EXCLUDED.currency,
                  document_type = EXCLUDED.document_type, issue_date = EXCLUDED.issue_date,
                  payable_amount = EXCLUDED.payable_amount, po_number = EXCLUDED.po_number,
                  po_version = EXCLUDED.po_version, decision_id = EXCLUDED.decision_id,
                  decided_at = EXCLUDED.decided_at, traceparent = EXCLUDED.traceparent,
                  updated_at = now()
            WHERE NOT invoices.superseded
              AND (invoices.decided_at IS NULL OR invoices.decided_at <= EXCLUDED.decided_at)
           RETURNING invoice_id""",
        a.invoice_id,
        a.payee_id,
        a.legal_entity,
        a.business_unit,
        a.currency,
        a.document_type,
        a.issue_date,
        a.payable_amount,
        a.po_number,
        a.po_version,
        a.decision_id,
        a.decided_at,
        a.traceparent,
    )
    return row is not None


async def invoice_traceparents(conn: asyncpg.Connection, invoice_ids: list[str]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT invoice_id, traceparent FROM invoices WHERE invoice_id = ANY($1) AND traceparent IS NOT NULL",
        invoice_ids,
    )
    return {r["invoice_id"]: r["traceparent"] for r in rows}


async def save_not_approved(
    conn: asyncpg.Connection,
    invoice_id: str,
    payee_id: str | None,
    po_number: str | None,
    decided_at: datetime,
) -> bool:
    """A hold or a revocation: the invoice stays known (a candidate that is blocked) but is not
    payable. Without a payee (a revocation of an invoice never seen) there is nothing to keep."""
    if payee_id is None:
        status = await conn.execute(
            """UPDATE invoices SET approved = false, decided_at = $2, updated_at = now()
                WHERE invoice_id = $1 AND (decided_at IS NULL OR decided_at <= $2)""",
            invoice_id,
            decided_at,
        )
        return bool(status != "UPDATE 0")
    row = await conn.fetchrow(
        """INSERT INTO invoices (invoice_id, payee_id, approved, po_number, decided_at)
           VALUES ($1, $2, false, $3, $4)
           ON CONFLICT (invoice_id) DO UPDATE SET approved = false, decided_at = EXCLUDED.decided_at,
                  updated_at = now()
            WHERE invoices.decided_at IS NULL OR invoices.decided_at <= EXCLUDED.decided_at
           RETURNING invoice_id""",
        invoice_id,
        payee_id,
        po_number,
        decided_at,
    )
    return row is not None


async def mark_superseded(conn: asyncpg.Connection, invoice_id: str) -> bool:
    status = await conn.execute(
        "UPDATE invoices SET superseded = true, approved = false, updated_at = now() WHERE invoice_id = $1",
        invoice_id,
    )
    return bool(status != "UPDATE 0")


async def live_payout_of(conn: asyncpg.Connection, invoice_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT payout_id FROM payout_invoices WHERE invoice_id = $1 AND live",
        invoice_id,
    )
    return str(value) if value is not None else None


# --- funding -------------------------------------------------------------------------------


async def record_funding(
    conn: asyncpg.Connection,
    *,
    funding_id: str,
    account_id: str,
    legal_entity: str,
    currency: str,
    amount: Decimal,
    received_at: datetime,
    event_id: str,
) -> str:
    """Credit the account once per funding_id. Returns applied | duplicate_funding | account_mismatch."""
    await conn.execute(
        """INSERT INTO funding_accounts (account_id, legal_entity, currency) VALUES ($1, $2, $3)
           ON CONFLICT (account_id) DO NOTHING""",
        account_id,
        legal_entity,
        currency,
    )
    account = await conn.fetchrow(
        "SELECT legal_entity, currency FROM funding_accounts WHERE account_id = $1 FOR UPDATE", account_id
    )
    if (account["legal_entity"], account["currency"]) != (legal_entity, currency):
        return "account_mismatch"
    inserted = await conn.fetchval(
        """INSERT INTO funding_receipts (funding_id, account_id, amount, received_at, event_id)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (funding_id) DO NOTHING RETURNING funding_id""",
        funding_id,
        account_id,
        amount,
        received_at,
        event_id,
    )
    if inserted is None:
        return "duplicate_funding"
    await conn.execute(
        "UPDATE funding_accounts SET received = received + $2 WHERE account_id = $1", account_id, amount
    )
    return "applied"


async def funding_account_owner(conn: asyncpg.Connection, account_id: str) -> tuple[str, str] | None:
    """The (legal_entity, currency) an account funds, once it has been funded."""
    row = await conn.fetchrow(
        "SELECT legal_entity, currency FROM funding_accounts WHERE account_id = $1", account_id
    )
    return None if row is None else (row["legal_entity"], row["currency"])


async def funding_accounts(conn: asyncpg.Connection) -> list[FundingAccount]:
    rows = await conn.fetch(
        """SELECT account_id, legal_entity, currency, received - reserved - consumed AS available
             FROM funding_accounts ORDER BY account_id"""
    )
    return [FundingAccount(r["account_id"], r["legal_entity"], r["currency"], r["available"]) for r in rows]


async def reserve_funding(conn: asyncpg.Connection, account_id: str, amount: Decimal) -> None:
    """Atomic check-and-reserve: succeeds only if the account still has `amount` available."""
    status = await conn.execute(
        """UPDATE funding_accounts SET reserved = reserved + $2
            WHERE account_id = $1 AND received - reserved - consumed >= $2""",
        account_id,
        amount,
    )
    if status == "UPDATE 0":
        raise FundingOverdrawn(f"funding account {account_id} has less than {amount} available")


async def apply_funding_effect(
    conn: asyncpg.Connection, account_id: str, effect: str, amount: Decimal
) -> None:
    change = {
        "consume": "reserved = reserved - $2, consumed = consumed + $2",
        "unreserve": "reserved = reserved - $2",
        "refund": "consumed = consumed - $2",
    }[effect]
    await conn.execute(f"UPDATE funding_accounts SET {change} WHERE account_id = $1", account_id, amount)


async def available_funding(conn: asyncpg.Connection, account_id: str) -> Decimal | None:
    value = await conn.fetchval(
        "SELECT received - reserved - consumed FROM funding_accounts WHERE account_id = $1", account_id
    )
    return value if value is None else Decimal(value)


# --- runs ----------------------------------------------------------------------------------


async def lock_runs(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", RUN_LOCK)


async def start_run(
    conn: asyncpg.Connection,
    run_id: str,
    *,
    trigger: str,
    requested_by: str | None,
    legal_entity: str | None,
    currency: str | None,
    executed_at: datetime,
) -> bool:
    """False when this run_id has already been executed (a redelivery or a restarted slot)."""
    inserted = await conn.fetchval(
        """INSERT INTO payout_runs (run_id, trigger, requested_by, legal_entity, currency, executed_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING RETURNING run_id""",
        run_id,
        trigger,
        requested_by,
        legal_entity,
        currency,
        executed_at,
    )
    return inserted is not None


async def candidates(conn: asyncpg.Connection) -> list[Candidate]:
    """Every invoice matching has decided on that is not superseded and not in a live payout."""
    rows = await conn.fetch(
        """SELECT i.* FROM invoices i
            WHERE NOT i.superseded
              AND NOT EXISTS (SELECT 1 FROM payout_invoices p WHERE p.invoice_id = i.invoice_id AND p.live)
            ORDER BY i.invoice_id"""
    )
    return [
        Candidate(
            invoice_id=r["invoice_id"],
            payee_id=r["payee_id"],
            approved=r["approved"],
            legal_entity=r["legal_entity"],
            business_unit=r["business_unit"],
            currency=r["currency"],
            document_type=r["document_type"] or "invoice",
            payable_amount=r["payable_amount"],
            issue_date=r["issue_date"],
            po_number=r["po_number"],
            po_version=r["po_version"],
        )
        for r in rows
    ]


async def payee_standings(conn: asyncpg.Connection, payee_ids: Sequence[str]) -> dict[str, PayeeStanding]:
    rows = await conn.fetch(
        """SELECT payee_id, eligible, reasons, payout_account_ref
             FROM payees JOIN unnest($1::text[]) AS wanted(payee_id) USING (payee_id)""",
        list(payee_ids),
    )
    return {
        r["payee_id"]: PayeeStanding(r["eligible"], tuple(r["reasons"]), r["payout_account_ref"])
        for r in rows
    }


async def pos_in_force(conn: asyncpg.Connection, po_numbers: Sequence[str]) -> dict[str, PoInForce]:
    rows = await conn.fetch(
        """SELECT po_number, version_in_force, closed, effective_from, effective_to
             FROM purchase_orders JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)""",
        list(po_numbers),
    )
    return {
        r["po_number"]: PoInForce(r["version_in_force"], r["closed"], r["effective_from"], r["effective_to"])
        for r in rows
    }


async def save_payout(conn: asyncpg.Connection, payout: PlannedPayout, released_at: datetime) -> None:
    """The payout, its invoices (the unique live index refuses a second live payout for an
    invoice) and its funding reservation, all in the run's transaction."""
    await conn.execute(
        """INSERT INTO payouts (payout_id, run_id, payee_id, payout_account_ref, legal_entity, currency,
                                funding_account_id, amount, status, released_at, status_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'released', $9, $9)""",
        payout.payout_id,
        payout.run_id,
        payout.payee_id,
        payout.payout_account_ref,
        payout.legal_entity,
        payout.currency,
        payout.funding_account_id,
        payout.amount,
        released_at,
    )
    await conn.executemany(
        "INSERT INTO payout_invoices (payout_id, invoice_id, amount) VALUES ($1, $2, $3)",
        [(payout.payout_id, line.invoice_id, line.amount) for line in payout.lines],
    )
    await reserve_funding(conn, payout.funding_account_id, payout.amount)


async def save_blocks(conn: asyncpg.Connection, run_id: str, blocks: Sequence[Block]) -> None:
    if blocks:
        await conn.executemany(
            "INSERT INTO payout_blocks (run_id, invoice_id, payee_id, reasons) VALUES ($1, $2, $3, $4)",
            [(run_id, b.invoice_id, b.payee_id, list(b.reasons)) for b in blocks],
        )
        await conn.executemany(
            """INSERT INTO published_blocks (invoice_id, reasons, run_id) VALUES ($1, $2, $3)
               ON CONFLICT (invoice_id) DO UPDATE
                   SET reasons = excluded.reasons, run_id = excluded.run_id, updated_at = now()""",
            [(b.invoice_id, list(b.reasons), run_id) for b in blocks],
        )


async def changed_blocks(conn: asyncpg.Connection, blocks: Sequence[Block]) -> list[Block]:
    """The blocks whose reasons differ from the last ones published for that invoice."""
    if not blocks:
        return []
    rows = await conn.fetch(
        "SELECT invoice_id, reasons FROM published_blocks WHERE invoice_id = ANY($1::text[])",
        [b.invoice_id for b in blocks],
    )
    last = {r["invoice_id"]: tuple(r["reasons"]) for r in rows}
    return [b for b in blocks if last.get(b.invoice_id) != tuple(b.reasons)]


async def clear_published_blocks(conn: asyncpg.Connection, invoice_ids: Sequence[str]) -> None:
    """A released invoice's old block no longer answers anything; if it is blocked again later
    (a failed payout), that block is news."""
    if invoice_ids:
        await conn.execute(
            "DELETE FROM published_blocks WHERE invoice_id = ANY($1::text[])", list(invoice_ids)
        )


async def finish_run(conn: asyncpg.Connection, run_id: str, released: int, blocked: int) -> None:
    await conn.execute(
        "UPDATE payout_runs SET released_count = $2, blocked_count = $3 WHERE run_id = $1",
        run_id,
        released,
        blocked,
    )


# --- rail responses ------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutRow:
    payout_id: str
    payee_id: str
    legal_entity: str
    currency: str
    funding_account_id: str
    amount: Decimal
    status: PayoutStatus
    invoice_ids: tuple[str, ...]


@dataclass(frozen=True)
class RecordedRailEvent:
    kind: RailKind
    data: dict[str, Any]  # the event's data as first received


async def record_rail_event(
    conn: asyncpg.Connection,
    rail_event_id: str,
    payout_id: str,
    kind: str,
    event_id: str,
    data: dict[str, Any],
) -> RecordedRailEvent | None:
    """Record a rail event by the rail's own id. None when it is new; else what was recorded
    first under that id (a replay under a new event_id, or a reuse with another body)."""
    inserted = await conn.fetchval(
        """INSERT INTO rail_events (rail_event_id, payout_id, kind, event_id, result, data)
           VALUES ($1, $2, $3, $4, 'received', $5) ON CONFLICT (rail_event_id) DO NOTHING
           RETURNING rail_event_id""",
        rail_event_id,
        payout_id,
        kind,
        event_id,
        data,
    )
    if inserted is not None:
        return None
    row = await conn.fetchrow("SELECT kind, data FROM rail_events WHERE rail_event_id = $1", rail_event_id)
    return RecordedRailEvent(row["kind"], row["data"])


async def set_rail_event_result(conn: asyncpg.Connection, rail_event_id: str, result: str) -> None:
    await conn.execute("UPDATE rail_events SET result = $2 WHERE rail_event_id = $1", rail_event_id, result)


async def payout_for_update(conn: asyncpg.Connection, payout_id: str) -> PayoutRow | None:
    row = await conn.fetchrow("SELECT * FROM payouts WHERE payout_id = $1 FOR UPDATE", payout_id)
    if row is None:
        return None
    invoice_ids = await conn.fetch(
        "SELECT invoice_id FROM payout_invoices WHERE payout_id = $1 ORDER BY invoice_id", payout_id
    )
    return PayoutRow(
        payout_id=row["payout_id"],
        payee_id=row["payee_id"],
        legal_entity=row["legal_entity"],
        currency=row["currency"],
        funding_account_id=row["funding_account_id"],
        amount=row["amount"],
        status=row["status"],
        invoice_ids=tuple(r["invoice_id"] for r in invoice_ids),
    )


async def set_payout_status(conn: asyncpg.Connection, payout_id: str, status: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE payouts SET status = $2, status_at = $3 WHERE payout_id = $1", payout_id, status, at
    )


async def make_invoices_payable_again(conn: asyncpg.Connection, payout_id: str) -> None:
    """The payout's invoices are payable again: a later run may pay them under a new payout."""
    await conn.execute("UPDATE payout_invoices SET live = false WHERE payout_id = $1", payout_id)
