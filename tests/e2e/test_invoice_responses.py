"""Invoice Responses to the supplier (SPEC §12.3), through the five services as processes on real
Kafka and PostgreSQL: an invoice held, released and paid is answered AB, UQ, AP, PD in that order
on `concord.out.invoice-responses`; a redelivery and a rematch that changes nothing answer
nothing more; a rejected invoice is answered RE with its reasons. Every document validates
against the UBL 2.1 ApplicationResponse schema."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.envelope import new_envelope, utcnow
from shared.publish import Publisher
from shared.topics import (
    IN_COMMANDS,
    IN_FUNDING,
    IN_INVOICES,
    IN_PAYEES,
    IN_PURCHASE_ORDERS,
    IN_RAIL_EVENTS,
    IN_RECEIPTS,
    INTAKE_DOCUMENTS,
    OUT_INVOICE_RESPONSES,
    OUT_PAYOUTS,
)
from testkit import documents as doc
from testkit.documents import ts
from testkit.watch import TopicWatcher
from tests.e2e.conftest import Stack
from tests.ubl_schema import assert_valid

pytestmark = pytest.mark.e2e

PAYEE = "0192:987654325"  # Peppol participant ids: the responses carry a document
BUYER = "0088:7300010000001"


async def test_held_released_paid_and_rejected_invoices_are_answered_in_order(stack: Stack) -> None:
    today = utcnow().date()
    watcher = TopicWatcher(stack.settings, (OUT_INVOICE_RESPONSES, INTAKE_DOCUMENTS, OUT_PAYOUTS))
    await watcher.start()

    def responses(invoice_id: str) -> list[str]:
        return [
            x.data["status"]
            for x in watcher.of("invoice_response.issued", lambda d: d["invoice_id"] == invoice_id)
        ]

    po = doc.purchase_order(
        "PO-IR-1",
        payee_id=PAYEE,
        legal_entity=BUYER,
        currency="EUR",
        lines=[doc.po_line("1", "SKU-1", "goods", "10", "25.00")],
        effective_from=str(today - timedelta(days=10)),
        effective_to=str(today + timedelta(days=300)),
        approved_by="manager@example.com",  # within the shipped approval limits (SPEC §13.1)
        approved_at=ts(today - timedelta(days=10)),
    )
    invoice = doc.invoice(
        "inv-ir-1",
        number="INV-2026-0042",
        payee_id=PAYEE,
        legal_entity=BUYER,
        currency="EUR",
        issue_date=str(today),
        po_number="PO-IR-1",
        lines=[doc.invoice_line("1", "1", "10", "25.00")],
        tax_total="47.50",
    )
    wrong = doc.invoice(
        "inv-ir-2",
        number="INV-2026-0043",
        payee_id=PAYEE,
        legal_entity=BUYER,
        currency="EUR",
        issue_date=str(today),
        po_number="PO-IR-1",
        lines=[doc.invoice_line("1", "1", "1", "25.00")],
        tax_total="4.75",
        total_amount="99.99",  # not lines + tax
    )
    invoice_env = new_envelope("invoice.submitted", invoice, source="erp")
    receipt_env = new_envelope(
        "receipt.recorded",
        doc.receipt("GR-IR-1", "PO-IR-1", [doc.receipt_line("1", "1", "10")], received_at=ts(today)),
        source="wms",
    )
    async with Publisher(stack.settings, source="erp") as pub:
        profile = doc.payee_profile(
            PAYEE,
            country="DE",
            screened_at=ts(today - timedelta(days=30)),
            tax=doc.tax_form("W-8BEN-E", str(today - timedelta(days=100))),
            payout_account_ref="tok_ir",
        )
        await pub.publish_event(IN_PAYEES, PAYEE, "payee.profile_updated", profile)
        await pub.publish_event(
            IN_FUNDING,
            "fund-ir",
            "funding.received",
            doc.funding(
                "f-ir",
                account_id="fund-ir",
                legal_entity=BUYER,
                currency="EUR",
                amount="10000.00",
                received_at=ts(today),
            ),
        )
        await pub.publish_event(IN_PURCHASE_ORDERS, "PO-IR-1", "purchase_order.issued", po)
        await watcher.wait_until(
            lambda: bool(watcher.of("purchase_order.version_in_force")), 60, "PO-IR-1 in force"
        )

        # Invoiced before anything was received: acknowledged, then under query (missing receipt).
        await pub.publish(IN_INVOICES, PAYEE, invoice_env)
        await pub.publish_event(IN_INVOICES, PAYEE, "invoice.submitted", wrong)
        await watcher.wait_until(
            lambda: responses("inv-ir-1") == ["AB", "UQ"] and responses("inv-ir-2") == ["RE"],
            60,
            "AB, UQ for inv-ir-1 and RE for inv-ir-2",
        )

        # The goods arrive: the rematch approves it.
        await pub.publish(IN_RECEIPTS, "PO-IR-1", receipt_env)
        await watcher.wait_until(
            lambda: responses("inv-ir-1") == ["AB", "UQ", "AP"], 60, "AB, UQ, AP for inv-ir-1"
        )

        # A payout run releases it and the rail settles it.
        await pub.publish_event(
            IN_COMMANDS,
            "run-ir",
            "payout_run.requested",
            doc.payout_run("run-ir", requested_by="ops@example.com"),
        )
        await watcher.wait_until(lambda: bool(watcher.of("payout.released")), 60, "a payout released")
        [released] = [x.data for x in watcher.of("payout.released")]
        settled_env = new_envelope(
            "payout.settled",
            doc.payout_settled(
                released["payout_id"],
                rail_event_id="rail-ir-1",
                amount=released["amount"],
                currency="EUR",
                settled_at=ts(today),
            ),
            source="rail",
        )
        await pub.publish(IN_RAIL_EVENTS, released["payout_id"], settled_env)
        await watcher.wait_until(
            lambda: responses("inv-ir-1") == ["AB", "UQ", "AP", "PD"], 60, "AB, UQ, AP, PD for inv-ir-1"
        )

        # Redelivered (the same envelopes), replayed by the rail under a new envelope, and a
        # rematch that changes nothing: no new response.
        await pub.publish(IN_INVOICES, PAYEE, invoice_env)
        await pub.publish(IN_RECEIPTS, "PO-IR-1", receipt_env)
        await pub.publish(IN_RAIL_EVENTS, released["payout_id"], settled_env)
        await pub.publish_event(
            IN_RAIL_EVENTS,
            released["payout_id"],
            "payout.settled",
            settled_env.data,
        )
        await pub.publish_event(IN_COMMANDS, "inv-ir-1", "invoice.rematch_requested", doc.rematch("inv-ir-1"))
        await asyncio.sleep(5)
    await watcher.stop()

    assert responses("inv-ir-1") == ["AB", "UQ", "AP", "PD"]
    seen = watcher.of("invoice_response.issued", lambda d: d["invoice_id"] == "inv-ir-1")
    assert len({x.data["response_id"] for x in seen}) == 4
    assert all(x.key == "inv-ir-1" for x in seen)
    assert len({x.partition for x in seen}) == 1  # one partition: the order above is the order read
    assert [x.envelope["source"] for x in seen] == ["intake", "matching", "matching", "payout_release"]
    under_query = seen[1].data
    assert [(r["code"], r["action"], r["concord"]) for r in under_query["reasons"]] == [
        ("DEL", "NOA", "missing_receipt")
    ]
    for x in seen:
        assert x.data["supplier_invoice_number"] == "INV-2026-0042"
        assert (x.data["payee_id"], x.data["legal_entity"]) == (PAYEE, BUYER)
        assert_valid(x.data["document"])
        assert "<cbc:ID>INV-2026-0042</cbc:ID>" in x.data["document"]

    [rejected] = [
        x.data for x in watcher.of("invoice_response.issued", lambda d: d["invoice_id"] == "inv-ir-2")
    ]
    assert rejected["reasons"] and {r["action"] for r in rejected["reasons"]} == {"NIN"}
    assert "total_mismatch" in {r["concord"] for r in rejected["reasons"]}
    assert_valid(rejected["document"])
