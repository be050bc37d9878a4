"""Invoice Responses (SPEC §12.3) from each service's handlers on a real PostgreSQL (no Kafka):
what each status is issued on, that nothing is issued twice for the same news, and that every
document validates against the UBL 2.1 ApplicationResponse schema. The same flow through the five
services on Kafka is tests/e2e/test_invoice_responses.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.intake.config import IntakeConfig
from services.intake.handlers import router as intake_router
from services.matching.handlers import router as matching_router
from shared.consumer import BatchResult
from shared.settings import Settings
from shared.topics import IN_INVOICES
from testkit import documents as doc
from testkit.samples import intake as b
from testkit.samples.payouts import approved, rail
from tests import support
from tests.integration.matching.test_handlers import CONFIG as MATCHING_CONFIG
from tests.integration.payout_release.test_handlers import _one_payout, ready, send
from tests.support import emitted, record, scratch_pool
from tests.ubl_schema import assert_valid

pytestmark = pytest.mark.integration
INTAKE_CONFIG = IntakeConfig.load(Settings(service="intake"))


def responses(result: BatchResult) -> list[dict[str, Any]]:
    out = [e["data"] for e in emitted(result, "invoice_response.issued")]
    for r in out:
        if r.get("document") is not None:
            assert_valid(r["document"])
    return out


def statuses(result: BatchResult) -> list[tuple[str, str, list[str]]]:
    return [(r["invoice_id"], r["status"], [x["concord"] for x in r["reasons"]]) for r in responses(result)]


# --- intake: AB and RE ------------------------------------------------------------------------


def _submitted(invoice_id: str, **changes: Any) -> Any:
    data = doc.invoice(
        invoice_id,
        number=f"N-{invoice_id}",
        payee_id=b.PAYEE,
        legal_entity=b.ENTITY,
        currency="EUR",
        issue_date="2026-03-02",
        lines=[doc.invoice_line("1", "L1", "1", "100.00")],
        tax_total="19.00",
        po_number="PO-9",
    )
    return record(IN_INVOICES, "invoice.submitted", data | changes, key=b.PAYEE)


async def test_intake_acknowledges_an_accepted_invoice_before_publishing_it_and_rejects_with_reasons() -> (
    None
):
    async with scratch_pool("intake") as pool:
        good, bad = _submitted("I-1"), _submitted("I-2", total_amount="1.00", currency="USD")
        result = await support.deliver(pool, intake_router, good, bad, config=INTAKE_CONFIG)
        assert [
            m.envelope.event_type for m in result.outbox if m.envelope.data.get("invoice_id") == "I-1"
        ] == [
            "invoice_response.issued",  # AB first: nothing later about I-1 can overtake it
            "invoice.accepted",
        ]
        [ab, re] = responses(result)
        assert (ab["invoice_id"], ab["status"], ab["reasons"]) == ("I-1", "AB", [])
        assert (ab["supplier_invoice_number"], ab["payee_id"], ab["legal_entity"]) == (
            "N-I-1",
            b.PAYEE,
            b.ENTITY,
        )
        assert re["invoice_id"] == "I-2" and re["status"] == "RE"
        rejected = emitted(result, "document.rejected")[0]["data"]["reasons"]
        assert [r["concord"] for r in re["reasons"]] == list(dict.fromkeys(r["code"] for r in rejected))
        assert all(r["code"] in ("OTH", "REF") and r["action"] == "NIN" for r in re["reasons"])

        # A redelivery, and the same invoice under a new envelope: nothing new.
        again = await support.deliver(pool, intake_router, good, _submitted("I-1"), config=INTAKE_CONFIG)
        assert responses(again) == []
        # Another document under the accepted invoice's id is refused, but I-1 stays acknowledged:
        # no RE is issued under its id.
        reuse = await support.deliver(
            pool, intake_router, _submitted("I-1", tax_total="0.00"), config=INTAKE_CONFIG
        )
        assert [r["code"] for r in emitted(reuse, "document.rejected")[0]["data"]["reasons"]] == [
            "duplicate_invoice_id"
        ]
        assert responses(reuse) == []


async def test_an_unreadable_ubl_invoice_is_answered_without_a_document() -> None:
    async with scratch_pool("intake") as pool:
        rec = record(
            IN_INVOICES, "invoice.submitted_ubl", doc.ubl_submission("U-1", "<Invoice>"), key=b.PAYEE
        )
        [re] = responses(await support.deliver(pool, intake_router, rec, config=INTAKE_CONFIG))
        assert (re["invoice_id"], re["status"]) == ("U-1", "RE")
        assert re.get("document") is None and re.get("payee_id") is None
        assert re["reasons"] and all(r["action"] == "NIN" for r in re["reasons"])


async def test_a_non_peppol_party_gets_status_and_reasons_without_a_document() -> None:
    async with scratch_pool("intake") as pool:
        data = json.loads(_submitted("I-3").value)["data"] | {"payee_id": "payee-17"}
        rec = record(IN_INVOICES, "invoice.submitted", data, key="payee-17")
        [ab] = responses(await support.deliver(pool, intake_router, rec, config=INTAKE_CONFIG))
        assert (ab["status"], ab["payee_id"], ab.get("document")) == ("AB", "payee-17", None)


async def test_an_invoice_that_breaks_the_contract_is_answered_too() -> None:
    async with scratch_pool("intake") as pool:
        data = json.loads(_submitted("I-4").value)["data"]
        del data["tax_total"]
        broken = record(IN_INVOICES, "invoice.submitted", data | {"lines": "none"}, key=b.PAYEE)
        nameless = record(IN_INVOICES, "invoice.submitted", {"payee_id": b.PAYEE}, key=b.PAYEE)
        result = await support.deliver(pool, intake_router, broken, nameless, config=INTAKE_CONFIG)
        assert len(emitted(result, "document.rejected")) == 2
        [re] = responses(result)  # the one without an invoice id has nothing to be answered under
        assert (re["invoice_id"], re["status"], re["supplier_invoice_number"]) == ("I-4", "RE", "N-I-4")
        assert {(r["concord"], r["code"], r["action"]) for r in re["reasons"]} == {
            ("invalid_field", "OTH", "NIN"),
            ("missing_field", "OTH", "NIN"),
        }
        assert "tax_total" in re["document"] and "lines" in re["document"]


# --- matching: UQ and AP ----------------------------------------------------------------------


async def deliver_matching(pool: Any, *records: Any) -> BatchResult:
    return await support.deliver(pool, matching_router, *records, config=MATCHING_CONFIG)


async def test_matching_queries_once_per_reason_set_and_accepts_once() -> None:
    async with scratch_pool("matching") as pool:
        first = await deliver_matching(pool, b.requisition(), b.po_in_force(), b.invoice())
        assert statuses(first) == [("INV-1", "UQ", ["missing_receipt"])]
        [uq] = responses(first)
        assert [(r["code"], r["action"]) for r in uq["reasons"]] == [("DEL", "NOA")]
        assert uq["supplier_invoice_number"] == "INV-1"

        # A rematch that finds the same: nothing for the supplier.
        assert statuses(await deliver_matching(pool, b.rematch())) == []
        # Part received: the reason changes (now more invoiced than received).
        partial = await deliver_matching(pool, b.receipt("GR-1", quantity="4"))
        assert statuses(partial) == [("INV-1", "UQ", ["qty_over_received"])]
        assert [(r["code"], r["action"]) for r in responses(partial)[0]["reasons"]] == [("QTY", "CNP")]
        # The rest arrives: accepted, once.
        rest = await deliver_matching(pool, b.receipt("GR-2", quantity="6"))
        assert statuses(rest) == [("INV-1", "AP", [])]
        # The invoice was stored by an earlier batch: its number is read from its stored document.
        assert responses(rest)[0]["supplier_invoice_number"] == "INV-1"
        assert statuses(await deliver_matching(pool, b.rematch())) == []
        # Every response of one invoice is its own, derived from the decision that caused it.
        ids = {r["response_id"] for res in (first, partial, rest) for r in responses(res)}
        assert len(ids) == 3


async def test_matching_redelivery_in_one_batch_issues_nothing_twice() -> None:
    async with scratch_pool("matching") as pool:
        inv = b.invoice()
        result = await deliver_matching(pool, b.requisition(), b.po_in_force(), inv, b.receipt(), inv)
        # Held on arrival, approved by the receipt in the same batch: both the supplier sees.
        assert statuses(result) == [("INV-1", "UQ", ["missing_receipt"]), ("INV-1", "AP", [])]
        # Stored by this batch: its number comes from the document it wrote, as it would read back.
        assert [r["supplier_invoice_number"] for r in responses(result)] == ["INV-1", "INV-1"]
        assert statuses(await deliver_matching(pool, inv, b.receipt())) == []


# --- payout_release: PD -----------------------------------------------------------------------


async def test_paid_when_the_payout_settles_whichever_arrives_first() -> None:
    async with scratch_pool("payout_release") as pool:
        await ready(pool)
        # inv-1's reference (intake's invoice.accepted) arrives before it is paid, inv-2's after.
        accepted_1 = b.invoice("inv-1", po_number="PO-1")
        await send(pool, accepted_1, approved("inv-1", "50.00"), approved("inv-2", "50.00"))
        payout_id = await _one_payout(pool)
        settled = await send(pool, rail("payout.settled", payout_id, "rail-1"))
        assert statuses(settled) == [("inv-1", "PD", [])]
        [pd] = responses(settled)
        assert pd["supplier_invoice_number"] == "inv-1" and pd["document"]

        late = await send(pool, b.invoice("inv-2", po_number="PO-1"))
        assert statuses(late) == [("inv-2", "PD", [])]
        # Replays of either cause issue nothing new.
        assert statuses(await send(pool, rail("payout.settled", payout_id, "rail-1"))) == []
        assert statuses(await send(pool, b.invoice("inv-2", po_number="PO-1"), accepted_1)) == []


async def test_not_paid_until_settled() -> None:
    async with scratch_pool("payout_release") as pool:
        await ready(pool)
        await send(pool, b.invoice("inv-1", po_number="PO-1"), approved("inv-1"))
        payout_id = await _one_payout(pool)
        failed = await send(pool, rail("payout.failed", payout_id, "rail-f"))
        assert statuses(failed) == []
