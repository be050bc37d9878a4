"""The SQL payout release needs, in one place. Functions take a connection inside the caller's
transaction; none of them commits. Set-based: each takes or returns every subject of a batch
(`= ANY`, `unnest`), so a batch costs the same few statements whatever its size, and each
table is written once per batch. Domain objects in, domain objects out."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg

from services.payout_release.domain import (
    Approval,
    Block,
    Candidate,
    Expedite,
    ExpediteSubject,
    Funding,
    FundingAccount,
    InvoiceState,
    NotApproved,
    PayeeStanding,
    Payout,
    PlannedPayout,
    PoInForce,
    PoVersion,
    RailKind,
    RunRequest,
    Verdict,
)

# All payout runs of one database take this lock for their transaction: two instances (or a
# scheduled and a requested run) never plan from the same funding at once. The funding CHECK
# and the one-live-payout-per-invoice index hold even if something bypassed it.
RUN_LOCK = "payout_release:payout_run"

T = TypeVar("T")


class FundingOverdrawn(RuntimeError):
    """A reservation found less available funding than the plan assumed: roll the run back."""


# --- invoices: matching's decisions --------------------------------------------------------


async def invoice_states(conn: asyncpg.Connection, invoice_ids: Sequence[str]) -> dict[str, InvoiceState]:
    rows = await conn.fetch(
        "SELECT invoice_id, superseded, decided_at FROM invoices WHERE invoice_id = ANY($1::text[])",
        list(invoice_ids),
    )
    return {r["invoice_id"]: InvoiceState(r["superseded"], r["decided_at"]) for r in rows}


async def save_approvals(conn: asyncpg.Connection, approvals: Sequence[Approval]) -> None:
    """One row per invoice. The guard repeats the domain's: matching's decisions for one invoice
    arrive in order (keyed by invoice_id); decided_at only protects against a stale replay."""
    if not approvals:
        return
    await conn.execute(
        """INSERT INTO invoices (invoice_id, payee_id, approved, legal_entity, business_unit, currency,
                                 document_type, issue_date, payable_amount, po_number, po_version,
                                 decision_id, decided_at, traceparent)
           SELECT a.invoice_id, a.payee_id, true, a.legal_entity, a.business_unit, a.currency,
                  a.document_type, a.issue_date, a.payable_amount, a.po_number, a.po_version,
                  a.decision_id, a.decided_at, a.traceparent
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::date[], $8::numeric[], $9::text[], $10::int[], $11::text[],
                         $12::timestamptz[], $13::text[])
                  AS a(invoice_id, payee_id, legal_entity, business_unit, currency, document_type,
                       issue_date, payable_amount, po_number, po_version, decision_id, decided_at,
                       traceparent)
           ON CONFLICT (invoice_id) DO UPDATE
              SET payee_id = EXCLUDED.payee_id, approved = true, legal_entity = EXCLUDED.legal_entity,
                  business_unit = EXCLUDED.business_unit, currency = EXCLUDED.currency,
                  document_type = EXCLUDED.document_type, issue_date = EXCLUDED.issue_date,
                  payable_amount = EXCLUDED.payable_amount, po_number = EXCLUDED.po_number,
                  po_version = EXCLUDED.po_version, decision_id = EXCLUDED.decision_id,
                  decided_at = EXCLUDED.decided_at, traceparent = EXCLUDED.traceparent,
                  hold_reasons = '{}', updated_at = now()
            WHERE NOT invoices.superseded
              AND (invoices.decided_at IS NULL OR invoices.decided_at <= EXCLUDED.decided_at)""",
        *_columns(
            approvals,
            lambda a: (
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
            ),
        ),
    )


async def save_holds(conn: asyncpg.Connection, holds: Sequence[NotApproved]) -> None:
    """Held invoices stay known (candidates that are blocked) but are not payable."""
    if not holds:
        return
    await conn.execute(
        """INSERT INTO invoices (invoice_id, payee_id, approved, po_number, decided_at, hold_reasons)
           SELECT h.invoice_id, h.payee_id, false, h.po_number, h.decided_at,
                  string_to_array(h.reasons, ',')
             FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                  AS h(invoice_id, payee_id, po_number, decided_at, reasons)
           ON CONFLICT (invoice_id) DO UPDATE SET approved = false, decided_at = EXCLUDED.decided_at,
                  hold_reasons = EXCLUDED.hold_reasons, updated_at = now()
            WHERE invoices.decided_at IS NULL OR invoices.decided_at <= EXCLUDED.decided_at""",
        *_columns(
            holds, lambda h: (h.invoice_id, h.payee_id, h.po_number, h.decided_at, ",".join(h.reasons))
        ),
    )


async def save_revocations(conn: asyncpg.Connection, revocations: Sequence[NotApproved]) -> None:
    """A revocation changes only an invoice already known: there is no payee to keep otherwise."""
    if not revocations:
        return
    await conn.execute(
        """UPDATE invoices SET approved = false, decided_at = r.decided_at,
                  hold_reasons = string_to_array(r.reasons, ','), updated_at = now()
             FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS r(invoice_id, decided_at, reasons)
            WHERE invoices.invoice_id = r.invoice_id
              AND (invoices.decided_at IS NULL OR invoices.decided_at <= r.decided_at)""",
        *_columns(revocations, lambda r: (r.invoice_id, r.decided_at, ",".join(r.reasons))),
    )


async def mark_superseded(conn: asyncpg.Connection, invoice_ids: Sequence[str]) -> set[str]:
    """The invoices known here, now superseded (never approved again)."""
    rows = await conn.fetch(
        """UPDATE invoices SET superseded = true, approved = false, updated_at = now()
            WHERE invoice_id = ANY($1::text[]) RETURNING invoice_id""",
        list(invoice_ids),
    )
    return {r["invoice_id"] for r in rows}


async def live_payouts_of(conn: asyncpg.Connection, invoice_ids: Sequence[str]) -> dict[str, str]:
    """The live payout of each invoice that has one."""
    rows = await conn.fetch(
        "SELECT invoice_id, payout_id FROM payout_invoices WHERE invoice_id = ANY($1::text[]) AND live",
        list(invoice_ids),
    )
    return {r["invoice_id"]: r["payout_id"] for r in rows}


async def invoice_traceparents(conn: asyncpg.Connection, invoice_ids: Sequence[str]) -> dict[str, str]:
    if not invoice_ids:  # a run with nothing to pay (or no PO behind it): no round trip
        return {}
    rows = await conn.fetch(
        """SELECT invoice_id, traceparent FROM invoices
            WHERE invoice_id = ANY($1::text[]) AND traceparent IS NOT NULL""",
        list(invoice_ids),
    )
    return {r["invoice_id"]: r["traceparent"] for r in rows}


# --- payees and POs ------------------------------------------------------------------------


async def payee_evaluations(conn: asyncpg.Connection, payee_ids: Sequence[str]) -> dict[str, datetime]:
    """When each known payee's standing was last evaluated."""
    rows = await conn.fetch(
        "SELECT payee_id, evaluated_at FROM payees WHERE payee_id = ANY($1::text[])", list(payee_ids)
    )
    return {r["payee_id"]: r["evaluated_at"] for r in rows}


async def save_verdicts(conn: asyncpg.Connection, verdicts: Sequence[Verdict]) -> None:
    """Keep the latest evaluation of each payee; an older one arriving late changes nothing."""
    if not verdicts:
        return
    await conn.execute(
        """INSERT INTO payees (payee_id, eligible, reasons, profile_version, evaluated_at, payout_account_ref)
           SELECT v.payee_id, v.eligible, string_to_array(v.reasons, ','), v.profile_version,
                  v.evaluated_at, v.payout_account_ref
             FROM unnest($1::text[], $2::bool[], $3::text[], $4::int[], $5::timestamptz[], $6::text[])
                  AS v(payee_id, eligible, reasons, profile_version, evaluated_at, payout_account_ref)
           ON CONFLICT (payee_id) DO UPDATE
              SET eligible = EXCLUDED.eligible, reasons = EXCLUDED.reasons,
                  profile_version = EXCLUDED.profile_version, evaluated_at = EXCLUDED.evaluated_at,
                  payout_account_ref = EXCLUDED.payout_account_ref, updated_at = now(),
                  account_invalid = CASE WHEN payees.profile_version IS DISTINCT FROM EXCLUDED.profile_version
                                         THEN NULL ELSE payees.account_invalid END
            WHERE payees.evaluated_at <= EXCLUDED.evaluated_at""",
        *_columns(
            verdicts,
            lambda v: (
                v.payee_id,
                v.standing.eligible,
                # reason codes never hold a comma; ragged text[][] do not exist
                ",".join(v.standing.reasons),
                v.profile_version,
                v.evaluated_at,
                v.standing.payout_account_ref,
            ),
        ),
    )


async def po_versions(conn: asyncpg.Connection, po_numbers: Sequence[str]) -> dict[str, int | None]:
    """The version in force of each known PO (None when only its closure was heard)."""
    rows = await conn.fetch(
        "SELECT po_number, version_in_force FROM purchase_orders WHERE po_number = ANY($1::text[])",
        list(po_numbers),
    )
    return {r["po_number"]: r["version_in_force"] for r in rows}


async def save_po_versions(conn: asyncpg.Connection, versions: Sequence[PoVersion]) -> None:
    """A newer version in force replaces an older one, never the reverse; closure is final."""
    if not versions:
        return
    await conn.execute(
        """INSERT INTO purchase_orders (po_number, version_in_force, effective_from, effective_to,
                                       payment_terms)
           SELECT * FROM unnest($1::text[], $2::int[], $3::date[], $4::date[], $5::text[])
           ON CONFLICT (po_number) DO UPDATE
              SET version_in_force = EXCLUDED.version_in_force, effective_from = EXCLUDED.effective_from,
                  effective_to = EXCLUDED.effective_to, payment_terms = EXCLUDED.payment_terms,
                  updated_at = now()
            WHERE purchase_orders.version_in_force IS NULL
               OR purchase_orders.version_in_force <= EXCLUDED.version_in_force""",
        *_columns(
            versions, lambda v: (v.po_number, v.version, v.effective_from, v.effective_to, v.payment_terms)
        ),
    )


async def close_pos(conn: asyncpg.Connection, po_numbers: Sequence[str]) -> None:
    await conn.execute(
        """INSERT INTO purchase_orders (po_number, closed) SELECT DISTINCT unnest($1::text[]), true
           ON CONFLICT (po_number) DO UPDATE SET closed = true, updated_at = now()""",
        list(po_numbers),
    )


# --- funding -------------------------------------------------------------------------------


async def account_owners_for_update(
    conn: asyncpg.Connection, opening: Sequence[Funding]
) -> dict[str, tuple[str, str]]:
    """The (legal_entity, currency) each account funds, locked; an account not yet known is
    created for the first funding of it (`opening`: one per account)."""
    await conn.execute(
        """INSERT INTO funding_accounts (account_id, legal_entity, currency)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (account_id) DO NOTHING""",
        *_columns(opening, lambda f: (f.account_id, f.legal_entity, f.currency)),
    )
    rows = await conn.fetch(
        """SELECT account_id, legal_entity, currency FROM funding_accounts
            WHERE account_id = ANY($1::text[]) ORDER BY account_id FOR UPDATE""",
        [f.account_id for f in opening],
    )
    return {r["account_id"]: (r["legal_entity"], r["currency"]) for r in rows}


async def known_funding_ids(conn: asyncpg.Connection, funding_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT funding_id FROM funding_receipts WHERE funding_id = ANY($1::text[])", list(funding_ids)
    )
    return {r["funding_id"] for r in rows}


@dataclass(frozen=True)
class Receipt:
    funding: Funding
    event_id: str  # of the funding.received that carried it


async def credit_funding(conn: asyncpg.Connection, receipts: Sequence[Receipt]) -> None:
    """Each receipt once (funding_id is upstream's own dedupe key), each account credited once."""
    if not receipts:
        return
    await conn.execute(
        """INSERT INTO funding_receipts (funding_id, account_id, amount, received_at, event_id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::timestamptz[], $5::text[])""",
        *_columns(
            receipts,
            lambda r: (
                r.funding.funding_id,
                r.funding.account_id,
                r.funding.amount,
                r.funding.received_at,
                r.event_id,
            ),
        ),
    )
    await _lock_accounts(conn, sorted({r.funding.account_id for r in receipts}))
    await conn.execute(
        """UPDATE funding_accounts SET received = received + c.amount
             FROM (SELECT account_id, sum(amount) AS amount
                     FROM unnest($1::text[], $2::numeric[]) AS r(account_id, amount) GROUP BY account_id) AS c
            WHERE funding_accounts.account_id = c.account_id""",
        *_columns(receipts, lambda r: (r.funding.account_id, r.funding.amount)),
    )


async def funding_accounts(conn: asyncpg.Connection) -> list[FundingAccount]:
    rows = await conn.fetch(
        """SELECT account_id, legal_entity, currency, received - reserved - consumed AS available
             FROM funding_accounts ORDER BY account_id"""
    )
    return [FundingAccount(r["account_id"], r["legal_entity"], r["currency"], r["available"]) for r in rows]


async def _lock_accounts(conn: asyncpg.Connection, accounts: list[str]) -> None:
    """Row locks on these funding accounts, always taken in account order. An `UPDATE … FROM
    unnest(…)` locks in whatever order its join visits the rows, so two replicas recording rail
    answers (or one recording while the other runs payouts) deadlocked on two shared accounts.
    `NO KEY UPDATE`, the lock the UPDATE itself takes: it does not wait for the `KEY SHARE` locks
    a payout run's `INSERT INTO payouts` holds through its foreign key (FOR UPDATE did, and
    deadlocked with the run)."""
    await conn.execute(
        """SELECT 1 FROM funding_accounts WHERE account_id = ANY($1::text[])
            ORDER BY account_id FOR NO KEY UPDATE""",
        accounts,
    )


async def reserve_funding(conn: asyncpg.Connection, reservations: Mapping[str, Decimal]) -> None:
    """Atomic check-and-reserve of every account at once: each succeeds only if the account
    still has its amount available; any shortfall raises and the run rolls back."""
    if not reservations:
        return
    accounts = sorted(reservations)
    await _lock_accounts(conn, accounts)
    rows = await conn.fetch(
        """UPDATE funding_accounts AS f SET reserved = f.reserved + r.amount
             FROM unnest($1::text[], $2::numeric[]) AS r(account_id, amount)
            WHERE f.account_id = r.account_id AND f.received - f.reserved - f.consumed >= r.amount
        RETURNING f.account_id""",
        accounts,
        [reservations[a] for a in accounts],
    )
    short = set(accounts) - {r["account_id"] for r in rows}
    if short:
        raise FundingOverdrawn(f"funding accounts {sorted(short)} have less available than reserved")


async def change_funding(conn: asyncpg.Connection, changes: Mapping[str, tuple[Decimal, Decimal]]) -> None:
    """Apply rail responses' changes of (reserved, consumed) per account."""
    if not changes:
        return
    accounts = sorted(changes)
    await _lock_accounts(conn, accounts)
    await conn.execute(
        """UPDATE funding_accounts AS f SET reserved = f.reserved + c.reserved_change,
                  consumed = f.consumed + c.consumed_change
             FROM unnest($1::text[], $2::numeric[], $3::numeric[])
                  AS c(account_id, reserved_change, consumed_change)
            WHERE f.account_id = c.account_id""",
        accounts,
        [changes[a][0] for a in accounts],
        [changes[a][1] for a in accounts],
    )


async def available_funding(conn: asyncpg.Connection, account_id: str) -> Decimal | None:
    value = await conn.fetchval(
        "SELECT received - reserved - consumed FROM funding_accounts WHERE account_id = $1", account_id
    )
    return value if value is None else Decimal(value)


# --- runs ----------------------------------------------------------------------------------


async def lock_runs(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", RUN_LOCK)


async def run_executed(conn: asyncpg.Connection, run_id: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM payout_runs WHERE run_id = $1", run_id))


async def start_run(conn: asyncpg.Connection, run: RunRequest, executed_at: datetime) -> bool:
    """False when this run_id has already been executed (a redelivery or a restarted slot)."""
    inserted = await conn.fetchval(
        """INSERT INTO payout_runs (run_id, trigger, requested_by, legal_entity, currency, executed_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING RETURNING run_id""",
        run.run_id,
        run.trigger,
        run.requested_by,
        run.legal_entity,
        run.currency,
        executed_at,
    )
    return inserted is not None


CANDIDATES = """SELECT i.* FROM invoices i
                 WHERE NOT i.superseded AND NOT i.in_live_payout AND ($1::text IS NULL OR i.invoice_id = $1)
                   AND NOT EXISTS (SELECT 1 FROM payout_invoices p
                                    WHERE p.invoice_id = i.invoice_id AND p.live)
                 ORDER BY i.invoice_id"""


async def candidates(conn: asyncpg.Connection, only: str | None = None) -> list[Candidate]:
    """Every invoice matching has decided on that is not superseded and not in a live payout
    (`only`: just that invoice, for an expedite's single-invoice run). Read from the open
    invoices only (migration 0007: `in_live_payout`, kept by triggers on payout_invoices, leaves out
    the ones in a live payout, released or settled)."""
    rows = await conn.fetch(CANDIDATES, only)
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
    if not payee_ids:  # a run with nothing to pay (or no PO behind it): no round trip
        return {}
    rows = await conn.fetch(
        """SELECT payee_id, eligible, reasons, payout_account_ref, account_invalid
             FROM payees JOIN unnest($1::text[]) AS wanted(payee_id) USING (payee_id)""",
        list(payee_ids),
    )
    return {
        r["payee_id"]: PayeeStanding(
            r["eligible"], tuple(r["reasons"]), r["payout_account_ref"], r["account_invalid"]
        )
        for r in rows
    }


async def mark_payout_accounts_invalid(conn: asyncpg.Connection, failures: dict[str, str]) -> None:
    """SPEC §12.4: each failed payout's payee, while still on the account the payout went to,
    is blocked `payout_account_invalid` (a newer profile version clears it: save_verdicts)."""
    if not failures:
        return
    await conn.execute(
        """UPDATE payees SET account_invalid = f.code, updated_at = now()
             FROM unnest($1::text[], $2::text[]) AS f(payout_id, code)
             JOIN payouts p ON p.payout_id = f.payout_id
            WHERE payees.payee_id = p.payee_id
              AND payees.payout_account_ref IS NOT DISTINCT FROM p.payout_account_ref""",
        list(failures),
        list(failures.values()),
    )


async def pos_in_force(conn: asyncpg.Connection, po_numbers: Sequence[str]) -> dict[str, PoInForce]:
    if not po_numbers:  # a run with nothing to pay (or no PO behind it): no round trip
        return {}
    rows = await conn.fetch(
        """SELECT po_number, version_in_force, closed, effective_from, effective_to, payment_terms
             FROM purchase_orders JOIN unnest($1::text[]) AS wanted(po_number) USING (po_number)""",
        list(po_numbers),
    )
    return {
        r["po_number"]: PoInForce(
            r["version_in_force"], r["closed"], r["effective_from"], r["effective_to"], r["payment_terms"]
        )
        for r in rows
    }


async def save_payouts(
    conn: asyncpg.Connection,
    payouts: Sequence[PlannedPayout],
    reservations: Mapping[str, Decimal],
    released_at: datetime,
) -> None:
    """The payouts, their invoices (the unique live index refuses a second live payout for an
    invoice) and their funding reservations, all in the run's transaction."""
    if not payouts:
        return
    await conn.execute(
        """INSERT INTO payouts (payout_id, run_id, payee_id, payout_account_ref, legal_entity, currency,
                                funding_account_id, amount, discount, expedite, status, released_at,
                                status_at)
           SELECT p.*, 'released', $11, $11
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::numeric[], $9::numeric[], $10::jsonb[]) AS p""",
        *_columns(
            payouts,
            lambda p: (
                p.payout_id,
                p.run_id,
                p.payee_id,
                p.payout_account_ref,
                p.legal_entity,
                p.currency,
                p.funding_account_id,
                p.amount,
                p.discount,
                _expedite_json(p.expedite),
            ),
        ),
        released_at,
    )
    lines = [(p.payout_id, line.invoice_id, line.amount, line.discount) for p in payouts for line in p.lines]
    await conn.execute(
        """INSERT INTO payout_invoices (payout_id, invoice_id, amount, discount)
           SELECT * FROM unnest($1::text[], $2::text[], $3::numeric[], $4::numeric[])""",
        *_columns(lines, lambda line: line),
    )
    await reserve_funding(conn, reservations)


async def save_blocks(conn: asyncpg.Connection, run_id: str, blocks: Sequence[Block]) -> None:
    if not blocks:
        return
    ids, payees, reasons, not_before = _columns(
        blocks, lambda b: (b.invoice_id, b.payee_id, ",".join(b.reasons), b.not_before)
    )
    await conn.execute(
        """INSERT INTO payout_blocks (run_id, invoice_id, payee_id, reasons, not_before)
           SELECT $1, b.invoice_id, b.payee_id, string_to_array(b.reasons, ','), b.not_before
             FROM unnest($2::text[], $3::text[], $4::text[], $5::date[])
                  AS b(invoice_id, payee_id, reasons, not_before)""",
        run_id,
        ids,
        payees,
        reasons,
        not_before,
    )
    await conn.execute(
        """INSERT INTO published_blocks (invoice_id, reasons, run_id)
           SELECT b.invoice_id, string_to_array(b.reasons, ','), $1
             FROM unnest($2::text[], $3::text[]) AS b(invoice_id, reasons)
           ON CONFLICT (invoice_id) DO UPDATE
               SET reasons = excluded.reasons, run_id = excluded.run_id, updated_at = now()""",
        run_id,
        ids,
        reasons,
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


# --- expedites (SPEC §13.2) -------------------------------------------------------------------


async def expedite_subject(conn: asyncpg.Connection, invoice_id: str) -> ExpediteSubject | None:
    """What an expedite's refusal rules look at for one invoice (None: never heard of)."""
    row = await conn.fetchrow(
        """SELECT i.approved, i.superseded, i.hold_reasons,
                  EXISTS (SELECT 1 FROM payout_invoices p JOIN payouts o USING (payout_id)
                           WHERE p.invoice_id = i.invoice_id
                             AND (p.live OR o.status IN ('released', 'settled'))) AS released
             FROM invoices i WHERE i.invoice_id = $1""",
        invoice_id,
    )
    if row is None:
        return None
    return ExpediteSubject(row["approved"], row["superseded"], row["released"], tuple(row["hold_reasons"]))


def _expedite_json(expedite: Expedite | None) -> str | None:
    if expedite is None:
        return None
    return json.dumps(
        {
            "expedite_id": expedite.expedite_id,
            "requested_by": expedite.requested_by,
            "approved_by": expedite.approved_by,
            "justification": expedite.justification,
        }
    )


# --- rail responses ------------------------------------------------------------------------


async def recorded_rail_events(
    conn: asyncpg.Connection, rail_event_ids: Sequence[str]
) -> dict[str, tuple[RailKind, dict[str, Any]]]:
    """What was first received under each rail event id already seen: its kind and data."""
    rows = await conn.fetch(
        "SELECT rail_event_id, kind, data FROM rail_events WHERE rail_event_id = ANY($1::text[])",
        list(rail_event_ids),
    )
    return {r["rail_event_id"]: (r["kind"], r["data"]) for r in rows}


async def payouts_for_update(conn: asyncpg.Connection, payout_ids: Sequence[str]) -> dict[str, Payout]:
    rows = await conn.fetch(
        """SELECT p.*, ARRAY(SELECT invoice_id FROM payout_invoices i
                              WHERE i.payout_id = p.payout_id ORDER BY invoice_id) AS invoice_ids
             FROM payouts p WHERE p.payout_id = ANY($1::text[]) ORDER BY p.payout_id FOR UPDATE OF p""",
        list(payout_ids),
    )
    return {
        r["payout_id"]: Payout(
            payout_id=r["payout_id"],
            payee_id=r["payee_id"],
            legal_entity=r["legal_entity"],
            currency=r["currency"],
            funding_account_id=r["funding_account_id"],
            amount=r["amount"],
            status=r["status"],
            invoice_ids=tuple(r["invoice_ids"]),
            discount=r["discount"],
        )
        for r in rows
    }


@dataclass(frozen=True)
class RailRecord:
    """A rail event kept under the rail's own id, with what it did."""

    rail_event_id: str
    payout_id: str
    kind: RailKind
    event_id: str
    result: str
    data: dict[str, Any]  # the event's data as received


async def save_rail_events(conn: asyncpg.Connection, records: Sequence[RailRecord]) -> None:
    if not records:
        return
    await conn.execute(
        """INSERT INTO rail_events (rail_event_id, payout_id, kind, event_id, result, data)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])""",
        *_columns(records, lambda r: (r.rail_event_id, r.payout_id, r.kind, r.event_id, r.result, r.data)),
    )


async def set_payout_statuses(conn: asyncpg.Connection, statuses: Mapping[str, tuple[str, datetime]]) -> None:
    """Each payout's new status and when it took it."""
    if not statuses:
        return
    ids = sorted(statuses)
    await conn.execute(
        """UPDATE payouts SET status = s.status, status_at = s.at
             FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS s(payout_id, status, at)
            WHERE payouts.payout_id = s.payout_id""",
        ids,
        [statuses[i][0] for i in ids],
        [statuses[i][1] for i in ids],
    )


async def make_invoices_payable_again(conn: asyncpg.Connection, payout_ids: Sequence[str]) -> None:
    """The payouts' invoices are payable again: a later run may pay them under a new payout."""
    if payout_ids:
        await conn.execute(
            "UPDATE payout_invoices SET live = false WHERE payout_id = ANY($1::text[])", list(payout_ids)
        )


def _columns(rows: Sequence[T], fields: Callable[[T], tuple[Any, ...]]) -> list[list[Any]]:
    """Rows → one list per column, for unnest."""
    values = [tuple(fields(r)) for r in rows]
    if not values:
        return []
    return [list(c) for c in zip(*values, strict=True)]
