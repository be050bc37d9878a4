"""Reconcile (only changes are published), due_by, and override decisions (SPEC §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.matching import domain as d
from services.matching.config import SPEC_DEFAULT_ROLES
from tests.unit.matching.factory import invoice, line, policy, receipt, state

PRICE = d.Finding("price_mismatch", "1", "ap", "soft_review")
MISSING = d.Finding("missing_receipt", "1", "ops", "hold")


def stored(f: d.Finding, hold_id: str = "h1") -> d.StoredHold:
    return d.StoredHold(hold_id, f.reason, f.line_id, f.queue, f.action)


APPROVED = d.Approved(1, "engineering", (), d.ZERO, (), ())


# --- reconcile --------------------------------------------------------------------------------------


def test_a_new_failure_opens_a_hold_and_a_held_decision() -> None:
    ch = d.reconcile({"INV-1": d.Held((PRICE,))}, {}, {})
    assert [o.finding for o in ch.openings] == [PRICE]
    assert [(c.seq, c.revokes_approval) for c in ch.decisions] == [(1, False)]


def test_the_same_outcome_again_changes_nothing() -> None:
    held = d.Held((PRICE,))
    decided = {"INV-1": d.StoredDecision("held", d.fingerprint(held), 1)}
    assert d.reconcile({"INV-1": held}, {"INV-1": [stored(PRICE)]}, decided).empty


def test_a_condition_that_no_longer_holds_is_released_by_rematch() -> None:
    decided = {"INV-1": d.StoredDecision("held", d.fingerprint(d.Held((MISSING,))), 1)}
    ch = d.reconcile({"INV-1": APPROVED}, {"INV-1": [stored(MISSING)]}, decided)
    assert [(r.hold.hold_id, r.released_by) for r in ch.releases] == [("h1", "rematch")]
    assert [(c.seq, type(c.outcome)) for c in ch.decisions] == [(2, d.Approved)]


def test_a_hold_covered_by_an_override_is_released_by_override() -> None:
    ovr = d.Override("OVR-1", "INV-1", "ap.lead", frozenset({PRICE.key}))
    ch = d.reconcile({"INV-1": APPROVED}, {"INV-1": [stored(PRICE)]}, {}, [ovr])
    assert [(r.released_by, r.override) for r in ch.releases] == [("override", ovr)]


def test_a_superseded_invoice_has_its_holds_released_by_correction() -> None:
    ch = d.reconcile({"INV-1": d.Superseded("INV-2")}, {"INV-1": [stored(PRICE)]}, {})
    assert [r.released_by for r in ch.releases] == ["correction"]


@pytest.mark.parametrize(
    ("before", "after", "revokes"),
    [
        ("approved", d.Held((MISSING,)), True),
        ("approved", d.Superseded("INV-2"), True),
        ("held", d.Held((MISSING,)), False),
        ("none", d.Held((MISSING,)), False),
    ],
)
def test_losing_an_approval_is_a_revocation(before: str, after: d.Outcome, revokes: bool) -> None:
    ch = d.reconcile({"INV-1": after}, {}, {"INV-1": d.StoredDecision(before, "something else", 3)})
    assert [(c.seq, c.revokes_approval) for c in ch.decisions] == [(4, revokes)]


def test_a_new_po_version_is_a_new_approval() -> None:
    v2 = d.Approved(2, "engineering", (), d.ZERO, (), ())
    decided = {"INV-1": d.StoredDecision("approved", d.fingerprint(APPROVED), 1)}
    ch = d.reconcile({"INV-1": v2}, {}, decided)
    assert [(c.seq, c.revokes_approval) for c in ch.decisions] == [(2, False)]


def test_a_receipt_reversal_reopens_the_hold_and_revokes_the_approval() -> None:
    pol = policy()
    before = d.evaluate(state(invoice(), receipts=(receipt(),)), pol)
    holds, decided = d.apply_changes(d.reconcile(before, {}, {}), {}, {})
    after = d.evaluate(state(invoice(), receipts=()), pol)
    ch = d.reconcile(after, holds, decided)
    assert [o.finding.reason for o in ch.openings] == ["missing_receipt"]
    assert [c.revokes_approval for c in ch.decisions] == [True]


# --- due_by: the cutoff of the next payout run ----------------------------------------------------


@pytest.mark.parametrize(
    ("opened_at", "interval", "due_by"),
    [
        (datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC), 30, datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)),
        (datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC), 30, datetime(2026, 3, 1, 10, 1, 0, tzinfo=UTC)),
        (
            datetime(2026, 3, 1, 10, 0, 29, 999999, tzinfo=UTC),
            30,
            datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC),
        ),
        (datetime(2026, 3, 1, 10, 17, tzinfo=UTC), 3600, datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
        (
            datetime(2026, 3, 1, 11, 17, tzinfo=timezone(timedelta(hours=1))),
            3600,
            datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
        ),
        (datetime(2026, 3, 1, 23, 59, tzinfo=UTC), 86400, datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),
        (
            datetime(2026, 3, 1, 10, 0, 0, 100000, tzinfo=UTC),
            0.25,
            datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC),
        ),
    ],
)
def test_due_by_is_the_next_run_cutoff_strictly_after_opening(
    opened_at: datetime, interval: float, due_by: datetime
) -> None:
    assert d.next_run_cutoff(opened_at, interval) == due_by


def test_fulfilment_holds_name_the_po_requester_others_the_queue_owner() -> None:
    pol = d.Policy(default=policy().default, queue_owners={"ops": "ops.lead", "ap": "ap.lead"})
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert d.describe_hold(MISSING, pol, "requester@x", at, 30).owner == "requester@x"
    assert d.describe_hold(PRICE, pol, "requester@x", at, 30).owner == "ap.lead"
    assert d.describe_hold(MISSING, pol, None, at, 30).owner == "ops.lead"


# --- overrides --------------------------------------------------------------------------------------

HARD = d.StoredHold("h2", "invalid_po_line_ref", "2", "ap", "hard_fail")
AWAIT = d.StoredHold("h3", "awaiting_po", None, "ap", "hold")
OPS_HOLD = stored(MISSING, "h4")


def req(
    reasons: tuple[str, ...] | None = None,
    requested_by: str = "clerk",
    approved_by: str = "ap.lead@example.com",
    evidence: tuple[str, ...] = ("doc-1",),
) -> d.OverrideRequest:
    return d.OverrideRequest(
        "OVR-1", "INV-1", reasons, "price_exception", requested_by, approved_by, evidence
    )


OVERRIDES = [
    # (name, request, open holds, superseded, accepted, refusal reasons)
    ("ap lead releases a price hold", req(), [stored(PRICE)], False, True, ()),
    (
        "approver is the requester",
        req(requested_by="ap.lead@example.com"),
        [stored(PRICE)],
        False,
        False,
        ("approver_is_requester",),
    ),
    (
        "approver lacks the ops role",
        req(),
        [stored(PRICE), OPS_HOLD],
        False,
        False,
        ("approver_lacks_role:ops",),
    ),
    (
        "controller may release every queue",
        req(approved_by="controller@example.com"),
        [stored(PRICE), OPS_HOLD],
        False,
        True,
        (),
    ),
    (
        "unknown person has no role",
        req(approved_by="stranger@example.com"),
        [stored(PRICE)],
        False,
        False,
        ("approver_lacks_role:ap",),
    ),
    ("blank evidence", req(evidence=("  ",)), [stored(PRICE)], False, False, ("evidence_missing",)),
    (
        "a hard fail is never overridden",
        req(("invalid_po_line_ref",)),
        [stored(PRICE), HARD],
        False,
        False,
        ("not_overridable:invalid_po_line_ref",),
    ),
    (
        "'all' including a hard fail releases nothing",
        req(),
        [stored(PRICE), HARD],
        False,
        False,
        ("not_overridable:invalid_po_line_ref",),
    ),
    (
        "awaiting_po cannot be overridden",
        req(approved_by="controller@example.com"),
        [AWAIT],
        False,
        False,
        ("not_overridable:awaiting_po",),
    ),
    (
        "naming a hold that is not open",
        req(("qty_over_ordered",)),
        [stored(PRICE)],
        False,
        False,
        ("hold_not_open:qty_over_ordered",),
    ),
    ("nothing open", req(), [], False, False, ("no_open_holds",)),
    ("superseded invoice", req(), [], True, False, ("invoice_superseded", "no_open_holds")),
    (
        "every reason at once",
        req(requested_by="ap.lead@example.com", evidence=("",)),
        [stored(PRICE), OPS_HOLD],
        False,
        False,
        ("approver_is_requester", "evidence_missing", "approver_lacks_role:ops"),
    ),
]


@pytest.mark.parametrize(
    ("name", "override_request", "holds", "superseded", "accepted", "why"),
    OVERRIDES,
    ids=[o[0] for o in OVERRIDES],
)
def test_override_decision(
    name: str,
    override_request: d.OverrideRequest,
    holds: list[d.StoredHold],
    superseded: bool,
    accepted: bool,
    why: tuple[str, ...],
) -> None:
    decision = d.decide_override(override_request, holds, superseded, SPEC_DEFAULT_ROLES)
    assert (decision.accepted, decision.reasons) == (accepted, why)
    assert decision.scope == (frozenset(h.key for h in holds) if accepted else frozenset())


def test_override_of_an_unknown_invoice_is_refused() -> None:
    decision = d.decide_override(req(), None, False, SPEC_DEFAULT_ROLES)
    assert (decision.accepted, decision.reasons) == (False, ("invoice_unknown",))


def test_named_reasons_release_only_those_holds() -> None:
    decision = d.decide_override(
        req(("price_mismatch",), approved_by="controller@example.com"),
        [stored(PRICE), OPS_HOLD],
        False,
        SPEC_DEFAULT_ROLES,
    )
    assert decision.accepted and decision.scope == frozenset({PRICE.key})


def test_an_accepted_override_lets_the_invoice_be_approved_with_its_id() -> None:
    ovr = d.Override("OVR-1", "INV-1", "ap.lead", frozenset({("price_mismatch", "1")}))
    out = d.evaluate(
        state(invoice("INV-1", line(price="101.00")), receipts=(receipt(),), overrides=(ovr,)), policy()
    )["INV-1"]
    assert isinstance(out, d.Approved) and out.override_ids == ("OVR-1",)
