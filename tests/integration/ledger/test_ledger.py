"""Ledger handlers on real PostgreSQL (no Kafka): posting, idempotency, arrival order,
append-only enforcement, invariants, trace, reconciliation and 1099-NEC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import asyncpg
import pytest

from services.ledger import queries
from services.ledger.handlers import router
from shared.consumer import BatchResult, RawRecord
from shared.contracts.outbound import JournalEntryPosted
from shared.envelope import Envelope
from tests.integration.ledger import flow
from tests.integration.ledger.flow import full_flow
from tests.support import deliver, emitted, scratch_pool

pytestmark = pytest.mark.integration

AP = f"liability:ap:{flow.PAYEE}"
FUNDING = f"asset:funding:{flow.ACCOUNT}"


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("ledger") as p:
        yield p


async def deliver_each(pool: asyncpg.Pool, *records: RawRecord) -> list[BatchResult]:
    """One batch per record, as separate polls would deliver them."""
    return [await deliver(pool, router, r) for r in records]


async def balances(pool: asyncpg.Pool) -> dict[str, D]:
    """account → debits − credits (single-currency flows)."""
    rows = await pool.fetch(
        "SELECT account, sum(debit) - sum(credit) AS b FROM journal_lines "
        "GROUP BY account HAVING sum(debit) <> sum(credit)"
    )
    return {r["account"]: r["b"] for r in rows}


async def entry_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM journal_entries"))


def journal_events(results: list[BatchResult]) -> list[dict[str, Any]]:
    return [e for r in results for e in emitted(r, "journal.entry_posted")]


async def run_full_flow(pool: asyncpg.Pool) -> list[BatchResult]:
    return await deliver_each(pool, *full_flow())


async def test_full_flow_posts_each_fact_per_spec_table_and_keeps_every_invariant(pool: asyncpg.Pool) -> None:
    results = await run_full_flow(pool)
    assert await balances(pool) == {
        "expense:marketing": D("200.00"),  # receipt at PO price: 4 × 50.00
        "expense:price_variance": D("4.00"),  # invoiced at 51.00
        "asset:input_tax": D("40.80"),
        FUNDING: D("1000.00") - D("244.80"),  # funded, then drawn at settlement
        "equity:funding:LE-1": D("-1000.00"),
        # GRNI accrued at receipt and relieved at approval; AP and in-transit back to zero
    }
    async with pool.acquire() as conn:
        assert await queries.check_invariants(conn) == []
    events = journal_events(results)
    kinds = [e["data"]["source_event_type"] for e in events]
    assert kinds == [
        "funding.received",
        "receipt.accepted",
        "invoice.approved_to_pay",
        "payout.released",
        "payout.settlement_recorded",
    ]
    for e in events:  # each announcement is a valid, balanced public journal.entry_posted
        posted = JournalEntryPosted.model_validate(e["data"])
        assert e["event_id"] != e["causation_id"]
        assert posted.entry_id.startswith("je_")
    approval = JournalEntryPosted.model_validate(events[2]["data"])
    assert approval.links.po_number == flow.PO and approval.links.po_version == 1
    assert approval.links.invoice_ids == ["INV-1"] and approval.links.receipt_ids == ["R-1"]
    assert approval.links.override_ids == ["OVR-1"]
    assert approval.links.approvals[0].by == "ap.lead@example.com"


async def test_journal_tables_refuse_update_delete_and_truncate(pool: asyncpg.Pool) -> None:
    await deliver(pool, router, flow.funding())
    statements = [
        "UPDATE journal_lines SET debit = debit + 1 WHERE debit > 0",
        "UPDATE journal_entries SET description = 'edited'",
        "DELETE FROM journal_lines",
        "DELETE FROM journal_entries",
        "TRUNCATE journal_lines, journal_entries",
    ]
    for sql in statements:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await pool.execute(sql)
    async with pool.acquire() as conn:  # not even a superuser skipping ordinary triggers
        await conn.execute("SET session_replication_role = replica")
        try:
            for sql in statements:
                with pytest.raises(asyncpg.PostgresError, match="append-only"):
                    await conn.execute(sql)
        finally:
            await conn.execute("RESET session_replication_role")
    assert await entry_count(pool) == 1
    assert await balances(pool) == {FUNDING: D("1000.00"), "equity:funding:LE-1": D("-1000.00")}


async def refused_at_commit(pool: asyncpg.Pool, entry_id: str, lines: list[str], refusal: str) -> None:
    """Write a journal entry with these lines (SQL value tuples) straight into the tables: the
    deferred balance check refuses it at commit with `refusal`, and nothing stays."""
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError, match=refusal):
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO journal_entries
                       (entry_id, source_event_id, source_event_type, fact_key, kind, description, posted_at)
                       VALUES ($1, 'evt_' || $1, 't', 'k', 'k', 'd', now())""",
                    entry_id,
                )
                if lines:
                    await conn.execute(
                        "INSERT INTO journal_lines (entry_id, line_no, account, currency, debit, credit)"
                        + " VALUES "
                        + ", ".join(lines)
                    )
    assert await entry_count(pool) == 0


async def test_an_unbalanced_entry_cannot_be_committed(pool: asyncpg.Pool) -> None:
    await refused_at_commit(
        pool, "je_x", ["('je_x', 1, 'a', 'USD', 1, 0)", "('je_x', 2, 'b', 'USD', 0, 2)"], "does not balance"
    )


async def test_an_entry_without_two_lines_cannot_be_committed(pool: asyncpg.Pool) -> None:
    await refused_at_commit(pool, "je_y", [], "fewer than two lines")


async def test_an_entry_off_in_one_of_two_currencies_names_it(pool: asyncpg.Pool) -> None:
    lines = [
        "('je_z', 1, 'a', 'EUR', 5, 0)",
        "('je_z', 2, 'b', 'EUR', 0, 5)",
        "('je_z', 3, 'a', 'USD', 1, 0)",
        "('je_z', 4, 'b', 'USD', 0, 2)",
    ]
    await refused_at_commit(pool, "je_z", lines, "does not balance in USD: -1")


async def test_a_redelivered_source_event_posts_once(pool: asyncpg.Pool) -> None:
    first = flow.funding()
    results = await deliver_each(pool, first, first)
    same_batch = await deliver(pool, router, first, first)
    assert await entry_count(pool) == 1
    assert results[1].duplicates == 1 and same_batch.duplicates == 2
    assert len(journal_events([*results, same_batch])) == 1


async def test_the_same_decision_republished_under_a_new_event_id_posts_once(pool: asyncpg.Pool) -> None:
    await deliver_each(pool, flow.po_in_force(), flow.receipt())
    results = await deliver_each(pool, flow.approved(event_id="evt_a"), flow.approved(event_id="evt_b"))
    assert [r.handled for r in results] == [1, 1]
    assert len(journal_events(results)) == 1
    assert await balances(pool) == {
        "expense:marketing": D("200.00"),
        "expense:price_variance": D("4.00"),
        "asset:input_tax": D("40.80"),
        AP: D("-244.80"),
    }


async def journal_snapshot(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    async with pool.acquire() as conn:
        return [
            (e.entry_id, e.source_event_id, e.source_event_type, e.kind, e.lines, e.links)
            for e in sorted(await queries.entries(conn), key=lambda e: e.entry_id)
        ]


async def test_receipt_before_po_posts_the_same_as_po_before_receipt() -> None:
    def records() -> tuple[RawRecord, RawRecord]:
        return flow.po_in_force(event_id="evt_po_v1"), flow.receipt(event_id="evt_receipt_1")

    async with scratch_pool("ledger") as po_first, scratch_pool("ledger") as receipt_first:
        po, rec = records()
        await deliver_each(po_first, po, rec)
        po, rec = records()
        pending = await deliver(receipt_first, router, rec)
        assert journal_events([pending]) == []  # nothing to value it at yet
        await deliver(receipt_first, router, po)
        snapshot = await journal_snapshot(po_first)
        assert snapshot == await journal_snapshot(receipt_first)
        assert len(snapshot) == 1 and snapshot[0][1] == "evt_receipt_1"
        async with receipt_first.acquire() as conn:
            assert await queries.check_invariants(conn) == []
            assert (await queries.reconcile(conn)).mismatches == ()


async def test_a_late_or_redelivered_po_version_leaves_the_latest_in_force(pool: asyncpg.Pool) -> None:
    # v2 raises the price; v1 and v2 arriving again (new event ids) must not value receipts at v1
    results = await deliver_each(
        pool,
        flow.po_in_force(),
        flow.po_in_force(version=2, unit_price="60.00"),
        flow.po_in_force(),
        flow.po_in_force(version=2, unit_price="60.00"),
        flow.receipt(),
    )
    [receipt_entry] = [
        JournalEntryPosted.model_validate(e["data"])
        for e in journal_events(results)
        if e["data"]["source_event_type"] == "receipt.accepted"
    ]
    assert receipt_entry.links.po_version == 2
    credits = {ln.account: ln.credit for ln in receipt_entry.lines if ln.credit}
    assert credits == {"liability:grni": D("240.00")}  # 4 received at v2's 60.00


async def test_receipt_reversal_reverses_its_entry(pool: asyncpg.Pool) -> None:
    results = await deliver_each(pool, flow.po_in_force(), flow.receipt(), flow.receipt_reversed())
    assert await balances(pool) == {}
    reversal = JournalEntryPosted.model_validate(journal_events(results)[-1]["data"])
    assert reversal.source_event_type == "receipt.reversal_accepted"
    assert {ln.account: ln.debit for ln in reversal.lines if ln.debit} == {"liability:grni": D("200.00")}


async def test_a_receipt_reversed_while_still_pending_never_posts(pool: asyncpg.Pool) -> None:
    await deliver_each(pool, flow.receipt(), flow.receipt_reversed(), flow.po_in_force())
    assert await entry_count(pool) == 0


async def test_a_receipt_whose_reversal_arrived_first_never_posts(pool: asyncpg.Pool) -> None:
    await deliver_each(pool, flow.po_in_force(), flow.receipt_reversed(), flow.receipt())
    assert await entry_count(pool) == 0


async def test_revoked_approval_is_reversed_and_a_later_approval_posts_again(pool: asyncpg.Pool) -> None:
    await deliver_each(pool, flow.po_in_force(), flow.receipt(), flow.approved(), flow.revoked())
    # back to receipt-only: the accrual sits in GRNI again, nothing owed to the payee
    assert await balances(pool) == {"expense:marketing": D("200.00"), "liability:grni": D("-200.00")}
    await deliver(pool, router, flow.approved(decision_id="DEC-3"))
    assert (await balances(pool))[AP] == D("-244.80")
    async with pool.acquire() as conn:
        assert await queries.check_invariants(conn) == []


@pytest.mark.parametrize(
    ("outcome", "ap", "funding"),
    [
        ("payout.failure_recorded", D("-244.80"), D("1000.00")),  # payable again, nothing drawn
        ("payout.settlement_recorded", None, D("755.20")),
    ],
)
async def test_rail_outcomes_move_in_transit(
    pool: asyncpg.Pool, outcome: str, ap: D | None, funding: D
) -> None:
    await deliver_each(
        pool, flow.funding(), flow.po_in_force(), flow.receipt(), flow.approved(), flow.released()
    )
    assert (await balances(pool))["liability:payouts_in_transit"] == D("-244.80")
    await deliver(pool, router, flow.rail(outcome))
    after = await balances(pool)
    assert "liability:payouts_in_transit" not in after
    assert after.get(AP) == ap and after[FUNDING] == funding
    async with pool.acquire() as conn:
        assert await queries.check_invariants(conn) == []


async def test_a_returned_payout_reinstates_the_payable_and_the_funding(pool: asyncpg.Pool) -> None:
    await run_full_flow(pool)
    await deliver(pool, router, flow.rail("payout.return_recorded", rail_event_id="RAIL-2"))
    after = await balances(pool)
    assert after[AP] == D("-244.80") and after[FUNDING] == D("1000.00")
    async with pool.acquire() as conn:
        assert await queries.check_invariants(conn) == []


async def test_a_replayed_rail_event_posts_once(pool: asyncpg.Pool) -> None:
    await run_full_flow(pool)
    before = await entry_count(pool)
    await deliver(pool, router, flow.rail("payout.settlement_recorded"))  # same rail_event_id, new event id
    assert await entry_count(pool) == before


async def test_invariants_catch_a_payout_the_journal_never_saw(pool: asyncpg.Pool) -> None:
    await run_full_flow(pool)
    await pool.execute(
        """INSERT INTO payouts (payout_id, run_id, payee_id, legal_entity, funding_account_id, currency,
                                amount, invoices, invoice_ids, released_at)
           VALUES ('PAY-X', 'RUN-X', $1, 'LE-1', $2, 'USD', 10, '[]'::jsonb, '{}', now())""",
        flow.PAYEE,
        flow.ACCOUNT,
    )
    async with pool.acquire() as conn:
        violated = {v.invariant for v in await queries.check_invariants(conn)}
        mismatches = (await queries.reconcile(conn)).mismatches
    assert violated == {
        "ap_is_approved_minus_released_plus_failed_returned",
        "in_transit_is_released_minus_settled_failed",
    }
    assert violated <= set(queries.INVARIANTS)
    assert mismatches == ("payout PAY-X was released but has no release entry",)


async def test_trace_of_an_invoice_returns_the_whole_chain(pool: asyncpg.Pool) -> None:
    await run_full_flow(pool)
    async with pool.acquire() as conn:
        t = await queries.trace(conn, "INV-1")
    assert t.ref_kind == "invoice"
    assert [(v.po_number, v.version, v.approved_by, v.created_by) for v in t.po_versions] == [
        (flow.PO, 1, "manager@example.com", "buyer@example.com")
    ]
    assert [(r.receipt_id, r.status) for r in t.receipts] == [("R-1", "posted")]
    assert [i.invoice_id for i in t.invoices] == ["INV-1"]
    assert [(h.hold_id, h.reason, h.open) for h in t.holds] == [("H-1", "price_mismatch", False)]
    assert [d.kind for d in t.decisions] == ["held", "approved_to_pay"]
    assert [(o.override_id, o.approved_by, o.reason_code, o.evidence) for o in t.overrides] == [
        ("OVR-1", "ap.lead@example.com", "price_agreed", ("mail://thread/123",))
    ]
    assert {a.by for a in t.approvals} == {"manager@example.com", "ap.lead@example.com"}
    assert [(p.payout_id, [o.outcome for o in p.outcomes]) for p in t.payouts] == [("PAY-1", ["settled"])]
    assert [e.kind for e in t.entries] == [
        "receipt",
        "invoice_approval",
        "payout_release",
        "payout_settlement",
    ]


@pytest.mark.parametrize("ref_kind", ["entry", "payout", "po"])
async def test_trace_from_an_entry_a_payout_or_a_po_reaches_the_invoice(
    pool: asyncpg.Pool, ref_kind: str
) -> None:
    await run_full_flow(pool)
    async with pool.acquire() as conn:
        settlement = await conn.fetchval(
            "SELECT entry_id FROM journal_entries WHERE kind = 'payout_settlement'"
        )
        ref = {"entry": settlement, "payout": "PAY-1", "po": flow.PO}[ref_kind]
        t = await queries.trace(conn, ref)
    assert t.ref_kind == ref_kind
    assert [i.invoice_id for i in t.invoices] == ["INV-1"]
    assert [v.version for v in t.po_versions] == [1]
    assert [r.receipt_id for r in t.receipts] == ["R-1"]
    assert [p.payout_id for p in t.payouts] == ["PAY-1"]


async def test_trace_of_an_unknown_reference_finds_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert not (await queries.trace(conn, "nope")).found


async def test_reconcile_reports_po_progress_balances_holds_and_stale_requisitions(
    pool: asyncpg.Pool,
) -> None:
    await deliver_each(
        pool,
        flow.funding(),
        flow.requisition("REQ-1", "2026-09-01T00:00:00Z"),  # converted: PO-100 names it
        flow.requisition("REQ-OLD", "2026-09-01T00:00:00Z"),
        flow.requisition("REQ-NEW", "2026-11-20T00:00:00Z"),
        flow.po_in_force(),
        flow.receipt(),
        flow.invoice_accepted(),
        flow.approved(),
        flow.released(),
        flow.held("INV-2"),
    )
    now = datetime(2026, 11, 21, tzinfo=UTC)
    async with pool.acquire() as conn:
        rec = await queries.reconcile(conn, now=now)
    [po] = rec.purchase_orders
    assert (po.ordered, po.received, po.approved, po.paid) == (D("500.00"), D("200.00"), D("244.80"), D(0))
    assert po.grni_outstanding == 0
    assert rec.in_transit_balance == {"USD": D("244.80")}
    assert [(a.ref, a.amount, a.bucket) for a in rec.in_transit_ageing] == [("PAY-1", D("244.80"), "0-30")]
    assert [r.requisition_id for r in rec.stale_requisitions] == ["REQ-OLD"]
    assert [(h.invoice_id, h.age_days) for h in rec.open_holds_by_reason["price_mismatch"]] == [("INV-2", 17)]
    assert rec.mismatches == ()


async def test_reconcile_shows_grni_ageing_for_received_but_not_invoiced(pool: asyncpg.Pool) -> None:
    await deliver_each(pool, flow.po_in_force(), flow.receipt())
    async with pool.acquire() as conn:
        rec = await queries.reconcile(conn, now=datetime(2027, 1, 15, tzinfo=UTC))
    assert rec.grni_balance == {"USD": D("200.00")}
    assert [(a.ref, a.amount, a.bucket) for a in rec.grni_ageing] == [(flow.PO, D("200.00"), "61-90")]


@pytest.mark.parametrize(
    ("year", "threshold", "reportable", "expected"),
    [
        (2026, D("200"), True, [(flow.PAYEE, "US", D("244.80"))]),
        (2026, D("600"), True, []),  # below the threshold
        (2025, D("0"), True, []),  # settled in another year
        (2026, D("0"), False, []),  # not tagged for 1099-NEC
    ],
)
async def test_1099_nec_totals(
    pool: asyncpg.Pool, year: int, threshold: D, reportable: bool, expected: list[tuple[str, str, D]]
) -> None:
    await run_full_flow(pool)
    await deliver(pool, router, flow.eligibility(reportable=reportable))
    async with pool.acquire() as conn:
        totals = await queries.totals_1099_nec(conn, year, threshold)
    assert [(t.payee_id, t.country, t.paid) for t in totals] == expected


async def test_a_reapproval_without_revocation_replaces_the_earlier_approval(pool: asyncpg.Pool) -> None:
    # matching re-approves (new decision id) when a rematch changes the approval, e.g. a new receipt
    await deliver_each(
        pool, flow.po_in_force(), flow.receipt(), flow.approved(), flow.approved(decision_id="DEC-9")
    )
    assert (await balances(pool))[AP] == D("-244.80")  # owed once, not twice
    async with pool.acquire() as conn:
        assert await queries.check_invariants(conn) == []
        assert (await queries.reconcile(conn)).mismatches == ()
        kinds = [
            (e.kind, e.reverses_entry_id is not None) for e in (await queries.trace(conn, "INV-1")).entries
        ]
    assert kinds == [("receipt", False), ("invoice_approval", False), ("invoice_approval", True)]


@pytest.mark.parametrize(
    "order", [(0, 1, 2, 3, 4, 5, 6), (6, 5, 4, 3, 2, 1, 0), (3, 0, 6, 2, 5, 1, 4), (4, 6, 1, 5, 0, 3, 2)]
)
async def test_any_arrival_order_across_topics_converges_to_the_same_journal(order: tuple[int, ...]) -> None:
    def records() -> list[RawRecord]:
        return [
            flow.funding(),
            flow.po_in_force(),
            flow.receipt(),
            flow.approved(),
            flow.released(),
            flow.rail("payout.settlement_recorded"),
            flow.eligibility(),
        ]

    def fixed_ids(rs: list[RawRecord]) -> list[RawRecord]:
        # the same event ids in both databases, as a replay of the same topics would have
        out = []
        for i, r in enumerate(rs):
            env = Envelope.model_validate_json(r.value)
            value = env.model_copy(update={"event_id": f"evt_{i}"}).model_dump_json().encode()
            out.append(RawRecord(r.topic, r.partition, r.offset, r.key, value, r.headers))
        return out

    async with scratch_pool("ledger") as in_order, scratch_pool("ledger") as shuffled:
        await deliver_each(in_order, *fixed_ids(records()))
        permuted = fixed_ids(records())
        await deliver_each(shuffled, *(permuted[i] for i in order))
        assert await journal_snapshot(in_order) == await journal_snapshot(shuffled)
        assert await balances(in_order) == await balances(shuffled)
        async with shuffled.acquire() as conn:
            assert await queries.check_invariants(conn) == []


async def test_an_old_approval_replayed_after_its_revocation_posts_nothing(pool: asyncpg.Pool) -> None:
    await deliver_each(
        pool, flow.po_in_force(), flow.receipt(), flow.approved(), flow.revoked(), flow.approved()
    )
    assert AP not in await balances(pool)
    async with pool.acquire() as conn:
        assert await queries.check_invariants(conn) == []
        assert (await queries.reconcile(conn)).mismatches == ()


async def test_the_whole_flow_in_one_batch_posts_the_same_as_one_record_per_batch(pool: asyncpg.Pool) -> None:
    result = await deliver(pool, router, flow.receipt(), *full_flow()[:3], *full_flow()[4:])
    assert result.handled == 9 and result.deadlettered == 0
    assert len(emitted(result, "journal.entry_posted")) == 5
    assert await balances(pool) == {
        "expense:marketing": D("200.00"),
        "expense:price_variance": D("4.00"),
        "asset:input_tax": D("40.80"),
        FUNDING: D("755.20"),
        "equity:funding:LE-1": D("-1000.00"),
    }
    async with pool.acquire() as conn:
        assert await queries.check_invariants(conn) == []
