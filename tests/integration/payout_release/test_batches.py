"""payout_release, a batch at a time: records that depend on each other in one batch end exactly
as they do one by one, and a batch costs the same statements whatever its size (issue 13)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from services.payout_release.config import PayoutConfig
from services.payout_release.domain import payout_id_for
from services.payout_release.handlers import router
from shared.consumer import RawRecord
from shared.topics import MATCHING_DECISIONS
from testkit.samples.payouts import (
    T0,
    approved,
    eligibility,
    funding,
    held,
    po_closed,
    po_in_force,
    rail,
    run_requested,
)
from tests.batches import BatchHarness, tables
from tests.integration.payout_release.test_handlers import SETTINGS
from tests.support import record, scratch_pool

pytestmark = pytest.mark.integration

# Every table payout_release writes, without the columns that say when a row was written.
STATE = {
    "payees": "payee_id, eligible, reasons, profile_version, evaluated_at, payout_account_ref",
    "purchase_orders": "po_number, version_in_force, effective_from, effective_to, closed",
    "invoices": """invoice_id, payee_id, approved, superseded, legal_entity, business_unit, currency,
                   document_type, issue_date, payable_amount, po_number, po_version, decision_id,
                   decided_at, traceparent IS NOT NULL""",
    "funding_accounts": "*",
    "funding_receipts": "*",
    "payout_runs": "*",
    "payouts": "*",
    "payout_invoices": "*",
    "payout_blocks": "*",
    "published_blocks": "invoice_id, reasons, run_id",
    "rail_events": "rail_event_id, payout_id, kind, event_id, result, data",
    "inbox": "event_id, event_type, business_ref, result",
}
HARNESS = BatchHarness(router, tables(STATE), settings=SETTINGS, config=PayoutConfig.load(SETTINGS))


def revoked(invoice_id: str) -> RawRecord:
    data = {
        "invoice_id": invoice_id,
        "po_number": "PO-1",
        "reason": "receipt reversed",
        "decided_at": T0.isoformat(),
        "decision_id": f"dec-r-{invoice_id}",
    }
    return record(MATCHING_DECISIONS, "invoice.approval_revoked", data, key=invoice_id)


def superseded(invoice_id: str) -> RawRecord:
    data = {"invoice_id": invoice_id, "superseded_by": f"{invoice_id}b", "po_number": "PO-1"}
    return record(MATCHING_DECISIONS, "invoice.superseded", data, key=invoice_id)


def payout(run_id: str, payee_id: str) -> str:
    return payout_id_for(run_id, payee_id, "EUR", "LE-1", "fund-1")


def a_day_of_records() -> list[RawRecord]:
    """Records about the same subjects, in an order where each depends on those before it."""
    return [
        eligibility("payee-1", False, "tax_form_missing", at=T0 - timedelta(hours=2)),
        eligibility("payee-1", True, at=T0 - timedelta(hours=1)),
        eligibility("payee-1", False, "aml_not_clear", at=T0 - timedelta(hours=3)),  # late: stale
        eligibility("payee-2"),
        po_in_force("PO-1", 1),
        po_in_force("PO-2", 2),
        po_in_force("PO-2", 1),  # older: ignored
        funding("500.00", funding_id="F1"),
        funding("500.00", funding_id="F1"),  # a replay: credited once
        funding("9.00", funding_id="F2", legal_entity="LE-2"),  # another entity's money: refused
        approved("inv-1", "100.00"),
        approved("inv-2", "50.00"),
        approved("inv-3", "70.00", payee_id="payee-2"),
        approved("inv-1", "100.00", decided_at=T0 - timedelta(hours=2)),  # an older decision: stale
        revoked("inv-2"),
        revoked("inv-9"),  # never seen: nothing to revoke
        held("inv-4", "payee-2"),
        superseded("inv-5"),
        po_closed("PO-3"),
        run_requested("run-A"),
        rail("payout.settled", payout("run-A", "payee-1"), "r1"),
        rail("payout.settled", payout("run-A", "payee-1"), "r1"),  # replayed under a fresh envelope
        rail("payout.returned", payout("run-A", "payee-1"), "r2"),
        rail("payout.failed", payout("run-A", "payee-2"), "r3"),
        rail("payout.settled", payout("run-A", "payee-2"), "r3", "70.00"),  # r3 reused: an anomaly
        rail("payout.settled", "payout_nobody", "r4"),
        run_requested("run-B"),
        run_requested("run-B"),  # the same run again: already executed
        revoked("inv-1"),  # after its release
    ]


async def test_one_batch_ends_exactly_as_one_record_at_a_time() -> None:
    compared = await HARNESS.compare(a_day_of_records())
    compared.assert_same()
    # The scenario does what it says: every kind of outcome is there.
    results = {r[3] for r in compared.batch.stored["inbox"]}
    assert {
        "stale_evaluation",
        "older_version",
        "duplicate_funding",
        "account_mismatch",
        "stale_decision",
        "revoked",
        "not_applied",
        "unknown_invoice",
        "run_executed",
        "run_already_executed",
        "settled",
        "duplicate_rail_event",
        "returned",
        "failed",
        "rail_event_id_reused",
        "unknown_payout",
        "revoked_after_release",
    } <= results
    types = [e["event_type"] for e in compared.batch.published]
    assert types.count("payout.released") == 4  # run-A pays two payees; run-B pays them again


async def test_statements_per_batch_do_not_grow_with_the_batch() -> None:
    payees = [f"payee-{n}" for n in range(210)]
    small, large = payees[:10], payees[10:]

    def settled(run_id: str, ps: Sequence[str]) -> list[RawRecord]:
        return [rail("payout.settled", payout(run_id, p), f"r-{p}") for p in ps]

    counts: dict[str, tuple[int, int]] = {}
    async with scratch_pool("payout_release") as pool, pool.acquire() as conn:
        await HARNESS.process(conn, [po_in_force("PO-1", 1), funding("1000000.00", funding_id="F1")])
        # asyncpg introspects array types once per connection: one batch of each kind first.
        await HARNESS.process(conn, [eligibility("warm"), approved("inv-warm", payee_id="warm")])
        await HARNESS.process(
            conn, [run_requested("run-warm"), *settled("run-warm", ["warm"]), revoked("inv-warm")]
        )
        counts["payee.eligibility_changed"] = (
            await HARNESS.statements(conn, [eligibility(p) for p in small]),
            await HARNESS.statements(conn, [eligibility(p) for p in large]),
        )
        # Approvals of 10 invoices and a run that pays them; then of 200 and a run that pays those.
        approve_small = await HARNESS.statements(conn, [approved(f"inv-{p}", payee_id=p) for p in small])
        run_small = await HARNESS.statements(conn, [run_requested("run-small")])
        approve_large = await HARNESS.statements(conn, [approved(f"inv-{p}", payee_id=p) for p in large])
        run_large = await HARNESS.statements(conn, [run_requested("run-large")])
        counts["invoice.approved_to_pay"] = (approve_small, approve_large)
        counts["payout_run.requested"] = (run_small, run_large)
        counts["payout.settled"] = (
            await HARNESS.statements(conn, settled("run-small", small)),
            await HARNESS.statements(conn, settled("run-large", large)),
        )
        counts["invoice.approval_revoked"] = (
            await HARNESS.statements(conn, [revoked(f"inv-{p}") for p in small]),
            await HARNESS.statements(conn, [revoked(f"inv-{p}") for p in large]),
        )
        counts["funding.received"] = (
            await HARNESS.statements(conn, [funding("1.00", funding_id=f"f-{n}") for n in range(10)]),
            await HARNESS.statements(conn, [funding("1.00", funding_id=f"f-{n}") for n in range(10, 210)]),
        )
        assert await conn.fetchval("SELECT count(*) FROM payouts WHERE run_id = 'run-large'") == 200
        assert await conn.fetchval("SELECT count(*) FROM payouts WHERE status = 'settled'") == 211
    for kind, (ten, two_hundred) in counts.items():
        assert two_hundred - ten <= 1, (kind, ten, two_hundred)


def interleaved_flows(flows: int, start: int = 0) -> list[RawRecord]:
    """What payout_release is handed under load: each flow's PO version and its invoice's
    approval, flow after flow (a run of one record each, were runs only consecutive)."""
    out: list[RawRecord] = []
    for n in range(start, start + flows):
        out += [
            po_in_force(f"PO-{n}", 1),
            approved(f"inv-{n}", po_number=f"PO-{n}", payee_id=f"payee-{n % 3}"),
        ]
    return out


async def test_interleaved_flows_end_as_one_record_at_a_time() -> None:
    """Records of different flows are grouped by type in the batch; records that keep their
    place (eligibility, a run, a revocation) and those of one flow (a stale approval after a
    newer one, a version after its successor) still act in the order they came."""
    records = [
        eligibility("payee-0"),
        eligibility("payee-1"),
        funding("1000.00", funding_id="F1"),
        *interleaved_flows(3),
        approved("inv-0", po_number="PO-0", payee_id="payee-0", decided_at=T0 - timedelta(hours=3)),  # stale
        po_in_force("PO-1", 2),
        po_in_force("PO-1", 1),  # older: ignored
        held("inv-9", "payee-1"),
        run_requested("run-A"),  # pays what was approved before it, not what comes after
        *interleaved_flows(3, start=3),
        revoked("inv-4"),
        eligibility("payee-2", False, "tax_form_missing"),
        *interleaved_flows(2, start=6),
        run_requested("run-B"),
    ]
    compared = await HARNESS.compare(records)
    compared.assert_same()
    results = {r[3] for r in compared.batch.stored["inbox"]}
    assert {"stale_decision", "older_version", "run_executed", "revoked"} <= results
    released = [e for e in compared.batch.published if e["event_type"] == "payout.released"]
    assert len(released) >= 2


async def test_statements_per_batch_of_interleaved_flows_do_not_grow_with_the_batch() -> None:
    async with scratch_pool("payout_release") as pool, pool.acquire() as conn:
        await HARNESS.process(conn, interleaved_flows(1, start=90_000))  # asyncpg's type introspection
        small = await HARNESS.statements(conn, interleaved_flows(10))
        large = await HARNESS.statements(conn, interleaved_flows(200, start=1_000))
    assert large - small <= 1, (small, large)
