"""Payout release, pure: a batch's records about one subject, each judged against the state the
ones before it left (as if handled one by one), and the end state the store writes once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.payout_release.domain import (
    Approval,
    Funding,
    InvoiceState,
    NotApproved,
    Outcome,
    PayeeStanding,
    Payout,
    PoVersion,
    RailEvent,
    RailResult,
    Verdict,
    decide_approvals,
    decide_fundings,
    decide_not_approved,
    decide_po_versions,
    decide_rail_events,
    decide_verdicts,
    first_per_account,
    funding_changes,
)

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def approval(invoice_id: str, at: datetime, amount: str = "100.00") -> Approval:
    return Approval(
        invoice_id, "payee-1", "LE-1", "BU-A", "EUR", "invoice", date(2026, 11, 1), Decimal(amount),
        "PO-1", 1, f"dec-{invoice_id}-{at.isoformat()}", at,
    )  # fmt: skip


def test_approvals_of_one_invoice_apply_in_order_and_the_last_applied_is_written() -> None:
    later, earlier = approval("inv-1", T0, "90.00"), approval("inv-1", T0 - timedelta(hours=1))
    applied, rows = decide_approvals({}, [approval("inv-1", T0 - timedelta(hours=2)), later, earlier])
    assert applied == [True, True, False]
    assert rows == [later]


def test_a_superseded_invoice_is_never_approved_again() -> None:
    applied, rows = decide_approvals({"inv-1": InvoiceState(superseded=True)}, [approval("inv-1", T0)])
    assert (applied, rows) == ([False], [])


def test_a_revocation_needs_a_known_invoice_and_a_hold_keeps_its_first_payee() -> None:
    revoke_unknown = NotApproved("inv-9", T0)
    applied, rows = decide_not_approved({}, [revoke_unknown])
    assert (applied, rows) == ([False], [])
    first = NotApproved("inv-1", T0, "payee-1", "PO-1")
    again = NotApproved("inv-1", T0 + timedelta(minutes=1), "payee-2", "PO-2")
    stale = NotApproved("inv-1", T0 - timedelta(days=1), "payee-3", "PO-3")
    applied, rows = decide_not_approved({}, [first, again, stale])
    assert applied == [True, True, False]
    assert rows == [NotApproved("inv-1", again.decided_at, "payee-1", "PO-1")]
    # Known: a revocation applies, and so does a later one of it.
    applied, _ = decide_not_approved({"inv-1": InvoiceState(decided_at=T0)}, [NotApproved("inv-1", T0)])
    assert applied == [True]


def test_a_late_verdict_is_stale_and_the_latest_is_written() -> None:
    ok, late = PayeeStanding(True), PayeeStanding(False, ("kyc_not_verified",))
    verdicts = [Verdict("p", ok, 2, T0), Verdict("p", late, 1, T0 - timedelta(hours=1))]
    applied, rows = decide_verdicts({"p": T0 - timedelta(days=1)}, verdicts)
    assert (applied, rows) == ([True, False], [verdicts[0]])
    assert decide_verdicts({"p": T0 + timedelta(days=1)}, verdicts[:1]) == ([False], [])


def test_an_older_po_version_is_ignored() -> None:
    v2, v1 = (
        PoVersion("PO-1", 2, date(2026, 1, 1), date(2027, 1, 1)),
        PoVersion("PO-1", 1, date(2026, 1, 1), date(2027, 1, 1)),
    )
    assert decide_po_versions({}, [v2, v1]) == ([True, False], [v2])
    assert decide_po_versions({"PO-1": None}, [v1]) == ([True], [v1])  # only its closure was heard
    assert decide_po_versions({"PO-1": 3}, [v2]) == ([False], [])


def test_funding_is_credited_once_per_id_and_only_to_its_own_entity_and_currency() -> None:
    def f(funding_id: str, entity: str = "LE-1") -> Funding:
        return Funding(funding_id, "fund-1", entity, "EUR", Decimal("10"), T0)

    fundings = [f("F1"), f("F1"), f("F2", "LE-2"), f("F0"), f("F3")]
    assert first_per_account(fundings) == [fundings[0]]
    outcomes = decide_fundings({"fund-1": ("LE-1", "EUR")}, {"F0"}, fundings)
    assert outcomes == [
        Outcome.APPLIED,
        Outcome.DUPLICATE_FUNDING,
        Outcome.ACCOUNT_MISMATCH,
        Outcome.DUPLICATE_FUNDING,
        Outcome.APPLIED,
    ]


PAYOUT = Payout("pay-1", "payee-1", "LE-1", "EUR", "fund-1", Decimal("100.00"), "released", ("inv-1",))


def settled(amount: str = "100.00") -> RailEvent:
    return RailEvent("settled", "pay-1", Decimal(amount), "EUR", T0)


def test_a_settlement_then_a_return_of_one_payout_apply_in_order() -> None:
    returned = RailEvent("returned", "pay-1", Decimal("100.00"), "EUR", T0, detail="R03")
    steps = decide_rail_events({}, {"pay-1": PAYOUT}, [("r1", settled()), ("r2", returned)])
    assert [s.result for s in steps] == [RailResult.SETTLED, RailResult.RETURNED]
    assert [s.payout.status for s in steps if s.payout] == ["released", "settled"]
    # consume (reserved −100, consumed +100), then refund (consumed −100)
    assert funding_changes(steps) == {"fund-1": (Decimal("-100.00"), Decimal("0.00"))}
    assert steps[1].transition is not None and steps[1].transition.invoices_payable_again


def test_replays_reuses_and_unknown_payouts_in_one_batch() -> None:
    failed = RailEvent("failed", "pay-1", failure_code="AC04")
    steps = decide_rail_events(
        {"r0": settled()},
        {"pay-1": PAYOUT},
        [
            ("r0", settled()),  # recorded before, same body: a replay
            ("r1", failed),
            ("r1", failed),  # a replay within the batch
            ("r1", settled()),  # the id again with another body
            ("r2", RailEvent("settled", "nobody", Decimal("1"), "EUR", T0)),
            ("r3", settled()),  # the payout failed meanwhile: a conflict
        ],
    )
    assert [s.result for s in steps] == [
        RailResult.DUPLICATE_RAIL_EVENT,
        RailResult.FAILED,
        RailResult.DUPLICATE_RAIL_EVENT,
        RailResult.RAIL_EVENT_ID_REUSED,
        RailResult.UNKNOWN_PAYOUT,
        RailResult.STATUS_CONFLICT,
    ]
    assert [s.recorded for s in steps] == [False, True, False, False, True, True]
    assert [s.reused for s in steps] == [False, False, False, True, False, False]
    assert funding_changes(steps) == {"fund-1": (Decimal("-100.00"), Decimal(0))}
