"""Payout release, pure: the six gates, grouping and netting, funding, ids, rail responses (SPEC §8)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.payout_release.domain import (
    ALL_AUTOMATED,
    Candidate,
    Cohorts,
    FundingAccount,
    PayeeStanding,
    PayoutFacts,
    PoInForce,
    RailEvent,
    RunPlan,
    apply_rail_event,
    payout_id_for,
    plan_run,
    rail_anomaly,
    reused_rail_event_id,
    scheduled_run_id,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RUN = "run-1"

INV = Candidate(
    invoice_id="inv-1",
    payee_id="payee-1",
    approved=True,
    legal_entity="LE-1",
    business_unit="BU-A",
    currency="EUR",
    document_type="invoice",
    payable_amount=Decimal("100.00"),
    issue_date=date(2026, 11, 1),
    po_number="PO-1",
    po_version=1,
)
ELIGIBLE = PayeeStanding(eligible=True, payout_account_ref="acct-tok-1")
PO = PoInForce(version=1, closed=False, effective_from=date(2026, 1, 1), effective_to=date(2026, 12, 31))
FUNDS = FundingAccount("fund-1", "LE-1", "EUR", Decimal("1000.00"))


def plan(
    candidates: list[Candidate],
    *,
    payees: dict[str, PayeeStanding] | None = None,
    pos: dict[str, PoInForce] | None = None,
    funding: list[FundingAccount] | None = None,
    automated: Cohorts = ALL_AUTOMATED,
    now: datetime = NOW,
    run_id: str = RUN,
    **kw: object,
) -> RunPlan:
    return plan_run(
        candidates,
        {"payee-1": ELIGIBLE, "payee-2": ELIGIBLE} if payees is None else payees,
        {"PO-1": PO} if pos is None else pos,
        [FUNDS] if funding is None else funding,
        automated,
        now,
        run_id,
        **kw,  # type: ignore[arg-type]
    )


def reasons_of(p: RunPlan) -> dict[str, tuple[str, ...]]:
    return {b.invoice_id: b.reasons for b in p.blocks}


def released_ids(p: RunPlan) -> set[str]:
    return {i for r in p.releases for i in r.invoice_ids}


# --- each gate ------------------------------------------------------------------------------

GATE_CASES = [
    # (name, candidate, payees, pos, funding, automated, expected reasons (None = released))
    ("all gates pass", INV, None, None, None, ALL_AUTOMATED, None),
    ("1 held by matching", replace(INV, approved=False), None, None, None, ALL_AUTOMATED, ("not_approved",)),
    (
        "1 only ever held (no approval facts)",
        Candidate("inv-1", "payee-1", approved=False),
        None,
        None,
        None,
        ALL_AUTOMATED,
        ("not_approved",),
    ),
    (
        "2 payee ineligible lists the compliance codes",
        INV,
        {"payee-1": PayeeStanding(False, ("tax_form_missing", "aml_not_clear"))},
        None,
        None,
        ALL_AUTOMATED,
        ("payee_ineligible", "tax_form_missing", "aml_not_clear"),
    ),
    ("2 payee never heard of", INV, {}, None, None, ALL_AUTOMATED, ("payee_ineligible", "payee_unknown")),
    (
        "3 newer PO version in force",
        INV,
        None,
        {"PO-1": replace(PO, version=2)},
        None,
        ALL_AUTOMATED,
        ("stale_po",),
    ),
    ("3 PO closed", INV, None, {"PO-1": replace(PO, closed=True)}, None, ALL_AUTOMATED, ("po_not_in_force",)),
    (
        "3 PO expired before release date",
        INV,
        None,
        {"PO-1": replace(PO, effective_to=date(2026, 11, 20))},
        None,
        ALL_AUTOMATED,
        ("po_not_in_force",),
    ),
    (
        "3 PO not yet effective",
        INV,
        None,
        {"PO-1": replace(PO, effective_from=date(2026, 11, 22))},
        None,
        ALL_AUTOMATED,
        ("po_not_in_force",),
    ),
    (
        "3 PO valid on its last day",
        INV,
        None,
        {"PO-1": replace(PO, effective_to=date(2026, 11, 21))},
        None,
        ALL_AUTOMATED,
        None,
    ),
    ("3 PO never heard of", INV, None, {}, None, ALL_AUTOMATED, ("po_not_in_force",)),
    (
        "3 PO closure heard before any version",
        INV,
        None,
        {"PO-1": PoInForce(version=None, closed=True)},
        None,
        ALL_AUTOMATED,
        ("po_not_in_force",),
    ),
    (
        "3 stale and closed",
        INV,
        None,
        {"PO-1": replace(PO, version=3, closed=True)},
        None,
        ALL_AUTOMATED,
        ("stale_po", "po_not_in_force"),
    ),
    (
        "3 no-PO invoice skips the PO check",
        replace(INV, po_number=None, po_version=None),
        None,
        {},
        None,
        ALL_AUTOMATED,
        None,
    ),
    (
        "4 not enough funding",
        INV,
        None,
        None,
        [replace(FUNDS, available=Decimal("99.99"))],
        ALL_AUTOMATED,
        ("insufficient_funds",),
    ),
    (
        "4 exactly enough funding",
        INV,
        None,
        None,
        [replace(FUNDS, available=Decimal("100.00"))],
        ALL_AUTOMATED,
        None,
    ),
    (
        "4 no funding account for the entity",
        INV,
        None,
        None,
        [replace(FUNDS, legal_entity="LE-2")],
        ALL_AUTOMATED,
        ("insufficient_funds",),
    ),
    (
        "4 no funding account in the currency",
        INV,
        None,
        None,
        [replace(FUNDS, currency="USD")],
        ALL_AUTOMATED,
        ("insufficient_funds",),
    ),
    (
        "5 business unit not in the cohort",
        INV,
        None,
        None,
        None,
        Cohorts(frozenset({"BU-B"})),
        ("not_automated",),
    ),
    ("5 business unit in the cohort", INV, None, None, None, Cohorts(frozenset({"BU-A"})), None),
    (
        "6 already in a live payout: neither paid nor blocked",
        replace(INV, in_live_payout=True),
        None,
        None,
        None,
        ALL_AUTOMATED,
        (),
    ),
    (
        "every reason at once",
        replace(INV, approved=False),
        {},
        {"PO-1": replace(PO, closed=True)},
        [replace(FUNDS, available=Decimal("1"))],
        Cohorts(frozenset()),
        ("not_approved", "payee_ineligible", "payee_unknown", "insufficient_funds", "not_automated"),
    ),
    (
        "every reason of an approved invoice",
        INV,
        {"payee-1": PayeeStanding(False, ("tax_form_expired",))},
        {"PO-1": replace(PO, version=2, closed=True)},
        [],
        Cohorts(frozenset()),
        (
            "payee_ineligible",
            "tax_form_expired",
            "stale_po",
            "po_not_in_force",
            "insufficient_funds",
            "not_automated",
        ),
    ),
]


@pytest.mark.parametrize(
    ("candidate", "payees", "pos", "funding", "automated", "expected"),
    [c[1:] for c in GATE_CASES],
    ids=[c[0] for c in GATE_CASES],
)
def test_release_gates(
    candidate: Candidate,
    payees: dict[str, PayeeStanding] | None,
    pos: dict[str, PoInForce] | None,
    funding: list[FundingAccount] | None,
    automated: Cohorts,
    expected: tuple[str, ...] | None,
) -> None:
    p = plan([candidate], payees=payees, pos=pos, funding=funding, automated=automated)
    if expected is None:
        assert released_ids(p) == {candidate.invoice_id}
        assert p.blocks == ()
    elif expected == ():
        assert p.releases == () and p.blocks == ()
    else:
        assert released_ids(p) == set()
        assert reasons_of(p) == {candidate.invoice_id: expected}


def test_requested_run_releases_a_non_automated_business_unit() -> None:
    cohorts = Cohorts(frozenset({"BU-B"}))
    assert released_ids(plan([INV], automated=cohorts)) == set()
    assert released_ids(plan([INV], automated=cohorts, requested=True)) == {"inv-1"}


def test_requested_run_does_not_bypass_other_gates() -> None:
    p = plan([replace(INV, approved=False)], requested=True)
    assert reasons_of(p) == {"inv-1": ("not_approved",)}


def test_run_filters_narrow_the_candidates() -> None:
    usd = replace(INV, invoice_id="inv-usd", currency="USD")
    other_le = replace(INV, invoice_id="inv-le2", legal_entity="LE-2")
    held_unknown = Candidate("inv-held", "payee-1", approved=False)
    funding = [FUNDS, FundingAccount("fund-usd", "LE-1", "USD", Decimal("500"))]
    p = plan([INV, usd, other_le, held_unknown], funding=funding, legal_entity="LE-1", currency="EUR")
    assert released_ids(p) == {"inv-1"}
    assert reasons_of(p) == {}  # out-of-scope invoices are not candidates of this run
    unfiltered = plan([INV, usd, other_le, held_unknown], funding=funding)
    assert released_ids(unfiltered) == {"inv-1", "inv-usd"}
    assert set(reasons_of(unfiltered)) == {"inv-le2", "inv-held"}


# --- grouping and netting -------------------------------------------------------------------


def test_one_payout_per_payee_currency_entity_and_account() -> None:
    a = INV
    b = replace(INV, invoice_id="inv-2", payable_amount=Decimal("50.00"))
    c = replace(INV, invoice_id="inv-3", payee_id="payee-2")
    d = replace(INV, invoice_id="inv-4", currency="USD")
    funding = [FUNDS, FundingAccount("fund-usd", "LE-1", "USD", Decimal("1000"))]
    p = plan([a, b, c, d], funding=funding)
    by_key = {(r.payee_id, r.currency, r.legal_entity, r.funding_account_id): r for r in p.releases}
    assert set(by_key) == {
        ("payee-1", "EUR", "LE-1", "fund-1"),
        ("payee-2", "EUR", "LE-1", "fund-1"),
        ("payee-1", "USD", "LE-1", "fund-usd"),
    }
    combined = by_key[("payee-1", "EUR", "LE-1", "fund-1")]
    assert combined.invoice_ids == ("inv-1", "inv-2")
    assert combined.amount == Decimal("150.00")
    assert combined.payout_account_ref == "acct-tok-1"
    assert p.reservations == {"fund-1": Decimal("250.00"), "fund-usd": Decimal("100.00")}


def test_credit_note_nets_against_invoices_of_its_group() -> None:
    credit = replace(INV, invoice_id="cn-1", document_type="credit_note", payable_amount=Decimal("30.00"))
    p = plan([INV, credit])
    [payout] = p.releases
    assert payout.amount == Decimal("70.00")
    assert {(line.invoice_id, line.amount) for line in payout.lines} == {
        ("inv-1", Decimal("100.00")),
        ("cn-1", Decimal("-30.00")),
    }
    assert p.reservations == {"fund-1": Decimal("70.00")}


def test_credit_note_of_another_payee_does_not_net() -> None:
    credit = replace(INV, invoice_id="cn-1", payee_id="payee-2", document_type="credit_note")
    p = plan([INV, credit])
    assert [r.amount for r in p.releases] == [Decimal("100.00")]
    assert reasons_of(p) == {"cn-1": ("carried_forward",)}


@pytest.mark.parametrize(
    ("credit", "released"),
    [("100.00", False), ("150.00", False), ("99.99", True)],
    ids=["net zero carries forward", "net negative carries forward", "net one cent is paid"],
)
def test_group_at_or_below_zero_carries_forward(credit: str, released: bool) -> None:
    cn = replace(INV, invoice_id="cn-1", document_type="credit_note", payable_amount=Decimal(credit))
    p = plan([INV, cn])
    if released:
        assert [r.amount for r in p.releases] == [Decimal("0.01")]
    else:
        assert p.releases == ()
        assert reasons_of(p) == {"inv-1": ("carried_forward",), "cn-1": ("carried_forward",)}
        assert p.reservations == {}


def test_credit_note_lets_an_invoice_fit_the_funding() -> None:
    cn = replace(INV, invoice_id="cn-1", document_type="credit_note", payable_amount=Decimal("40.00"))
    p = plan([INV, cn], funding=[replace(FUNDS, available=Decimal("60.00"))])
    assert released_ids(p) == {"inv-1", "cn-1"}


def test_held_credit_note_does_not_net() -> None:
    cn = replace(
        INV, invoice_id="cn-1", document_type="credit_note", payable_amount=Decimal("40.00"), approved=False
    )
    p = plan([INV, cn])
    assert [r.amount for r in p.releases] == [Decimal("100.00")]
    assert reasons_of(p) == {"cn-1": ("not_approved",)}


# --- funding --------------------------------------------------------------------------------


def test_funding_is_never_overdrawn_oldest_invoices_first() -> None:
    old = replace(INV, invoice_id="inv-old", issue_date=date(2026, 10, 1), payable_amount=Decimal("60"))
    new = replace(INV, invoice_id="inv-new", issue_date=date(2026, 11, 1), payable_amount=Decimal("60"))
    other = replace(INV, invoice_id="inv-other", payee_id="payee-2", payable_amount=Decimal("50"))
    p = plan([new, old, other], funding=[replace(FUNDS, available=Decimal("110"))])
    assert released_ids(p) == {"inv-old", "inv-other"}
    assert reasons_of(p) == {"inv-new": ("insufficient_funds",)}
    assert sum(r.amount for r in p.releases) <= Decimal("110")
    assert p.reservations == {"fund-1": Decimal("110")}


def test_funding_comes_from_the_account_with_most_available() -> None:
    small = FundingAccount("fund-a", "LE-1", "EUR", Decimal("150"))
    large = FundingAccount("fund-b", "LE-1", "EUR", Decimal("200"))
    p1 = replace(INV, invoice_id="i1", payable_amount=Decimal("120"))
    p2 = replace(INV, invoice_id="i2", payee_id="payee-2", payable_amount=Decimal("120"))
    p = plan([p1, p2], funding=[small, large])
    assert {r.payee_id: r.funding_account_id for r in p.releases} == {
        "payee-1": "fund-b",
        "payee-2": "fund-a",
    }
    assert p.reservations == {"fund-a": Decimal("120"), "fund-b": Decimal("120")}


# --- ids ------------------------------------------------------------------------------------


def test_payout_ids_are_deterministic_per_run_and_group() -> None:
    first = plan([INV, replace(INV, invoice_id="inv-2", payee_id="payee-2")])
    again = plan([replace(INV, invoice_id="inv-2", payee_id="payee-2"), INV])
    assert [r.payout_id for r in first.releases] == [r.payout_id for r in again.releases]
    assert len({r.payout_id for r in first.releases}) == 2
    later = plan([INV], run_id="run-2")
    assert later.releases[0].payout_id not in {r.payout_id for r in first.releases}


def test_payout_id_names_every_part_of_the_group() -> None:
    base = ("run-1", "payee-1", "EUR", "LE-1", "fund-1")
    ids = {payout_id_for(*base)}
    for i in range(len(base)):
        changed = list(base)
        changed[i] = changed[i] + "x"
        ids.add(payout_id_for(*changed))
    assert len(ids) == len(base) + 1
    assert payout_id_for(*base) == payout_id_for(*base)
    assert payout_id_for(*base).startswith("payout_")


@pytest.mark.parametrize(
    ("now", "interval", "expected"),
    [
        (datetime(2026, 11, 21, 12, 0, 29, tzinfo=UTC), 30, "run-20261121T120000Z"),
        (datetime(2026, 11, 21, 12, 0, 30, tzinfo=UTC), 30, "run-20261121T120030Z"),
        (datetime(2026, 11, 21, 12, 59, 59, 999, tzinfo=UTC), 3600, "run-20261121T120000Z"),
        (datetime(2026, 11, 21, 12, 0, 7, tzinfo=UTC), 0.5, "run-20261121T120007Z"),
    ],
)
def test_scheduled_run_id_is_the_schedule_slot(now: datetime, interval: float, expected: str) -> None:
    assert scheduled_run_id(now, interval) == expected


# --- rail responses -------------------------------------------------------------------------

RAIL_CASES = [
    # (status, rail event, result, new status, funding effect, payable again, exception)
    (None, "settled", "unknown_payout", None, None, False, None),
    (None, "failed", "unknown_payout", None, None, False, None),
    ("released", "settled", "settled", "settled", "consume", False, None),
    ("released", "failed", "failed", "failed", "unreserve", True, "payout_failed"),
    ("released", "returned", "invalid_transition_released_to_returned", None, None, False, None),
    ("settled", "returned", "returned", "returned", "refund", True, "payout_returned"),
    ("settled", "settled", "already_settled", None, None, False, None),
    ("settled", "failed", "invalid_transition_settled_to_failed", None, None, False, None),
    ("failed", "failed", "already_failed", None, None, False, None),
    ("failed", "settled", "invalid_transition_failed_to_settled", None, None, False, None),
    ("returned", "returned", "already_returned", None, None, False, None),
    ("returned", "settled", "invalid_transition_returned_to_settled", None, None, False, None),
]


@pytest.mark.parametrize(
    ("status", "kind", "result", "new_status", "funding", "payable", "exception"), RAIL_CASES
)
def test_rail_responses(
    status: str | None,
    kind: str,
    result: str,
    new_status: str | None,
    funding: str | None,
    payable: bool,
    exception: str | None,
) -> None:
    outcome = apply_rail_event(status, kind)  # type: ignore[arg-type]
    assert (outcome.result, outcome.new_status, outcome.funding) == (result, new_status, funding)
    assert (outcome.invoices_payable_again, outcome.exception_reason) == (payable, exception)


# --- rail anomalies (SPEC §15) ----------------------------------------------------------------

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RELEASED = PayoutFacts("released", Decimal("1050.00"), "USD")


def settled_event(amount: str = "1050.00", currency: str = "USD") -> RailEvent:
    return RailEvent("settled", "pay-1", Decimal(amount), currency, AT)


@pytest.mark.parametrize(
    ("payout", "event", "expected"),
    [
        (RELEASED, settled_event(), None),
        (RELEASED, settled_event("1050"), None),  # the same amount, written differently
        (RELEASED, settled_event("1040.00"), ("amount_mismatch", "1050.00 USD", "1040.00 USD")),
        (RELEASED, settled_event("1050.00", "EUR"), ("currency_mismatch", "1050.00 USD", "1050.00 EUR")),
        (
            None,
            settled_event(),
            ("unknown_payout", None, "settled pay-1 1050.00 USD at 2026-11-21T12:00:00+00:00"),
        ),
        (
            replace(RELEASED, status="settled"),
            RailEvent("failed", "pay-1", failure_code="AC04"),
            ("status_conflict", "released", "settled"),
        ),
        (
            replace(RELEASED, status="returned"),
            RailEvent("failed", "pay-1", failure_code="AC04"),
            ("status_conflict", "released", "returned"),
        ),
        (replace(RELEASED, status="failed"), settled_event(), ("status_conflict", "released", "failed")),
        (
            RELEASED,
            RailEvent("returned", "pay-1", Decimal("1050.00"), "USD", AT),
            ("status_conflict", "settled", "released"),
        ),
        (replace(RELEASED, status="settled"), settled_event(), None),  # a replay under a new rail id
        (
            replace(RELEASED, status="settled"),
            settled_event("1.00"),
            ("amount_mismatch", "1050.00 USD", "1.00 USD"),
        ),
    ],
)
def test_rail_anomalies(
    payout: PayoutFacts | None, event: RailEvent, expected: tuple[str, str | None, str | None] | None
) -> None:
    anomaly = rail_anomaly(payout, event)
    assert (anomaly.what, anomaly.expected, anomaly.got) == expected if anomaly else expected is None


def test_a_reused_rail_event_id_is_an_anomaly_only_when_the_body_differs() -> None:
    assert reused_rail_event_id(settled_event(), settled_event("1050.0")) is None
    anomaly = reused_rail_event_id(settled_event(), settled_event("900.00"))
    assert anomaly is not None and anomaly.what == "rail_event_id_reused"
    assert (anomaly.expected, anomaly.got) == (
        "settled pay-1 1050.00 USD at 2026-11-21T12:00:00+00:00",
        "settled pay-1 900.00 USD at 2026-11-21T12:00:00+00:00",
    )
