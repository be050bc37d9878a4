"""The in-memory books a batch is decided against: record after record, as if one at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from services.intake import contract
from services.intake.config import IntakeConfig
from services.intake.domain import normalise_invoice_number
from services.intake.domain.flip import FlipDesk
from services.intake.domain.invoices import InvoiceBook, KnownPo
from services.intake.domain.outcome import Outcome
from services.intake.domain.purchase_orders import PoBook
from shared.contracts import inbound as i
from testkit.samples.upstream import PAYEE, amendment_approved, invoice, po_amended, po_issued

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = IntakeConfig()


def submission(invoice_id: str, number: str, **changes: object) -> contract.Submission:
    return contract.json_submission(i.InvoiceSubmitted.model_validate(invoice(invoice_id, number, **changes)))


def empty_book() -> InvoiceBook:
    return InvoiceBook({}, {}, {}, CONFIG.no_po, CONFIG.max_amount)


def test_the_second_invoice_with_a_number_in_one_book_is_a_duplicate() -> None:
    book = empty_book()
    assert book.submit(submission("INV-A", "INV-0042")).outcome is Outcome.ACCEPTED
    look_alike = book.submit(submission("INV-B", "ＩＮＶ-42"))
    assert look_alike.outcome is Outcome.REJECTED
    assert [r.code for r in look_alike.reasons] == ["duplicate_invoice"]
    assert book.submit(submission("INV-A", "INV-0042")).outcome is Outcome.DUPLICATE
    assert book.claimed_numbers() == [((PAYEE, normalise_invoice_number("INV-0042"), "invoice"), "INV-A")]


def test_a_correction_takes_the_number_over_and_supersedes_once() -> None:
    book = empty_book()
    book.submit(submission("INV-A", "INV-0042"))
    assert (
        book.submit(submission("INV-A2", "INV-0042", replaces_invoice_id="INV-A")).outcome is Outcome.ACCEPTED
    )
    again = book.submit(submission("INV-A3", "INV-0042", replaces_invoice_id="INV-A"))
    assert [r.code for r in again.reasons] == ["already_superseded", "duplicate_invoice"]
    assert book.superseded_by("INV-A") == "INV-A2"
    assert book.claimed_numbers() == [((PAYEE, normalise_invoice_number("INV-0042"), "invoice"), "INV-A2")]
    assert book.superseded_earlier == []  # INV-A is new too: written superseded


def test_an_invoice_accepted_earlier_in_the_book_is_a_suspected_duplicate() -> None:
    book = empty_book()
    book.submit(submission("INV-A", "INV-0042"))
    decision = book.submit(submission("INV-B", "INV-0043"))
    assert decision.accepted is not None and decision.accepted.suspected_duplicate_of == ["INV-A"]


def test_issue_amend_and_approve_in_one_book() -> None:
    book = PoBook({}, NOW)
    issued = book.issue(
        contract.issued_version(i.PurchaseOrderIssued.model_validate(po_issued())),
        CONFIG.max_amount,
        "e1",
        CONFIG.authority,
    )
    assert issued.outcome is Outcome.IN_FORCE and [v.version.version for v in issued.in_force] == [1]
    early = book.approve_amendment("PO-1", 3, "controller@example.com", NOW, "e2", CONFIG.authority)
    assert early.outcome is Outcome.APPROVAL_WAITING_FOR_AMENDMENT
    v2 = i.PurchaseOrderAmended.model_validate(po_amended(2))
    pending = book.amend(contract.amended_version(v2), CONFIG.max_amount, "e3", CONFIG.authority)
    assert pending.outcome is Outcome.PENDING and pending.pending
    v3 = i.PurchaseOrderAmended.model_validate(po_amended(3))
    waiting = book.amend(contract.amended_version(v3), CONFIG.max_amount, "e4", CONFIG.authority)
    assert waiting.outcome is Outcome.WAITING_FOR_PREDECESSOR  # approved early, waits for version 2
    approval = i.PurchaseOrderAmendmentApproved.model_validate(amendment_approved(2))
    both = book.approve_amendment(
        "PO-1", 2, approval.approved_by, approval.approved_at, "e5", CONFIG.authority
    )
    assert both.outcome is Outcome.IN_FORCE and [v.version.version for v in both.in_force] == [2, 3]
    versions = book.pos["PO-1"].versions
    assert [versions[v].status for v in (1, 2, 3)] == ["superseded", "superseded", "in_force"]
    assert book.pos["PO-1"].in_force_version == 3
    assert set(book.new_versions) == {("PO-1", 1), ("PO-1", 2), ("PO-1", 3)} and not book.changed_versions


def test_a_second_flip_of_a_po_counts_what_the_first_invoiced() -> None:
    state = contract.issued_version(i.PurchaseOrderIssued.model_validate(po_issued())).state
    po = contract.flip_po(state, False)
    book = InvoiceBook(
        {}, {"PO-1": contract.known_po("PO-1", state, False)}, {}, CONFIG.no_po, CONFIG.max_amount
    )
    desk = FlipDesk(book, {"PO-1": po}, {}, set(), NOW.date())
    first, accepted = desk.flip("F-1", "PO-1", None)
    assert accepted.outcome is Outcome.ACCEPTED and first is not None
    assert desk.invoiced["PO-1"] == {"L1": Decimal("10"), "L2": Decimal("2")}
    _, nothing = desk.flip("F-2", "PO-1", None)
    assert [r.code for r in nothing.reasons] == ["nothing_to_invoice"]
    assert desk.flip("F-1", "PO-1", None)[1].outcome is Outcome.DUPLICATE
    assert isinstance(book.pos["PO-1"], KnownPo)
