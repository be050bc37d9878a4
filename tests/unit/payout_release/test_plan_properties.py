"""Property tests: whatever the candidates, payees, POs and funding, a run keeps its promises."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.payout_release.domain import (
    Candidate,
    Cohorts,
    FundingAccount,
    PayeeStanding,
    PoInForce,
    plan_run,
    plan_violations,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PAYEES = ["p1", "p2", "p3"]
ENTITIES = ["LE-1", "LE-2"]
CURRENCIES = ["EUR", "USD"]
POS = ["PO-1", "PO-2"]

amounts = st.integers(min_value=1, max_value=50_000).map(lambda cents: Decimal(cents).scaleb(-2))

candidates = st.lists(
    st.builds(
        Candidate,
        invoice_id=st.uuids().map(str),
        payee_id=st.sampled_from([*PAYEES, "stranger"]),
        approved=st.booleans(),
        legal_entity=st.sampled_from(ENTITIES),
        business_unit=st.sampled_from(["BU-A", "BU-B"]),
        currency=st.sampled_from(CURRENCIES),
        document_type=st.sampled_from(["invoice", "invoice", "credit_note"]),
        payable_amount=amounts,
        issue_date=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 11, 21)),
        po_number=st.sampled_from([*POS, None]),
        po_version=st.sampled_from([1, 2]),
        in_live_payout=st.sampled_from([False, False, False, True]),
    ),
    max_size=25,
    unique_by=lambda c: c.invoice_id,
)
payees = st.fixed_dictionaries(
    {
        p: st.builds(PayeeStanding, eligible=st.booleans(), reasons=st.just(("tax_form_missing",)))
        for p in PAYEES
    }
)
pos = st.fixed_dictionaries(
    {po: st.builds(PoInForce, version=st.sampled_from([1, 2]), closed=st.booleans()) for po in POS}
)
funding = st.lists(
    st.builds(
        FundingAccount,
        account_id=st.sampled_from(["f1", "f2", "f3", "f4"]),
        legal_entity=st.sampled_from(ENTITIES),
        currency=st.sampled_from(CURRENCIES),
        available=st.integers(min_value=0, max_value=200_000).map(lambda c: Decimal(c).scaleb(-2)),
    ),
    max_size=4,
    unique_by=lambda a: a.account_id,
)
cohorts = st.sampled_from([Cohorts(), Cohorts(frozenset({"BU-A"}))])


@settings(max_examples=300, deadline=None)
@given(candidates, payees, pos, funding, cohorts, st.booleans())
def test_a_run_keeps_its_promises(
    cands: list[Candidate],
    standings: dict[str, PayeeStanding],
    po_state: dict[str, PoInForce],
    accounts: list[FundingAccount],
    automated: Cohorts,
    requested: bool,
) -> None:
    plan = plan_run(cands, standings, po_state, accounts, automated, NOW, "run-P", requested=requested)
    assert plan_violations(plan, cands, accounts) == []
    # Every candidate has an answer: paid, or blocked with its reasons (one already in a live
    # payout is neither: gate 6).
    paid = {line.invoice_id for p in plan.releases for line in p.lines}
    answered = paid | {b.invoice_id for b in plan.blocks}
    assert answered == {c.invoice_id for c in cands if not c.in_live_payout}
    # Deterministic: the same inputs in another order give the same plan.
    again = plan_run(
        list(reversed(cands)), standings, po_state, accounts, automated, NOW, "run-P", requested=requested
    )
    assert again == plan


def test_violations_are_reported() -> None:
    inv = Candidate("i1", "p1", True, "LE-1", "BU-A", "EUR", "invoice", Decimal("10"), date(2026, 1, 1))
    account = FundingAccount("f1", "LE-1", "EUR", Decimal("5"))
    plan = plan_run([inv], {"p1": PayeeStanding(True)}, {}, [account], Cohorts(), NOW, "r")
    assert plan_violations(plan, [inv], [account]) == []
    rich = FundingAccount("f1", "LE-1", "EUR", Decimal("50"))
    paid = plan_run([inv], {"p1": PayeeStanding(True)}, {}, [rich], Cohorts(), NOW, "r")
    assert plan_violations(paid, [inv], [account]) == ["account f1 overdrawn"]
