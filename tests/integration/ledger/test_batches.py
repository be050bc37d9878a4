"""The ledger over batches: records that depend on each other give the same journal, the same
projection, the same outcomes and the same announcements in one batch as one batch each; and
the statements a batch costs do not grow with the batch (issue 13).

GRNI true-ups are the one exception by design, before and after the batch handlers: the
true-up runs once per batch and PO, after every record, so one batch may post one correction
where one batch each posted several (or none where they posted two that cancel). The balances
they leave are compared instead; every other entry must be identical (ids, lines, amounts)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import pytest

from services.ledger import queries
from services.ledger.handlers import router
from shared.consumer import RawRecord
from shared.outbox import OutboxMessage
from shared.topics import COMPLIANCE_ELIGIBILITY, IN_FUNDING
from tests.batches import BatchHarness
from tests.integration.ledger import flow
from tests.integration.ledger.flow import full_flow
from tests.support import record, scratch_pool

pytestmark = pytest.mark.integration

PROJECTION = {
    "requisitions": "requisition_id",
    "po_versions": "po_number, version",
    "po_amendments_pending": "po_number, version",
    "po_closures": "po_number",
    "receipts": "receipt_id",
    "invoices": "invoice_id",
    "payouts": "payout_id",
    "payout_outcomes": "rail_event_id",
    "funding_receipts": "funding_id",
    "payee_eligibility": "payee_id",
}


async def state(pool: asyncpg.Pool) -> dict[str, Any]:
    """Everything the ledger keeps, but for the instants and sequence numbers a run assigns."""
    async with pool.acquire() as conn:
        out: dict[str, Any] = {
            table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")]
            for table, order in PROJECTION.items()
        }
        out["decisions"] = [
            {k: v for k, v in dict(r).items() if k != "seq"}
            for r in await conn.fetch("SELECT * FROM decisions ORDER BY seq")
        ]
        out["entries"] = [
            {k: v for k, v in dict(r).items() if k != "posted_at"}
            for r in await conn.fetch(
                "SELECT * FROM journal_entries WHERE kind <> 'grni_true_up' ORDER BY entry_id"
            )
        ]
        out["lines"] = [
            dict(r)
            for r in await conn.fetch(
                """SELECT l.* FROM journal_lines l JOIN journal_entries e USING (entry_id)
                    WHERE e.kind <> 'grni_true_up' ORDER BY entry_id, line_no"""
            )
        ]
        out["balances"] = {
            (r["account"], r["currency"]): r["b"]
            for r in await conn.fetch(
                """SELECT account, currency, sum(debit) - sum(credit) AS b FROM journal_lines
                    GROUP BY account, currency HAVING sum(debit) <> sum(credit)"""
            )
        }
        out["inbox"] = {r["event_id"]: r["result"] for r in await conn.fetch("SELECT * FROM inbox")}
        out["violations"] = await queries.check_invariants(conn)
    return out


def announcements(messages: Sequence[OutboxMessage]) -> list[dict[str, Any]]:
    """What was emitted, but for the instant it was posted at and GRNI true-ups."""
    out = []
    for message in messages:
        env = json.loads(message.value())
        if env["data"].get("source_event_type") == "grni.true_up":
            continue
        env["data"].pop("posted_at", None)
        out.append({k: env[k] for k in ("event_id", "event_type", "causation_id", "correlation_id", "data")})
        out[-1]["key"] = message.key
    return out


HARNESS = BatchHarness(router, state, announcements)


SCENARIOS: dict[str, Callable[[], list[RawRecord]]] = {
    # an approval and its payout release of the same invoice, and everything before them
    "full_flow": full_flow,
    # a settlement and a return of one payout
    "settled_then_returned": lambda: [
        *full_flow(),
        flow.rail("payout.return_recorded", rail_event_id="RAIL-2", at="2026-11-07T08:00:00Z"),
    ],
    "failed_then_released_again": lambda: [
        *full_flow()[:-1],
        flow.rail("payout.failure_recorded"),
        flow.released(payout_id="PAY-2"),
    ],
    # two receipts of one PO line, one of them re-published, then one reversed twice
    "two_receipts_of_one_po_line": lambda: [
        flow.po_in_force(),
        flow.receipt("R-1", "4"),
        flow.receipt("R-2", "3"),
        flow.receipt("R-1", "4"),
        flow.receipt_reversed("R-2"),
        flow.receipt_reversed("R-2"),
    ],
    # receipts before their PO (pending), a reversal of one still pending, then the PO and a
    # price amendment: the rest post at the version in force when the PO arrives
    "receipts_before_their_po": lambda: [
        flow.receipt("R-1", "4"),
        flow.receipt("R-2", "2"),
        flow.receipt_reversed("R-2"),
        flow.po_in_force(),
        flow.po_in_force(version=2, unit_price="60.00"),
        flow.receipt("R-2", "2"),
    ],
    # a reversal seen before its receipt: the receipt never posts
    "reversal_before_its_receipt": lambda: [
        flow.po_in_force(),
        flow.receipt_reversed("R-1"),
        flow.receipt("R-1"),
    ],
    # an approval, the same decision re-published, a re-approval that replaces it, and the first
    # decision once more (its fact is in the journal: nothing to post)
    "approvals_of_one_invoice": lambda: [
        flow.po_in_force(),
        flow.receipt(),
        flow.approved(decision_id="DEC-1"),
        flow.approved(decision_id="DEC-1"),
        flow.approved(decision_id="DEC-3"),
        flow.approved(decision_id="DEC-1"),
    ],
    # a revocation, a second one with nothing left to reverse, a new approval, an old one again
    "revocations_of_one_invoice": lambda: [
        flow.po_in_force(),
        flow.receipt(),
        flow.approved(decision_id="DEC-1"),
        flow.revoked(decision_id="DEC-2"),
        flow.revoked(decision_id="DEC-4"),
        flow.approved(decision_id="DEC-5"),
        flow.approved(decision_id="DEC-1"),
    ],
    # funding for the account's owner, for another owner, and the first funding re-published
    "funding_of_one_account": lambda: [
        flow.funding("100.00"),
        funding_for("F-2", "LE-2"),
        funding_for("F-3", flow.ENTITY),
        flow.funding("100.00"),
    ],
    # an older evaluation arriving late does not win; a missing country keeps the known one
    "eligibility_of_one_payee": lambda: [
        eligibility_at("2026-11-02T00:00:00Z", country="US"),
        eligibility_at("2026-11-01T00:00:00Z", country="CA"),
        eligibility_at("2026-11-03T00:00:00Z", country=None),
    ],
    # three flows' documents and approvals interleaved as they arrive, a receipt before its PO,
    # a reversal (it keeps its place) and a price change after an approval: the batch groups
    # the records by type across flows and must still post what one by one posts
    "interleaved_flows": lambda: interleaved_flows(),
    "requisitions_and_closures": lambda: [
        flow.requisition("REQ-1", "2026-10-01T00:00:00Z"),
        flow.requisition("REQ-1", "2026-10-02T00:00:00Z"),
        flow.requisition("REQ-2", "2026-10-03T00:00:00Z"),
    ],
}


def of_flow(suffix: str, *records: RawRecord) -> list[RawRecord]:
    return [flow.renamed(r, suffix) for r in records]


def interleaved_flows() -> list[RawRecord]:
    (po_a, receipt_a, invoice_a, approved_a, receipt_a2, po_a2) = of_flow(
        "a",
        flow.po_in_force(),
        flow.receipt(),
        flow.invoice_accepted(),
        flow.approved(),
        flow.receipt("R-2", "3"),
        flow.po_in_force(version=2, unit_price="60.00"),
    )
    (receipt_b, po_b, invoice_b, approved_b, reversed_b) = of_flow(
        "b",
        flow.receipt(),
        flow.po_in_force(),
        flow.invoice_accepted(),
        flow.approved(),
        flow.receipt_reversed(),
    )
    (po_c, receipt_c, invoice_c, approved_c) = of_flow(
        "c", flow.po_in_force(), flow.receipt(), flow.invoice_accepted(), flow.approved()
    )
    return [
        po_a,
        receipt_b,
        receipt_a,
        po_b,
        po_c,
        invoice_a,
        receipt_c,
        approved_a,
        invoice_b,
        reversed_b,
        receipt_a2,
        invoice_c,
        approved_b,
        po_a2,
        approved_c,
    ]


def funding_for(funding_id: str, legal_entity: str) -> RawRecord:
    rec = flow.funding()
    env = json.loads(rec.value)
    data = env["data"] | {"funding_id": funding_id, "legal_entity": legal_entity}
    return record(IN_FUNDING, "funding.received", data, key=flow.ACCOUNT)


def eligibility_at(at: str, country: str | None) -> RawRecord:
    env = json.loads(flow.eligibility().value)
    data = env["data"] | {"evaluated_at": at}
    if country is None:
        data.pop("country")
    else:
        data["country"] = country
    return record(COMPLIANCE_ELIGIBILITY, "payee.eligibility_changed", data, key=flow.PAYEE)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_one_batch_ends_where_one_batch_each_ends(scenario: str) -> None:
    compared = await HARNESS.compare(SCENARIOS[scenario]())
    compared.assert_same()
    assert compared.batch.stored["violations"] == []


async def test_the_scenarios_post_what_they_say() -> None:
    """The scenarios above are not vacuous: they post, replace, reverse and refuse."""

    async def stored(scenario: str) -> dict[str, Any]:
        stored: dict[str, Any] = (await HARNESS.compare(SCENARIOS[scenario]())).batch.stored
        return stored

    one = await stored("approvals_of_one_invoice")
    assert list(one["inbox"].values()).count("posted") == 3  # the receipt, DEC-1, DEC-3 replacing it
    assert {"already_posted", "nothing_to_post"} <= set(one["inbox"].values())
    one = await stored("revocations_of_one_invoice")
    assert {"reversed", "nothing_to_reverse", "nothing_to_post"} <= set(one["inbox"].values())
    one = await stored("funding_of_one_account")
    assert sorted(one["inbox"].values()) == ["account_mismatch", "already_posted", "posted", "posted"]
    one = await stored("interleaved_flows")
    assert list(one["inbox"].values()).count("posted") >= 6  # receipts and approvals of three flows
    assert "pending_receipts_posted" in one["inbox"].values()  # flow b's receipt waited for its PO
    assert [r["status"] for r in one["receipts"] if r["receipt_id"].endswith("-b")] == ["reversed"]
    one = await stored("receipts_before_their_po")
    assert [r["status"] for r in one["receipts"]] == ["posted", "dropped"]
    assert "pending_receipts_posted" in one["inbox"].values()


# --- a constant number of statements per batch --------------------------------------------------


KINDS: dict[str, list[Callable[[], RawRecord]]] = {
    "funding": [flow.funding],
    "eligibility": [flow.eligibility],
    "po_version": [flow.po_in_force],
    "receipt": [flow.receipt],
    "receipt_then_po": [flow.receipt, flow.po_in_force],
    "reversal": [flow.receipt_reversed],
    "invoice": [flow.invoice_accepted],
    "held": [flow.held],
    "approval": [flow.approved],
    "revocation": [flow.revoked],
    "release": [flow.released],
    "settlement": [lambda: flow.rail("payout.settlement_recorded")],
    "flow": [
        flow.po_in_force,
        flow.receipt,
        flow.approved,
        flow.released,
        lambda: flow.rail("payout.settlement_recorded"),
    ],
}


def batch_of(kind: str, flows: int, start: int) -> list[RawRecord]:
    """`flows` independent flows, each of the kind's records, grouped by record (one run each)."""
    return [flow.renamed(make(), str(start + n)) for make in KINDS[kind] for n in range(flows)]


async def test_statements_per_batch_do_not_grow_with_the_batch() -> None:
    async with scratch_pool("ledger") as pool, pool.acquire() as conn:
        counts = {}
        for kind in KINDS:
            await HARNESS.statements(conn, batch_of(kind, 1, 90_000))  # asyncpg introspects array types once
            small = await HARNESS.statements(conn, batch_of(kind, 10, 0))
            large = await HARNESS.statements(conn, batch_of(kind, 200, 1_000))
            counts[kind] = (small, large)
        assert await queries.check_invariants(conn) == []
    grown = {kind: c for kind, c in counts.items() if c[1] - c[0] > 1}
    assert not grown, counts


def interleaved(flows: int, start: int) -> list[RawRecord]:
    """`flows` independent flows as they arrive: each flow's PO, receipt, invoice and approval
    one after the other, flow after flow (a run of one record each, were runs only consecutive)."""
    makers = [flow.po_in_force, flow.receipt, flow.invoice_accepted, flow.approved]
    return [flow.renamed(make(), str(start + n)) for n in range(flows) for make in makers]


async def test_statements_per_batch_of_interleaved_flows_do_not_grow_with_the_batch() -> None:
    """What a consumer is handed under load: the documents of many flows interleaved. The
    batch groups them by type across flows (their keys differ), so 200 flows cost what 10 do."""
    async with scratch_pool("ledger") as pool, pool.acquire() as conn:
        await HARNESS.statements(conn, interleaved(1, 90_000))
        small = await HARNESS.statements(conn, interleaved(10, 0))
        large = await HARNESS.statements(conn, interleaved(200, 1_000))
        assert await queries.check_invariants(conn) == []
    assert large - small <= 1, (small, large)


async def test_revoking_a_reapproval_leaves_nothing_approved() -> None:
    records = [
        flow.po_in_force(),
        flow.receipt(),
        flow.approved(decision_id="DEC-1"),
        flow.approved(decision_id="DEC-3"),
        flow.revoked(decision_id="DEC-2"),
    ]
    compared = await HARNESS.compare(records)
    compared.assert_same()  # the batch is not the cause: one by one ends the same
    assert compared.batch.stored["violations"] == []
