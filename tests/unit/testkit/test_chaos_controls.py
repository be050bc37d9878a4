"""The chaos run's checks of SPEC §13.3 (a changed payout account is paid only after its
confirmation, to the new account) and §13.4 (a lapsed override reopens its hold, pays nothing),
read from output events as the run reads them."""

from __future__ import annotations

from datetime import date
from typing import Any

from chaos.outcome import Check, control_checks, summarise
from chaos.workload import Workload, build

W = build(3, 60, tag="x", today=date(2026, 11, 30))
PAYEE, (OLD, NEW) = sorted(W.account_changes.items())[0]
LAPSING = sorted(W.lapsing.items())
# An invoice of the changed payee the workload means to pay.
OWED = next(i for i, p in sorted(W.payee_of.items()) if p == PAYEE and W.expected[i].paid)


def _ev(topic: str, event_type: str, data: dict[str, Any], at: str = "2026-11-30T10:00:00+00:00") -> Any:
    return topic, {"event_type": event_type, "occurred_at": at, "data": data}


def _eligibility(eligible: bool, at: str) -> Any:
    reasons = [] if eligible else ["payout_account_unconfirmed"]
    data = {"payee_id": PAYEE, "eligible": eligible, "reasons": reasons}
    return _ev("compliance.eligibility", "payee.eligibility_changed", data, at)


def _released(account: str, released_at: str, invoice: str = OWED) -> Any:
    return _ev(
        "out.payouts",
        "payout.released",
        {
            "payout_id": f"p-{invoice}-{account}",
            "payee_id": PAYEE,
            "payout_account_ref": account,
            "currency": "EUR",
            "amount": "10.00",
            "released_at": released_at,
            "invoices": [{"invoice_id": invoice, "amount": "10.00"}],
        },
    )


def _lapsed(invoice: str, override_id: str) -> list[Any]:
    return [
        _ev("matching.decisions", "invoice.approval_revoked", {"invoice_id": invoice}),
        _ev("out.exceptions", "hold.opened", {"invoice_id": invoice, "lapsed_override_id": override_id}),
    ]


def _checks(seen: list[Any], workload: Workload = W) -> dict[str, Check]:
    run = summarise("f", workload, seen)
    base = summarise("b", workload, seen)
    return {c.name: c for c in control_checks(workload, base, run)}


ACCOUNTS = "changed payout accounts paid only after confirmation, to the new account"
LAPSES = "lapsed overrides reopened their hold and paid nothing"
CONFIRMATION = [
    _eligibility(False, "2026-11-30T09:00:00+00:00"),
    _eligibility(True, "2026-11-30T11:00:00+00:00"),
]
ALL_LAPSED = [e for inv, ovr in LAPSING for e in _lapsed(inv, ovr)]
REFUSED = [
    _ev(
        "out.rejections",
        "document.rejected",
        {"rejected_event_id": event_id, "reasons": [{"code": code, "field": "x", "message": "y"}]},
    )
    for event_id, code in sorted(W.refused_confirmations.items())
]


def test_the_workload_changes_accounts_and_lapses_overrides_of_a_changed_payee() -> None:
    assert W.account_changes and W.lapsing
    assert all(W.payee_of[inv] in W.account_changes for inv in W.lapsing)
    assert {r.event_type for r in W.phases["E"]} == {"payee.payout_account_confirmed"}
    assert {r.event_type for r in W.phases["D"]} == {"purchase_order.amended"}


def test_paid_after_confirmation_to_the_new_account_and_every_lapse_seen_passes() -> None:
    checks = _checks([*CONFIRMATION, _released(NEW, "2026-11-30T11:00:01+00:00"), *ALL_LAPSED, *REFUSED])
    assert checks[ACCOUNTS].ok and checks[LAPSES].ok, checks


def test_a_bad_confirmation_not_refused_with_its_reason_fails() -> None:
    assert sorted(W.refused_confirmations.values()) == ["payout_account_not_current", "sod_violation"]
    checks = _checks([*CONFIRMATION, _released(NEW, "2026-11-30T11:00:01+00:00"), *ALL_LAPSED, *REFUSED[:1]])
    assert not checks[ACCOUNTS].ok and "meant" in checks[ACCOUNTS].detail


def test_a_payout_to_the_old_account_fails() -> None:
    checks = _checks([*CONFIRMATION, _released(OLD, "2026-11-30T11:00:01+00:00"), *ALL_LAPSED])
    assert not checks[ACCOUNTS].ok and f"to {OLD}" in checks[ACCOUNTS].detail


def test_a_payout_before_the_confirmation_fails() -> None:
    checks = _checks([*CONFIRMATION, _released(NEW, "2026-11-30T10:59:59+00:00"), *ALL_LAPSED])
    assert not checks[ACCOUNTS].ok and "before confirmation" in checks[ACCOUNTS].detail


def test_no_payout_at_all_to_a_changed_account_fails() -> None:
    checks = _checks([*CONFIRMATION, *ALL_LAPSED])
    assert not checks[ACCOUNTS].ok and "no payout to a changed account" in checks[ACCOUNTS].detail


def test_a_lapse_without_its_hold_or_paid_anyway_fails() -> None:
    (inv, ovr), *rest = LAPSING
    others = [e for i, o in rest for e in _lapsed(i, o)]
    paid = _released(NEW, "2026-11-30T11:00:01+00:00", invoice=inv)
    checks = _checks([*CONFIRMATION, _released(NEW, "2026-11-30T11:00:01+00:00"), paid, *others])
    detail = checks[LAPSES].detail
    assert not checks[LAPSES].ok
    assert f"no hold.opened with lapsed_override_id {ovr}" in detail and "in a payout" in detail
