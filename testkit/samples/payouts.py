"""What payout_release is sent, for its handler tests and those of the services beside it: matching's
decisions, compliance's eligibility, intake's PO state, funding, ops' commands and the rail's events,
about payee-1, PO-1 (LE-1, BU-A, EUR) and the funding account fund-1, all dated around T0."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.consumer import RawRecord
from shared.topics import (
    COMPLIANCE_ELIGIBILITY,
    IN_COMMANDS,
    IN_FUNDING,
    IN_RAIL_EVENTS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
)
from testkit.records import record

# The instant the handler tests' clock stands at (tests.support.freeze_clock).
T0 = datetime(2026, 11, 21, 12, 0, 10, tzinfo=UTC)
_seq = itertools.count(1)


def approved(
    invoice_id: str,
    amount: str = "100.00",
    *,
    payee_id: str = "payee-1",
    po_number: str | None = "PO-1",
    po_version: int | None = 1,
    business_unit: str = "BU-A",
    document_type: str = "invoice",
    currency: str = "EUR",
    legal_entity: str = "LE-1",
    decided_at: datetime = T0 - timedelta(hours=1),
    issue_date: str = "2026-11-01",
) -> RawRecord:
    line = {
        "line_id": "L1",
        "match_mode": "two_way" if po_number else "no_po",
        "quantity": "1",
        "invoice_unit_price": amount,
        "matched_amount": amount,
        "variance_amount": "0",
        "line_amount": amount,
    }
    data = {
        "invoice_id": invoice_id,
        "po_number": po_number,
        "po_version": po_version,
        "payee_id": payee_id,
        "legal_entity": legal_entity,
        "business_unit": business_unit,
        "currency": currency,
        "document_type": document_type,
        "issue_date": issue_date,
        "payable_amount": amount,
        "tax_total": "0",
        "charges_total": "0",
        "lines": [line],
        "decided_at": decided_at.isoformat(),
        "decision_id": f"dec-{invoice_id}-{next(_seq)}",
    }
    return record(MATCHING_DECISIONS, "invoice.approved_to_pay", data, key=invoice_id)


def held(invoice_id: str, payee_id: str = "payee-1") -> RawRecord:
    data = {
        "invoice_id": invoice_id,
        "po_number": "PO-1",
        "payee_id": payee_id,
        "holds": [
            {"hold_id": f"h-{invoice_id}", "reason": "missing_receipt", "queue": "ops", "action": "hold"}
        ],
        "decided_at": T0.isoformat(),
    }
    return record(MATCHING_DECISIONS, "invoice.held", data, key=invoice_id)


def eligibility(
    payee_id: str = "payee-1",
    eligible: bool = True,
    *reasons: str,
    at: datetime = T0,
    payout_account_ref: str | None = None,
) -> RawRecord:
    data = {
        "payee_id": payee_id,
        "eligible": eligible,
        "reasons": list(reasons),
        "profile_version": 1,
        "evaluated_at": at.isoformat(),
        "payout_account_ref": payout_account_ref or f"tok-{payee_id}",
    }
    return record(COMPLIANCE_ELIGIBILITY, "payee.eligibility_changed", data, key=payee_id)


def po_in_force(
    po_number: str = "PO-1",
    version: int = 1,
    effective_to: str = "2027-12-31",
    *,
    business_unit: str = "BU-A",
    payment_terms: str | None = None,
) -> RawRecord:
    """Intake's state of the PO; `payment_terms` (SPEC §13.5) only when given."""
    po: dict[str, Any] = {
        "po_number": po_number,
        "version": version,
        "legal_entity": "LE-1",
        "business_unit": business_unit,
        "payee_id": "payee-1",
        "currency": "EUR",
        "effective_from": "2026-01-01",
        "effective_to": effective_to,
        "created_by": "buyer@example.com",
        "approved_by": "lead@example.com",
        "approved_at": "2026-01-01T09:00:00Z",
        "lines": [
            {
                "line_id": "L1",
                "item_ref": "SKU-1",
                "category": "goods",
                "quantity": "10",
                "unit_price": "100.00",
            }
        ],
    }
    if payment_terms is not None:
        po["payment_terms"] = payment_terms
    data = {"po": po, "previous_version": version - 1 or None, "in_force_since": "2026-01-01T09:00:00Z"}
    return record(INTAKE_DOCUMENTS, "purchase_order.version_in_force", data, key=po_number)


def po_closed(po_number: str = "PO-1") -> RawRecord:
    data = {"po_number": po_number, "closed_by": "buyer@example.com", "reason": "done"}
    return record(INTAKE_DOCUMENTS, "purchase_order.closure_accepted", data, key=po_number)


def funding(
    amount: str,
    account_id: str = "fund-1",
    funding_id: str | None = None,
    legal_entity: str = "LE-1",
    *,
    currency: str = "EUR",
    at: datetime = T0,
) -> RawRecord:
    data = {
        "funding_id": funding_id or f"fnd-{next(_seq)}",
        "account_id": account_id,
        "legal_entity": legal_entity,
        "currency": currency,
        "amount": amount,
        "received_at": at.isoformat(),
    }
    return record(IN_FUNDING, "funding.received", data, key=account_id)


def run_requested(run_id: str, **filters: str) -> RawRecord:
    data = {"run_id": run_id, "requested_by": "treasury@example.com", **filters}
    return record(IN_COMMANDS, "payout_run.requested", data, key=run_id)


def rail(kind: str, payout_id: str, rail_event_id: str, amount: str = "100.00") -> RawRecord:
    data: dict[str, Any] = {"payout_id": payout_id, "rail_event_id": rail_event_id}
    if kind == "payout.settled":
        data |= {"amount": amount, "currency": "EUR", "settled_at": T0.isoformat()}
    elif kind == "payout.failed":
        data |= {"failure_code": "account_closed", "message": "beneficiary account closed"}
    else:
        data |= {"amount": amount, "currency": "EUR", "returned_at": T0.isoformat(), "reason": "R03"}
    return record(IN_RAIL_EVENTS, kind, data, key=payout_id)


# The shipped roles file (deploy/roles.yaml) gives this approver the role treasury (SPEC §13.2).
TREASURER = "treasurer@example.com"


def expedite(
    expedite_id: str,
    invoice_id: str,
    requested_by: str = "ap.clerk@example.com",
    approved_by: str = TREASURER,
) -> RawRecord:
    data = {
        "expedite_id": expedite_id,
        "invoice_id": invoice_id,
        "requested_by": requested_by,
        "approved_by": approved_by,
        "justification": "supplier stops deliveries tomorrow",
    }
    return record(IN_COMMANDS, "payout.expedite_requested", data, key=invoice_id)
