"""The pure parts of the ledger's queries: decisions → holds/overrides/approvals, expected AP,
payments per invoice, 1099-NEC totals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from services.ledger.queries import decisions, invariants, nec1099, reconciliation, views

T1 = datetime(2026, 11, 1, tzinfo=UTC)
T2 = datetime(2026, 11, 2, tzinfo=UTC)
T3 = datetime(2026, 11, 3, tzinfo=UTC)


def decision(kind: str, invoice_id: str = "INV-1", at: datetime = T1, **payload: Any) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "kind": kind,
        "decision_id": payload.get("decision_id"),
        "po_version": payload.get("po_version"),
        "decided_at": at,
        "payee_id": payload.get("payee_id", "P"),
        "currency": payload.get("currency", "USD"),
        "payable_amount": payload.get("payable_amount"),
        "document_type": payload.get("document_type", "invoice"),
        "payload": payload,
    }


def hold(hold_id: str, reason: str = "price_mismatch") -> dict[str, Any]:
    return {"hold_id": hold_id, "reason": reason, "queue": "ap", "action": "soft_review", "line_id": "1"}


def test_holds_keep_when_first_seen_and_are_open_only_if_the_latest_decision_lists_them() -> None:
    rows = [
        decision("held", at=T1, holds=[hold("H1"), hold("H2", "missing_receipt")]),
        decision("held", at=T2, holds=[hold("H2", "missing_receipt")]),
        decision("held", "INV-2", at=T2, holds=[hold("H3")]),
        decision("approved_to_pay", "INV-2", at=T3, payable_amount=D(1)),
    ]
    views = {h.hold_id: (h.first_held_at, h.open) for h in decisions.holds_from_decisions(rows)}
    assert views == {"H1": (T1, False), "H2": (T1, True), "H3": (T2, False)}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([decision("approved_to_pay", payable_amount=D("10"))], {"INV-1": ("P", "USD", D("10"))}),
        (
            [decision("approved_to_pay", payable_amount=D("10")), decision("approval_revoked")],
            {},
        ),
        (
            [
                decision("approved_to_pay", payable_amount=D("10")),
                decision("approval_revoked"),
                decision("approved_to_pay", payable_amount=D("12")),
            ],
            {"INV-1": ("P", "USD", D("12"))},
        ),
        (
            [
                decision("approved_to_pay", payable_amount=D("10")),
                decision("approved_to_pay", payable_amount=D("11")),
            ],
            {"INV-1": ("P", "USD", D("11"))},
        ),
        (
            [decision("approved_to_pay", payable_amount=D("4"), document_type="credit_note")],
            {"INV-1": ("P", "USD", D("-4"))},
        ),
        ([decision("held", holds=[hold("H")])], {}),
        (
            [
                decision("approved_to_pay", payable_amount=D("10"), decision_id="D1"),
                decision("approval_revoked", decision_id="D2"),
                decision("approved_to_pay", payable_amount=D("10"), decision_id="D1"),
            ],
            {},
        ),
    ],
    ids=[
        "approved",
        "revoked",
        "re-approved after revocation",
        "re-approved",
        "credit note",
        "held only",
        "old approval replayed after revocation",
    ],
)
def test_current_approvals(rows: list[dict[str, Any]], expected: dict[str, tuple[str, str, D]]) -> None:
    assert invariants.current_approvals(rows) == expected


def test_expected_ap_is_approved_minus_released_plus_failed_and_returned() -> None:
    approvals = {"I1": ("P", "USD", D("100")), "I2": ("P", "USD", D("-30")), "I3": ("Q", "EUR", D("5"))}
    released = [("P", "USD", D("70"))]
    reinstated = [("P", "USD", D("70")), ("Q", "EUR", D("0"))]
    assert invariants.expected_ap(approvals, released, reinstated) == {
        ("P", "USD"): D("70"),
        ("Q", "EUR"): D("5"),
    }


def test_paid_counts_settled_payouts_that_were_not_returned() -> None:
    payouts = [
        {
            "payout_id": "A",
            "invoices": [{"invoice_id": "I1", "amount": "10.00"}, {"invoice_id": "I2", "amount": "-2.00"}],
        },
        {"payout_id": "B", "invoices": [{"invoice_id": "I3", "amount": "5.00"}]},
        {"payout_id": "C", "invoices": [{"invoice_id": "I4", "amount": "7.00"}]},
        {"payout_id": "D", "invoices": [{"invoice_id": "I5", "amount": "9.00"}]},
    ]
    outcomes = {"A": {"settled"}, "B": {"settled", "returned"}, "C": {"failed"}}
    assert reconciliation.paid_per_invoice(payouts, outcomes) == {"I1": D("10.00"), "I2": D("-2.00")}


def test_overrides_come_with_approver_reason_and_evidence() -> None:
    detailed = decision(
        "approved_to_pay",
        override_ids=["O1", "O2"],
        overrides=[
            {
                "override_id": "O1",
                "approved_by": "ap.lead@example.com",
                "requested_by": "clerk@example.com",
                "reason_code": "price_agreed",
                "justification": "agreed",
                "evidence": ["doc://1"],
                "hold_reasons": ["price_mismatch"],
            }
        ],
        approvals=[
            {"by": "ops.lead@example.com", "what": "override O2 (late_receipt) released missing_receipt@1"}
        ],
    )
    views = {o.override_id: o for o in decisions.overrides_from_decisions([detailed])}
    assert (views["O1"].approved_by, views["O1"].reason_code, views["O1"].evidence) == (
        "ap.lead@example.com",
        "price_agreed",
        ("doc://1",),
    )
    # without details, the approval that names the override says who and why
    assert views["O2"].approved_by == "ops.lead@example.com"
    assert views["O2"].justification is not None and "late_receipt" in views["O2"].justification


def test_approvals_list_po_approvers_once_then_decision_approvals() -> None:
    po = views.PoVersionView("PO", 1, "bu", "P", "USD", "buyer", "mgr", T1, None, None, None, (), T1, None)
    row = decision(
        "approved_to_pay",
        approvals=[
            {"by": "mgr", "role": "po_approver", "what": "purchase_order PO v1"},
            {"by": "lead", "role": "override_approver", "what": "override O1"},
        ],
    )
    assert [(a.by, a.source) for a in decisions.approvals_from([po], [row, row])] == [
        ("mgr", "po"),
        ("lead", "INV-1"),
    ]


def test_ordered_value_rounds_each_line_to_the_currency() -> None:
    state = {
        "currency": "USD",
        "lines": [{"quantity": "3", "unit_price": "0.333333"}, {"quantity": "2", "unit_price": "10.005"}],
    }
    assert reconciliation.ordered_value(state) == D("1.00") + D("20.01")


def nec_row(payee: str, outcome: str, amount: str, payout: str = "X") -> dict[str, Any]:
    return {
        "payee_id": payee,
        "country": "US",
        "currency": "USD",
        "outcome": outcome,
        "amount": D(amount),
        "payout_id": payout,
    }


def test_1099_totals_net_returns_and_apply_the_threshold_inclusively() -> None:
    rows = [
        nec_row("A", "settled", "500", "p1"),
        nec_row("A", "settled", "200", "p2"),
        nec_row("A", "returned", "100", "p2"),
        nec_row("B", "settled", "599.99"),
        nec_row("C", "settled", "600"),
    ]
    totals = nec1099.nec_totals(rows, D("600"))
    assert [(t.payee_id, t.paid, t.payouts) for t in totals] == [("A", D("600"), 2), ("C", D("600"), 1)]


@pytest.mark.parametrize(
    ("since", "now", "days"),
    [(T1, T3, 2), (T3, T1, 0), (None, T1, 0)],
)
def test_age_days(since: datetime | None, now: datetime, days: int) -> None:
    assert reconciliation.age_days(since, now) == days


def test_invariant_names_stay_stable_for_the_cli_and_the_chaos_run() -> None:
    assert set(invariants.INVARIANTS) == {
        "entry_balances_per_currency",
        "ap_is_approved_minus_released_plus_failed_returned",
        "in_transit_is_released_minus_settled_failed",
        "no_source_event_posted_twice",
    }


def test_a_po_approval_in_the_trace_names_the_limit_that_allowed_it() -> None:
    # SPEC §13.1: which approval limit allowed each approval
    limit = {
        "person": "mgr",
        "kind": "purchase_order",
        "currency": "*",
        "limit": "1000000.00",
        "business_units": "*",
        "rule": "approval_limits.mgr.purchase_order[0]",
    }
    po = views.PoVersionView(
        "PO", 1, "bu", "P", "USD", "buyer", "mgr", T1, None, None, None, (), T1, None, approval_limit=limit
    )
    [approval] = decisions.approvals_from([po], [])
    assert approval.what == (
        "PO PO v1 approved (created by buyer) within approval_limits.mgr.purchase_order[0] "
        "(1000000.00 any currency, business units *)"
    )
    unlimited = views.PoVersionView(
        "PO",
        2,
        "bu",
        "P",
        "USD",
        "buyer",
        "ctl",
        T1,
        None,
        None,
        None,
        (),
        T1,
        None,
        approval_limit=limit | {"limit": None},
    )
    assert "(unlimited, business units *)" in decisions.approvals_from([unlimited], [])[0].what
