"""Every field mapping of the ledger: contract events → domain facts; a posted entry → the
`journal.entry_posted` event that announces it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.ledger import domain as d
from shared.contracts.common import Approval
from shared.contracts.inbound import FundingReceived
from shared.contracts.internal import (
    InvoiceApprovalRevoked,
    InvoiceApprovedToPay,
    PayoutRailRecorded,
    PurchaseOrderVersionInForce,
    ReceiptAccepted,
    ReceiptReversalAccepted,
)
from shared.contracts.outbound import (
    JournalApproval,
    JournalEntryPosted,
    JournalLine,
    JournalLinks,
    PayoutReleased,
)
from shared.envelope import derived_event_id

# --- in ---------------------------------------------------------------------------------------


def purchase_order(event: PurchaseOrderVersionInForce) -> d.PurchaseOrder:
    po = event.po
    return d.PurchaseOrder(
        po_number=po.po_number,
        version=po.version,
        business_unit=po.business_unit,
        currency=po.currency,
        unit_prices={ln.line_id: ln.unit_price for ln in po.lines},
        approved_by=po.approved_by,
        match_mode=po.match_mode,
    )


def receipt(event: ReceiptAccepted) -> d.Receipt:
    return d.Receipt(
        receipt_id=event.receipt_id,
        po_number=event.po_number,
        lines=tuple(d.ReceiptLine(ln.po_line_id, ln.quantity) for ln in event.lines),
        recorded_by=event.recorded_by,
    )


def reversal(event: ReceiptReversalAccepted) -> d.Reversal:
    return d.Reversal(event.receipt_id, event.reversed_by, event.reason)


def approval(a: Approval) -> d.Approval:
    return d.Approval(by=a.by, what=a.what, role=a.role, at=a.at)


def invoice_approval(event: InvoiceApprovedToPay) -> d.InvoiceApproval:
    return d.InvoiceApproval(
        invoice_id=event.invoice_id,
        decision_id=event.decision_id,
        payee_id=event.payee_id,
        business_unit=event.business_unit,
        currency=event.currency,
        document_type=event.document_type,
        payable_amount=event.payable_amount,
        tax_total=event.tax_total,
        charges_total=event.charges_total,
        lines=tuple(
            d.ApprovedLine(ln.line_id, ln.match_mode, ln.matched_amount, ln.variance_amount, ln.line_amount)
            for ln in event.lines
        ),
        po_number=event.po_number,
        po_version=event.po_version,
        receipt_ids=tuple(event.receipt_ids),
        override_ids=tuple(event.override_ids),
        approvals=tuple(approval(a) for a in event.approvals),
    )


def revocation(event: InvoiceApprovalRevoked) -> d.Revocation:
    return d.Revocation(event.invoice_id, event.decision_id, event.reason)


def payout_release(event: PayoutReleased) -> d.PayoutRelease:
    return d.PayoutRelease(
        payout_id=event.payout_id,
        payee_id=event.payee_id,
        funding_account_id=event.funding_account_id,
        currency=event.currency,
        amount=event.amount,
        invoice_ids=tuple(i.invoice_id for i in event.invoices),
        discount=sum((i.discount or Decimal(0) for i in event.invoices), Decimal(0)),
        expedite_id=event.expedite.expedite_id if event.expedite else None,
    )


def rail_outcome(event: PayoutRailRecorded) -> d.RailOutcome:
    return d.RailOutcome(
        payout_id=event.payout_id,
        rail_event_id=event.rail_event_id,
        payee_id=event.payee_id,
        funding_account_id=event.funding_account_id,
        currency=event.currency,
        amount=event.amount,
        invoice_ids=tuple(event.invoice_ids),
        discount=event.discount or Decimal(0),
    )


def funding_receipt(event: FundingReceived) -> d.FundingReceipt:
    return d.FundingReceipt(
        event.funding_id, event.account_id, event.legal_entity, event.currency, event.amount
    )


# --- out --------------------------------------------------------------------------------------


def entry_posted(posting: d.Posting, posted_at: datetime) -> JournalEntryPosted:
    entry, links = posting.entry, posting.entry.links
    return JournalEntryPosted(
        entry_id=posting.entry_id,
        source_event_id=posting.source_event_id,
        source_event_type=posting.source_event_type,
        posted_at=posted_at,
        description=entry.description,
        lines=[
            JournalLine(
                account=ln.account,
                currency=ln.currency,
                debit=ln.debit if ln.debit else None,
                credit=ln.credit if ln.credit else None,
            )
            for ln in entry.lines
        ],
        links=JournalLinks(
            po_number=links.po_number,
            po_version=links.po_version,
            invoice_ids=list(links.invoice_ids),
            receipt_ids=list(links.receipt_ids),
            payout_id=links.payout_id,
            override_ids=list(links.override_ids),
            approvals=[JournalApproval(by=a.by, role=a.role, at=a.at, what=a.what) for a in links.approvals],
            expedite_id=links.expedite_id,
        ),
    )


def entry_posted_event_id(entry_id: str) -> str:
    """A redelivery or re-run announces the same entry under the same id."""
    return derived_event_id("journal.entry_posted", entry_id)
