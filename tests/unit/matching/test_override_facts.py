"""SPEC §13.4, pure: an accepted override stands while the facts its check compared are the
same; when the same check fails on other facts it lapses (the finding is open again, naming the
override); when the check passes there is nothing left to override. One case per overridable check."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

import pytest

from services.matching import domain as d
from services.matching.config import SPEC_DEFAULT
from tests.unit.matching.factory import T0, invoice, line, po, policy, receipt, state

D = Decimal
DEFAULT_POLICY = policy()
LENIENT = policy(actions={**SPEC_DEFAULT.actions, "qty_over_ordered": d.SOFT_REVIEW})


@dataclass(frozen=True)
class Case:
    reason: str
    before: d.PoState  # the check fails: an override releases it
    same: d.PoState  # something else changed; the check sees the same facts
    other: d.PoState | None  # the check fails on other facts: the override lapses
    passes: d.PoState | None  # the check now passes
    facts: str  # what the override records
    pol: d.Policy = DEFAULT_POLICY


def _price(price: str) -> d.PoState:
    return state(
        invoice(), purchase_order=po(d.PoLine("L1", "goods", D("10"), D(price))), receipts=(receipt(),)
    )


def _received(*quantities: str) -> d.PoState:
    receipts = tuple(receipt(f"GR-{i}", q, minute=i) for i, q in enumerate(quantities))
    return state(invoice(), receipts=receipts)


def _freight(allowed: str) -> d.PoState:
    inv = invoice("INV-1", charges=(d.Charge("freight", D("80.00")),))
    return state(inv, purchase_order=po(charges=(d.Charge("freight", D(allowed)),)), receipts=(receipt(),))


def _ordered(quantity: str) -> d.PoState:
    inv = invoice("INV-1", line(quantity="12", price="100.00"))
    return state(
        inv,
        purchase_order=po(d.PoLine("L1", "goods", D(quantity), D("100.00"))),
        receipts=(receipt(quantity="12"),),
    )


def _in_force(effective_to: date) -> d.PoState:
    return state(invoice(), purchase_order=po(effective_to=effective_to), receipts=(receipt(),))


def _earlier(with_earlier: bool, received: str = "0") -> d.PoState:
    earlier = invoice("INV-0", line(quantity="2"), seq=0)
    later = invoice("INV-1", seq=1)
    receipts = (receipt(quantity=received),) if received != "0" else ()
    replacements = {} if with_earlier else {"INV-0": "INV-X"}
    return state(earlier, later, purchase_order=_po20(), receipts=receipts, replacements=replacements)


def _po20(version: int = 1) -> d.PurchaseOrder:
    return po(d.PoLine("L1", "goods", D("20"), D("100.00")), version=version)


def _taxed(max_rate: str) -> tuple[d.PoState, d.Policy]:
    return state(invoice(tax="500.00"), receipts=(receipt(),)), replace(policy(), max_tax_rate=D(max_rate))


CASES = [
    Case(
        "price_mismatch",
        before=_price("90.00"),
        same=replace(_price("90.00"), receipts=(receipt(), receipt("GR-2", "1", minute=5))),
        other=_price("80.00"),  # a PO amendment lowered the price further
        passes=_price("100.00"),
        facts="invoice_unit_price=100;po_unit_price=90",
    ),
    Case(
        "qty_over_received",
        before=_received("6", "2"),
        same=_received("8"),  # other receipts, the same quantity received
        other=_received("6"),  # a receipt was reversed
        passes=_received("6", "2", "2"),
        facts="invoiced=10;received=8",
    ),
    Case(
        "unexpected_charge",
        before=_freight("50.00"),
        same=replace(_freight("50.00"), po=po(version=2, charges=(d.Charge("freight", D("50")),))),
        other=_freight("30.00"),
        passes=_freight("80.00"),
        facts="charges=freight:80/50",
    ),
    Case(
        "qty_over_ordered",
        before=_ordered("11"),
        same=replace(_ordered("11"), receipts=(receipt(quantity="13"),)),
        other=_ordered("10"),
        passes=_ordered("12"),
        facts="invoiced=12;ordered=11",
        pol=LENIENT,
    ),
    Case(
        "missing_receipt",
        before=_earlier(True),
        same=replace(_earlier(True), po=_po20(version=2)),
        other=_earlier(False),  # the earlier invoice was superseded: less is invoiced now
        passes=_earlier(True, received="12"),
        facts="invoiced=12;received=0",
    ),
    Case(
        "po_not_in_force",
        before=_in_force(date(2026, 2, 28)),
        same=_in_force(date(2026, 2, 28)),
        other=_in_force(date(2026, 3, 1)),
        passes=_in_force(date(2026, 12, 31)),
        facts="closed=False;effective=2026-01-01..2026-02-28;issue_date=2026-03-02;po_version=1",
    ),
    Case(
        "header_total_mismatch",  # the invoice's own arithmetic: its facts never change
        before=state(invoice(total="1000.50"), receipts=(receipt(),)),
        same=state(invoice(total="1000.50"), receipts=(receipt(), receipt("GR-2", "0", minute=3))),
        other=None,
        passes=None,
        facts="charges=0;lines=1000;tax=0;total=1000.5",
    ),
    Case(
        "suspected_duplicate",
        before=state(invoice(suspected_duplicate_of=("INV-9",)), receipts=(receipt(),)),
        same=state(invoice(suspected_duplicate_of=("INV-9",)), receipts=(receipt(quantity="11"),)),
        other=None,
        passes=None,
        facts="of=INV-9",
    ),
]


def _outcome(st: d.PoState, pol: d.Policy, *overrides: d.Override) -> d.Outcome:
    return d.evaluate(replace(st, overrides=overrides), pol)["INV-1"]


def _override(case: Case) -> d.Override:
    held = _outcome(case.before, case.pol)
    assert isinstance(held, d.Held)
    [f] = [f for f in held.findings if f.reason == case.reason]
    return d.Override(
        "OVR-1", "INV-1", "lead@example.com", frozenset({f.key}), at=T0, facts=((f.key, f.facts),)
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.reason)
def test_an_override_stands_while_its_facts_are_unchanged_and_lapses_on_others(case: Case) -> None:
    override = _override(case)
    assert override.facts[0][1] == case.facts
    assert isinstance(_outcome(case.before, case.pol, override), d.Approved)
    assert isinstance(_outcome(case.same, case.pol, override), d.Approved)
    if case.other is not None:
        lapsed = _outcome(case.other, case.pol, override)
        assert isinstance(lapsed, d.Held)
        [f] = [f for f in lapsed.findings if f.reason == case.reason]
        assert f.lapsed_override_id == "OVR-1" and f.facts != case.facts
    if case.passes is not None:
        assert isinstance(_outcome(case.passes, case.pol, override), d.Approved)


def test_tax_review_lapses_when_the_policy_it_was_judged_by_changes() -> None:
    st, strict = _taxed("30")
    held = _outcome(st, strict)
    assert isinstance(held, d.Held)
    [f] = held.findings
    override = d.Override("OVR-1", "INV-1", "lead", frozenset({f.key}), at=T0, facts=((f.key, f.facts),))
    assert isinstance(_outcome(st, strict, override), d.Approved)
    _, stricter = _taxed("20")
    [again] = _outcome(st, stricter, override).findings  # type: ignore[union-attr]
    assert again.lapsed_override_id == "OVR-1"


def test_a_second_override_on_the_new_facts_covers_the_reopened_check() -> None:
    first = _override(CASES[0])
    lapsed = _outcome(_price("80.00"), policy(), first)
    assert isinstance(lapsed, d.Held)
    [f] = lapsed.findings
    second = d.Override("OVR-2", "INV-1", "lead", frozenset({f.key}), at=T0, facts=((f.key, f.facts),))
    assert isinstance(_outcome(_price("80.00"), policy(), first, second), d.Approved)


def test_an_override_without_recorded_facts_stands_as_in_v1() -> None:
    legacy = d.Override("OVR-0", "INV-1", "lead", frozenset({("price_mismatch", "1")}), at=T0)
    assert isinstance(_outcome(_price("80.00"), policy(), legacy), d.Approved)
