"""Records for one small PO-to-payout flow, as the other services publish them."""

from __future__ import annotations

import json
from typing import Any

from shared.consumer import RawRecord
from shared.settings import Settings
from shared.topics import (
    BY_NAME,
    COMPLIANCE_ELIGIBILITY,
    IN_FUNDING,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_PAYOUTS,
    PAYOUTS_EVENTS,
)
from testkit import documents as doc
from tests.support import record

PO = "PO-100"
PAYEE = "payee-us-1"
ACCOUNT = "acct-usd-1"
ENTITY = "LE-1"


def po_state(version: int = 1, unit_price: str = "50.00") -> dict[str, Any]:
    return doc.purchase_order(
        PO,
        version=version,
        legal_entity=ENTITY,
        business_unit="marketing",
        payee_id=PAYEE,
        currency="USD",
        effective_from="2026-01-01",
        effective_to="2026-12-31",
        requisition_id="REQ-1",
        created_by="buyer@example.com",
        approved_by="manager@example.com",
        approved_at="2026-11-01T09:00:00Z",
        lines=[doc.po_line("L1", "SKU-1", "goods", "10", unit_price)],
    )


def po_in_force(version: int = 1, unit_price: str = "50.00", event_id: str | None = None) -> RawRecord:
    data: dict[str, Any] = {"po": po_state(version, unit_price), "in_force_since": "2026-11-01T09:00:00Z"}
    if version > 1:
        data |= {
            "previous_version": version - 1,
            "changes": ["lines[L1].unit_price"],
            "amended_by": "buyer@example.com",
            "reason": "price update",
            "modification_id": f"MOD-{version}",
        }
    return record(INTAKE_DOCUMENTS, "purchase_order.version_in_force", data, key=PO, event_id=event_id)


def receipt(receipt_id: str = "R-1", quantity: str = "4", event_id: str | None = None) -> RawRecord:
    return record(
        INTAKE_DOCUMENTS,
        "receipt.accepted",
        doc.receipt(
            receipt_id,
            PO,
            [doc.receipt_line("RL1", "L1", quantity)],
            received_at="2026-11-02T10:00:00Z",
            recorded_by="dock@example.com",
        ),
        key=PO,
        event_id=event_id,
    )


def receipt_reversed(receipt_id: str = "R-1") -> RawRecord:
    return record(
        INTAKE_DOCUMENTS,
        "receipt.reversal_accepted",
        doc.receipt_reversal(receipt_id, PO, reversed_by="dock@example.com", reason="damaged"),
        key=PO,
    )


def invoice_accepted(invoice_id: str = "INV-1") -> RawRecord:
    return record(
        INTAKE_DOCUMENTS,
        "invoice.accepted",
        doc.invoice(
            invoice_id,
            number="A-42",
            normalised_invoice_number="A42",
            payee_id=PAYEE,
            legal_entity=ENTITY,
            issue_date="2026-11-03",
            currency="USD",
            po_number=PO,
            lines=[doc.invoice_line("1", "L1", "4", "51.00", "204.00")],
            tax_total="40.80",
            total_amount="244.80",
            payable_amount="244.80",
            business_unit="marketing",
            origin="json",
        ),
        key=PO,
    )


def held(invoice_id: str = "INV-1") -> RawRecord:
    return record(
        MATCHING_DECISIONS,
        "invoice.held",
        {
            "invoice_id": invoice_id,
            "po_number": PO,
            "payee_id": PAYEE,
            "holds": [
                {
                    "hold_id": "H-1",
                    "reason": "price_mismatch",
                    "line_id": "1",
                    "queue": "ap",
                    "action": "soft_review",
                }
            ],
            "decided_at": "2026-11-03T11:00:00Z",
        },
        key=invoice_id,
    )


def approved(invoice_id: str = "INV-1", decision_id: str = "DEC-1", event_id: str | None = None) -> RawRecord:
    return record(
        MATCHING_DECISIONS,
        "invoice.approved_to_pay",
        {
            "invoice_id": invoice_id,
            "po_number": PO,
            "po_version": 1,
            "payee_id": PAYEE,
            "legal_entity": ENTITY,
            "business_unit": "marketing",
            "currency": "USD",
            "document_type": "invoice",
            "issue_date": "2026-11-03",
            "payable_amount": "244.80",
            "tax_total": "40.80",
            "charges_total": "0",
            "lines": [
                {
                    "line_id": "1",
                    "po_line_id": "L1",
                    "category": "goods",
                    "match_mode": "three_way",
                    "quantity": "4",
                    "invoice_unit_price": "51.00",
                    "po_unit_price": "50.00",
                    "matched_amount": "200.00",
                    "variance_amount": "4.00",
                    "line_amount": "204.00",
                }
            ],
            "receipt_ids": ["R-1"],
            "override_ids": ["OVR-1"],
            "overrides": [
                {
                    "override_id": "OVR-1",
                    "approved_by": "ap.lead@example.com",
                    "requested_by": "clerk@example.com",
                    "reason_code": "price_agreed",
                    "justification": "supplier price increase agreed by email",
                    "evidence": ["mail://thread/123"],
                    "hold_reasons": ["price_mismatch"],
                }
            ],
            "approvals": [
                {
                    "by": "ap.lead@example.com",
                    "role": "ap",
                    "at": "2026-11-03T12:00:00Z",
                    "what": "override OVR-1",
                }
            ],
            "decided_at": "2026-11-03T12:00:00Z",
            "decision_id": decision_id,
        },
        key=invoice_id,
        event_id=event_id,
    )


def revoked(invoice_id: str = "INV-1", decision_id: str = "DEC-2") -> RawRecord:
    return record(
        MATCHING_DECISIONS,
        "invoice.approval_revoked",
        {
            "invoice_id": invoice_id,
            "po_number": PO,
            "reason": "receipt reversed",
            "decided_at": "2026-11-04T12:00:00Z",
            "decision_id": decision_id,
        },
        key=invoice_id,
    )


def funding(amount: str = "1000.00") -> RawRecord:
    return record(
        IN_FUNDING,
        "funding.received",
        doc.funding(
            "F-1",
            account_id=ACCOUNT,
            legal_entity=ENTITY,
            currency="USD",
            amount=amount,
            received_at="2026-11-01T00:00:00Z",
        ),
        key=ACCOUNT,
    )


def released(payout_id: str = "PAY-1", amount: str = "244.80", invoice_id: str = "INV-1") -> RawRecord:
    return record(
        OUT_PAYOUTS,
        "payout.released",
        {
            "payout_id": payout_id,
            "idempotency_key": payout_id,
            "run_id": "RUN-1",
            "payee_id": PAYEE,
            "legal_entity": ENTITY,
            "funding_account_id": ACCOUNT,
            "currency": "USD",
            "amount": amount,
            "invoices": [{"invoice_id": invoice_id, "amount": amount}],
            "released_at": "2026-11-05T08:00:00Z",
        },
        key=PAYEE,
    )


def rail(
    event_type: str,
    payout_id: str = "PAY-1",
    rail_event_id: str = "RAIL-1",
    amount: str = "244.80",
    at: str = "2026-11-06T08:00:00Z",
) -> RawRecord:
    data: dict[str, Any] = {
        "payout_id": payout_id,
        "rail_event_id": rail_event_id,
        "payee_id": PAYEE,
        "legal_entity": ENTITY,
        "funding_account_id": ACCOUNT,
        "currency": "USD",
        "amount": amount,
        "invoice_ids": ["INV-1"],
        "at": at,
    }
    if event_type == "payout.failure_recorded":
        data["failure_code"] = "account_closed"
    return record(PAYOUTS_EVENTS, event_type, data, key=payout_id)


def eligibility(reportable: bool = True) -> RawRecord:
    return record(
        COMPLIANCE_ELIGIBILITY,
        "payee.eligibility_changed",
        {
            "payee_id": PAYEE,
            "eligible": True,
            "reasons": [],
            "profile_version": 3,
            "evaluated_at": "2026-11-01T00:00:00Z",
            "country": "US",
            "entity_type": "individual",
            "reportable_1099_nec": reportable,
        },
        key=PAYEE,
    )


def requisition(requisition_id: str, approved_at: str) -> RawRecord:
    return record(
        INTAKE_DOCUMENTS,
        "requisition.accepted",
        doc.requisition(
            requisition_id,
            legal_entity=ENTITY,
            business_unit="marketing",
            requested_by="a@example.com",
            approved_by="b@example.com",
            amount="500.00",
            currency="USD",
            approved_at=approved_at,
        ),
        key=requisition_id,
    )


def renamed(rec: RawRecord, suffix: str) -> RawRecord:
    """The same record for another flow: every id of this module's flow gets `suffix` (a new
    event id too), so many independent flows can share one batch."""
    ids = {PO, PAYEE, ACCOUNT, "R-1", "R-2", "INV-1", "DEC-1", "DEC-2", "PAY-1", "RAIL-1", "F-1", "H-1"}
    env = json.loads(rec.value)

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return f"{x}-{suffix}" if isinstance(x, str) and x in ids else x

    topic = BY_NAME[Settings().unprefixed(rec.topic)]
    return record(topic, env["event_type"], walk(env["data"]))


def full_flow() -> list[RawRecord]:
    """The flow from funding to settlement, in the order the facts happen."""
    return [
        funding(),
        eligibility(),
        po_in_force(),
        receipt(),
        invoice_accepted(),
        held(),
        approved(),
        released(),
        rail("payout.settlement_recorded"),
    ]
