"""The batch plans (pure): a run of records planned from what was loaded before it ends where the
records one by one would — an earlier record's effect is seen by a later one."""

from __future__ import annotations

from decimal import Decimal as D

from services.ledger import domain as d
from services.ledger.domain import Outcome

PO_V1 = d.PurchaseOrder("PO-1", 1, "ops", "EUR", {"L1": D("10.00")})
PO_V2 = d.PurchaseOrder("PO-1", 2, "ops", "EUR", {"L1": D("12.00")})


def receipt(receipt_id: str, qty: str = "2") -> d.Receipt:
    return d.Receipt(receipt_id, "PO-1", (d.ReceiptLine("L1", D(qty)),), "dock@example.com")


def approval(decision_id: str, payable: str = "20.00") -> d.InvoiceApproval:
    line = d.ApprovedLine("1", "three_way", D(payable), D(0), D(payable))
    return d.InvoiceApproval(
        "INV-1", decision_id, "P", "ops", "EUR", "invoice", D(payable), D(0), D(0), (line,)
    )


def test_the_same_receipt_twice_in_a_run_posts_once() -> None:
    steps = d.plan_arrivals([(receipt("R1"), "e1"), (receipt("R1"), "e2")], {}, {"PO-1": PO_V1})
    assert [s.outcome for s in steps] == [Outcome.POSTED, Outcome.ALREADY_POSTED]
    assert steps[0].posting is not None and steps[0].posting.entry_id == d.entry_id_for("e1")
    assert steps[1].posting is None and steps[1].status is None  # nothing to write for it


def test_a_receipt_whose_fact_was_posted_before_settles_as_no_value() -> None:
    (step,) = d.plan_arrivals([(receipt("R1"), "e1")], {}, {"PO-1": PO_V1})
    settled = step.settled(inserted=set())
    assert (settled.outcome, settled.status, settled.entry_id) == (Outcome.NO_VALUE, "no_value", None)


def test_receipts_wait_for_an_unknown_po_and_a_reversed_one_never_posts() -> None:
    reversed_first = {"R2": d.ReceiptState("R2", "dropped")}
    steps = d.plan_arrivals([(receipt("R1"), "e1"), (receipt("R2"), "e2")], reversed_first, {})
    assert [(s.outcome, s.status) for s in steps] == [
        (Outcome.PENDING_PO, "pending"),
        (Outcome.ALREADY_REVERSED, "dropped"),
    ]


def test_a_second_reversal_in_a_run_finds_nothing_to_reverse() -> None:
    (posted,) = d.plan_arrivals([(receipt("R1"), "e1")], {}, {"PO-1": PO_V1})
    assert posted.posting is not None
    state = d.ReceiptState("R1", "posted", posted.posting.entry_id)
    reversal = d.Reversal("R1", "dock@example.com", "damaged")
    steps = d.plan_reversals(
        [(reversal, "e2", "receipt.reversal_accepted"), (reversal, "e3", "receipt.reversal_accepted")],
        {"R1": (state, posted.posting.entry)},
    )
    assert [(s.outcome, s.status) for s in steps] == [
        (Outcome.REVERSED, "reversed"),
        (Outcome.NOTHING_TO_REVERSE, "reversed"),
    ]
    assert steps[0].posting is not None
    assert steps[0].posting.entry.reverses_entry_id == posted.posting.entry_id


def test_pending_receipts_post_once_at_the_version_in_force_when_their_po_arrives() -> None:
    pending = {"PO-1": [d.PendingReceipt(receipt("R1"), "e_r1", "receipt.accepted")]}
    steps = d.plan_versions_in_force([PO_V2, PO_V1], {}, pending)  # v1 late: v2 stays in force
    assert [s.outcome for s in steps] == [Outcome.PENDING_RECEIPTS_POSTED, Outcome.RECORDED]
    ((receipt_id, posting),) = steps[0].postings
    assert receipt_id == "R1" and posting is not None and posting.source_event_id == "e_r1"
    assert sum(ln.debit for ln in posting.entry.lines) == D("24.00")  # 2 × 12.00 (v2)


def test_a_reapproval_in_the_same_run_replaces_the_approval_posted_just_before() -> None:
    kind = "invoice.approved_to_pay"
    steps = d.plan_approvals(
        [(approval("D1"), "e1", kind), (approval("D1"), "e2", kind), (approval("D2", "30.00"), "e3", kind)],
        {},
        set(),
    )
    assert [s.outcome for s in steps] == [Outcome.POSTED, Outcome.ALREADY_POSTED, Outcome.POSTED]
    first, replacing = steps[0].posting, steps[2].posting
    assert first is not None and replacing is not None
    assert replacing.entry.reverses_entry_id == first.entry_id


def test_an_approval_whose_fact_is_in_the_journal_posts_nothing() -> None:
    steps = d.plan_approvals([(approval("D1"), "e1", "invoice.approved_to_pay")], {}, {"approval:D1"})
    assert [s.outcome for s in steps] == [Outcome.NOTHING_TO_POST]


def test_a_second_revocation_in_a_run_has_nothing_to_reverse() -> None:
    entry = d.post_invoice_approval(approval("D1"))
    assert entry is not None
    active = {"INV-1": d.ActiveApproval("je_1", entry)}
    revocation = d.Revocation("INV-1", "D2", "receipt reversed")
    kind = "invoice.approval_revoked"
    steps = d.plan_revocations([(revocation, "e1", kind), (revocation, "e2", kind)], active, set())
    assert [s.outcome for s in steps] == [Outcome.REVERSED, Outcome.NOTHING_TO_REVERSE]


def test_the_first_funding_of_an_account_makes_its_owner() -> None:
    fundings = [
        d.FundingReceipt("F1", "A", "LE-1", "EUR", D("10")),
        d.FundingReceipt("F2", "A", "LE-2", "EUR", D("10")),
        d.FundingReceipt("F3", "A", "LE-1", "USD", D("10")),
        d.FundingReceipt("F4", "A", "LE-1", "EUR", D("10")),
    ]
    assert d.fundings_for_their_owners(fundings, {}, set()) == [True, False, False, True]
    # a funding id recorded before (for another account) records nothing: no owner is made
    assert d.fundings_for_their_owners(fundings[1:3], {}, {"F2"}) == [True, True]


def _ap(entries: list[d.Entry]) -> D:
    return sum(
        (ln.credit - ln.debit for e in entries for ln in e.lines if ln.account.startswith("liability:ap:")),
        D(0),
    )


def test_re_approvals_and_a_revocation_take_back_only_what_is_approved() -> None:
    """approve 80 → re-approve 90 → re-approve 70 (one run), then revoke in a later batch, with the
    approval in force loaded as the store loads it (the net of the invoice's approval entries):
    70 is owed before the revocation and nothing after it."""
    kind = "invoice.approved_to_pay"
    runs = [
        (approval(f"D{n}", amount), f"e{n}", kind) for n, amount in enumerate(("80.00", "90.00", "70.00"))
    ]
    steps = d.plan_approvals(runs, {}, set())
    entries = [s.posting.entry for s in steps if s.posting is not None]
    assert len(entries) == 3 and _ap(entries) == D("70.00")
    net: dict[tuple[str, str], D] = {}
    for ln in (ln for e in entries for ln in e.lines):
        net[(ln.account, ln.currency)] = net.get((ln.account, ln.currency), D(0)) + ln.signed()
    last = steps[-1].posting
    assert last is not None
    active = {"INV-1": d.ActiveApproval(last.entry_id, last.entry, d.in_force_lines(last.entry, net))}
    (revoked,) = d.plan_revocations(
        [(d.Revocation("INV-1", "D9", "receipt reversed"), "e9", "invoice.approval_revoked")], active, set()
    )
    assert revoked.posting is not None
    assert _ap([*entries, revoked.posting.entry]) == D(0)
