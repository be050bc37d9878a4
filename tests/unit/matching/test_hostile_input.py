"""SPEC §15 in matching's pure rules: tax review, line-level charges, corrections of settled
invoices, overrides that name no hold, people in any case."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.matching import domain as d
from services.matching.config import SPEC_DEFAULT_ROLES, parse_policy
from tests.unit.matching.factory import D, invoice, line, po, policy, reasons, state

TWO_WAY = po(d.PoLine("L1", "goods", D("10"), D("100.00")), match_mode="two_way")
TEN = po(d.PoLine("L1", "goods", D("10"), D("10.00")), match_mode="two_way")


@pytest.mark.parametrize(
    ("tax", "review"),
    [("0.00", False), ("300.00", False), ("300.01", True), ("990.00", True)],
)
def test_tax_above_the_max_tax_rate_of_the_net_lines_is_reviewed(tax: str, review: bool) -> None:
    inv = invoice("INV-1", line(quantity="10", price="100.00"), tax=tax)  # net 1,000.00
    outcome = d.evaluate(state(inv, purchase_order=TWO_WAY), policy())["INV-1"]
    assert (("tax_review", None) in reasons(outcome)) is review


def test_tax_review_follows_the_policy_and_applies_to_no_po_invoices() -> None:
    generous = replace(policy(), max_tax_rate=D(100))
    inv = invoice("INV-1", line(quantity="1", price="10.00"), tax="9.00")
    assert (
        d.evaluate(state(inv, purchase_order=TWO_WAY), generous)["INV-1"]
        == d.evaluate(
            state(replace(inv, tax_total=D("0.00"), total_amount=D("10.00")), purchase_order=TWO_WAY),
            generous,
        )["INV-1"]
    )
    no_po = replace(inv, po_number=None, tax_total=D("990.00"), total_amount=D("1000.00"))
    assert ("tax_review", None) in reasons(d.evaluate(state(no_po, no_po=True), policy())["INV-1"])
    assert d.tax_needs_review(replace(inv, lines=(line(quantity="-1", price="10.00"),)), D(30))


def test_max_tax_rate_is_a_policy_knob() -> None:
    assert parse_policy({"matching": {"max_tax_rate": "20"}}).max_tax_rate == D(20)
    assert parse_policy({"matching": {}}).max_tax_rate == D(30)


def charged(amount: str, charge: str) -> d.InvoiceLine:
    base = line(quantity="1", price="10.00", amount=amount)
    return replace(base, allowance_charge_amount=D(charge))


def test_a_positive_line_level_charge_needs_the_pos_allowance() -> None:
    inv = invoice("INV-1", charged("1000.00", "990.00"))
    outcome = d.evaluate(state(inv, purchase_order=TEN), policy())["INV-1"]
    assert ("unexpected_charge", None) in reasons(outcome)
    allowed = replace(TEN, charges=(d.Charge("other", D("990.00")),))
    assert d.evaluate(state(inv, purchase_order=allowed), policy())["INV-1"].__class__ is d.Approved


def test_a_line_level_allowance_needs_no_allowance() -> None:
    inv = invoice("INV-1", charged("5.00", "-5.00"))
    assert isinstance(d.evaluate(state(inv, purchase_order=TEN), policy())["INV-1"], d.Approved)


def test_line_charges_add_up_with_document_other_charges_against_the_allowance() -> None:
    allowed = replace(TEN, charges=(d.Charge("other", D("10.00")),))
    inv = invoice("INV-1", charged("16.00", "6.00"), charges=(d.Charge("Other", D("6.00")),))
    assert ("unexpected_charge", None) in reasons(
        d.evaluate(state(inv, purchase_order=allowed), policy())["INV-1"]
    )


def test_a_correction_of_a_settled_invoice_does_not_supersede_it() -> None:
    original = invoice("INV-1", seq=1)
    correction = invoice("INV-2", seq=2, replaces_invoice_id="INV-1")
    settled = state(original, correction, purchase_order=TWO_WAY, settled=frozenset({"INV-1"}))
    outcomes = d.evaluate(settled, policy())
    assert isinstance(outcomes["INV-1"], d.Approved)
    assert ("replaces_settled_invoice", None) in reasons(outcomes["INV-2"])
    [finding] = [f for f in outcomes["INV-2"].findings if f.reason == "replaces_settled_invoice"]
    assert (finding.queue, finding.action) == ("ap", "hard_fail")
    assert not d.overridable(finding.reason, finding.action)
    # Not settled: the correction supersedes the original, as before.
    outcomes = d.evaluate(state(original, correction, purchase_order=TWO_WAY), policy())
    assert outcomes["INV-1"] == d.Superseded("INV-2")


def test_a_settled_original_of_another_po_is_not_closed_by_a_correction() -> None:
    original = invoice("INV-1", seq=1)
    st = state(
        original, purchase_order=TWO_WAY, replacements={"INV-1": "INV-9"}, settled=frozenset({"INV-1"})
    )
    assert isinstance(d.evaluate(st, policy())["INV-1"], d.Approved)


PRICE_HOLD = d.StoredHold("h1", "price_mismatch", "1", "ap", "soft_review")


def override(hold_reasons: tuple[str, ...] | None, requested_by: str, approved_by: str) -> d.OverrideRequest:
    return d.OverrideRequest("OVR-1", "INV-1", hold_reasons, "x", requested_by, approved_by, ("doc",))


def test_an_override_naming_no_hold_is_refused_no_hold_reasons() -> None:
    decision = d.decide_override(
        override((), "clerk", "ap.lead@example.com"), [PRICE_HOLD], False, SPEC_DEFAULT_ROLES
    )
    assert (decision.accepted, decision.reasons) == (False, ("no_hold_reasons",))


def test_override_people_compare_case_insensitively() -> None:
    self_approved = override(None, "AP.Lead@Example.com", "ap.lead@example.com")
    decision = d.decide_override(self_approved, [PRICE_HOLD], False, SPEC_DEFAULT_ROLES)
    assert "approver_is_requester" in decision.reasons
    other_case = override(None, "clerk", "AP.LEAD@example.com")
    assert d.decide_override(other_case, [PRICE_HOLD], False, SPEC_DEFAULT_ROLES).accepted
