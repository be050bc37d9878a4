"""The posting rules (SPEC §9 table, one function per row): a fact in, a balanced entry out
(None when the fact moves no money)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from services.ledger.domain.facts import (
    FundingReceipt,
    InvoiceApproval,
    PayoutRelease,
    PurchaseOrder,
    RailOutcome,
    Receipt,
)
from services.ledger.domain.journal import (
    CHARGES,
    EARLY_PAYMENT_DISCOUNTS,
    GRNI,
    IN_TRANSIT,
    INPUT_TAX,
    PREPAYMENTS,
    PRICE_VARIANCE,
    ZERO,
    Approval,
    Entry,
    Line,
    Links,
    _entry_or_none,
    accounts_payable,
    expense,
    funding_account,
    funding_equity,
    net_lines,
)
from shared.money import quantize_money


def receipt_value(receipt: Receipt, po: PurchaseOrder) -> Decimal:
    """Σ quantity × PO unit price, each line rounded to the currency's minor unit.

    A receipt line naming a PO line this version does not have is worth nothing here: intake
    validates references, and guessing a price would put a made-up number in the journal.
    """
    total = ZERO
    for line in receipt.lines:
        price = po.unit_prices.get(line.po_line_id)
        if price is not None:
            total += quantize_money(line.quantity * price, po.currency)
    return total


def post_receipt(receipt: Receipt, po: PurchaseOrder) -> Entry | None:
    """Three-way receipt at PO price: Dr expense:{business_unit}, Cr liability:grni.

    A line is three-way unless the PO itself says two-way: the ledger cannot read the matching
    policy, so every receipt on a PO without `match_mode: two_way` is accrued. On a two-way PO
    a receipt is evidence only (the approval posts the expense) and nothing is accrued.
    """
    if po.match_mode == "two_way":
        return None
    value = receipt_value(receipt, po)
    lines = net_lines(po.currency, [(expense(po.business_unit), value), (GRNI, -value)])
    approvals = (
        (Approval(by=receipt.recorded_by, what=f"receipt {receipt.receipt_id} recorded"),)
        if (receipt.recorded_by)
        else ()
    )
    return _entry_or_none(
        "receipt",
        f"receipt:{receipt.receipt_id}",
        f"Receipt {receipt.receipt_id} on PO {po.po_number} v{po.version} at PO price",
        lines,
        Links(
            po_number=po.po_number,
            po_version=po.version,
            receipt_ids=(receipt.receipt_id,),
            approvals=approvals,
        ),
    )


def _approval_postings(approval: InvoiceApproval) -> list[tuple[str, Decimal]]:
    """An approved *invoice*'s signed postings (debit +, credit −)."""
    ap = accounts_payable(approval.payee_id)
    postings: list[tuple[str, Decimal]] = []
    for line in approval.lines:
        if line.match_mode == "three_way":
            # GRNI is relieved at the matched (PO-price) value the receipt was accrued at;
            # the price difference goes to variance (a negative variance is a credit).
            postings.append((GRNI, line.matched_amount))
            postings.append((PRICE_VARIANCE, line.variance_amount))
        else:  # two_way and no_po: straight to expense
            postings.append((expense(approval.business_unit), line.line_amount))
        postings.append((ap, -line.line_amount))
    postings.append((CHARGES, approval.charges_total))
    postings.append((ap, -approval.charges_total))
    postings.append((INPUT_TAX, approval.tax_total))
    postings.append((ap, -approval.tax_total))
    # Prepaid/rounding: AP must end at payable_amount (= total − prepaid + rounding). The
    # difference (prepaid − rounding) was already paid in advance, so it relieves AP and
    # consumes the prepayment asset; a negative difference flips both sides.
    already_settled = approval.total - approval.payable_amount
    postings.append((ap, already_settled))
    postings.append((PREPAYMENTS, -already_settled))
    return postings


def _approval_links(approval: InvoiceApproval) -> Links:
    return Links(
        po_number=approval.po_number,
        po_version=approval.po_version,
        invoice_ids=(approval.invoice_id,),
        receipt_ids=approval.receipt_ids,
        override_ids=approval.override_ids,
        approvals=approval.approvals,
    )


def _approval_description(approval: InvoiceApproval) -> str:
    what = "Credit note" if approval.document_type == "credit_note" else "Invoice"
    return f"{what} {approval.invoice_id} approved to pay ({approval.payable_amount} {approval.currency})"


def _approval_lines(approval: InvoiceApproval) -> tuple[Line, ...]:
    postings = _approval_postings(approval)
    if approval.document_type == "credit_note":
        postings = [(account, -amount) for account, amount in postings]
    return net_lines(approval.currency, postings)


def post_invoice_approval(approval: InvoiceApproval) -> Entry | None:
    """Invoice approved: Dr GRNI/variance (three-way) or expense (two-way, no-PO), charges,
    input tax; Cr liability:ap:{payee}. A credit note is the exact mirror (Dr AP, Cr the rest)."""
    return _entry_or_none(
        "invoice_approval",
        f"approval:{approval.decision_id}",
        _approval_description(approval),
        _approval_lines(approval),
        _approval_links(approval),
    )


def post_reapproval(approval: InvoiceApproval, in_force: Sequence[Line], active_entry_id: str) -> Entry:
    """A new approval while an earlier one is still in force (matching re-approves when a
    rematch changes the result, e.g. another receipt or a new PO version) replaces it in one
    entry: the mirror of what is approved now (`in_force`: ActiveApproval.lines), then the new
    approval's lines."""
    return Entry(
        "invoice_approval",
        f"approval:{approval.decision_id}",
        f"{_approval_description(approval)}, replacing {active_entry_id}",
        tuple(ln.reversed() for ln in in_force) + _approval_lines(approval),
        _approval_links(approval),
        active_entry_id,
    )


def post_payout_released(release: PayoutRelease) -> Entry | None:
    """Payout released: Dr liability:ap:{payee}, Cr liability:payouts_in_transit; an early-payment
    discount (SPEC §13.5) clears the rest of the payable: Cr income:early_payment_discounts."""
    description = f"Payout {release.payout_id} released to {release.payee_id}"
    if release.discount:
        description += f", early-payment discount {release.discount}"
    if release.expedite_id:
        description += f", expedite {release.expedite_id}"
    return _entry_or_none(
        "payout_release",
        f"release:{release.payout_id}",
        description,
        net_lines(
            release.currency,
            [
                (accounts_payable(release.payee_id), release.amount + release.discount),
                (IN_TRANSIT, -release.amount),
                (EARLY_PAYMENT_DISCOUNTS, -release.discount),
            ],
        ),
        Links(payout_id=release.payout_id, invoice_ids=release.invoice_ids, expedite_id=release.expedite_id),
    )


def _rail_links(outcome: RailOutcome) -> Links:
    return Links(payout_id=outcome.payout_id, invoice_ids=outcome.invoice_ids)


def post_payout_settled(outcome: RailOutcome) -> Entry | None:
    """Payout settled: Dr liability:payouts_in_transit, Cr asset:funding:{account}.

    SPEC §9 literally: the funding account is drawn down when the rail settles."""
    return _entry_or_none(
        "payout_settlement",
        f"rail:{outcome.rail_event_id}",
        f"Payout {outcome.payout_id} settled",
        net_lines(
            outcome.currency,
            [(IN_TRANSIT, outcome.amount), (funding_account(outcome.funding_account_id), -outcome.amount)],
        ),
        _rail_links(outcome),
    )


def post_payout_failed(outcome: RailOutcome) -> Entry | None:
    """Payout failed: Dr liability:payouts_in_transit, Cr liability:ap:{payee} (payable again)."""
    return _entry_or_none(
        "payout_failure",
        f"rail:{outcome.rail_event_id}",
        f"Payout {outcome.payout_id} failed; invoices payable again",
        net_lines(
            outcome.currency,
            [
                (IN_TRANSIT, outcome.amount),
                # the discount was earned only by paying in time: the whole payable is owed again
                (EARLY_PAYMENT_DISCOUNTS, outcome.discount),
                (accounts_payable(outcome.payee_id), -(outcome.amount + outcome.discount)),
            ],
        ),
        _rail_links(outcome),
    )


def post_payout_returned(outcome: RailOutcome) -> Entry | None:
    """Payout returned after settlement: Dr asset:funding:{account}, Cr liability:ap:{payee}."""
    return _entry_or_none(
        "payout_return",
        f"rail:{outcome.rail_event_id}",
        f"Payout {outcome.payout_id} returned; payable reinstated",
        net_lines(
            outcome.currency,
            [
                (funding_account(outcome.funding_account_id), outcome.amount),
                (EARLY_PAYMENT_DISCOUNTS, outcome.discount),
                (accounts_payable(outcome.payee_id), -(outcome.amount + outcome.discount)),
            ],
        ),
        _rail_links(outcome),
    )


def post_funding_received(funding: FundingReceipt) -> Entry | None:
    """Funding received: Dr asset:funding:{account}, Cr equity:funding:{legal_entity}."""
    return _entry_or_none(
        "funding",
        f"funding:{funding.funding_id}",
        f"Funding {funding.funding_id} received on {funding.account_id}",
        net_lines(
            funding.currency,
            [
                (funding_account(funding.account_id), funding.amount),
                (funding_equity(funding.legal_entity), -funding.amount),
            ],
        ),
    )
