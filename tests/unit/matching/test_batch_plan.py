"""The batch plan, pure: records replayed in order over what was loaded, as data to write and publish."""

from __future__ import annotations

from services.matching import domain as d
from services.matching.config import SPEC_DEFAULT_ROLES
from services.matching.domain import batch as b
from tests.unit.matching.factory import T0, invoice, line, po, policy, receipt

RULES = b.Rules(policy(), SPEC_DEFAULT_ROLES, 60.0)


def add_po(**changes: object) -> b.AddPoVersion:
    return b.AddPoVersion(po(**changes), {"po_number": "PO-1"}, T0, "evt-po")  # type: ignore[arg-type]


def add_invoice(invoice_id: str = "INV-1", *lines: d.InvoiceLine, event_id: str = "evt-inv") -> b.AddInvoice:
    return b.AddInvoice(invoice(invoice_id, *lines, seq=0), {"invoice_id": invoice_id}, T0, event_id)


def add_receipt(receipt_id: str = "GR-1", quantity: str = "10") -> b.AddReceipt:
    return b.AddReceipt(receipt(receipt_id, quantity), "PO-1", ({"po_line_id": "L1"},), f"evt-{receipt_id}")


def override(override_id: str = "OVR-1", approved_by: str = "ap.lead@example.com") -> b.RequestOverride:
    request = d.OverrideRequest(override_id, "INV-1", None, "price_exception", "clerk", approved_by, ("doc",))
    return b.RequestOverride(request, "agreed", None, f"evt-{override_id}")


def plan(*steps: b.Step, loaded: b.Loaded | None = None) -> b.BatchPlan:
    loaded = loaded or b.Loaded(free_seqs=[41, 42, 43])
    return b.plan_batch(loaded, steps, RULES, T0)


def kinds(step: b.StepPlan) -> list[str]:
    return [
        n.event_type
        if isinstance(n, b.Decided)
        else f"{type(n).__name__}:{getattr(n, 'hold', None) and n.hold.reason}"  # type: ignore[union-attr]
        for n in step.notices
    ]


def test_an_invoice_before_its_po_waits_then_is_released_by_it_in_the_same_batch() -> None:
    p = plan(add_invoice(), add_po(), add_receipt())
    assert [s.result for s in p.steps] == [
        b.Result.INVOICE_ACCEPTED,
        b.Result.PO_VERSION_APPLIED,
        b.Result.RECEIPT_APPLIED,
    ]
    assert kinds(p.steps[0]) == ["HoldOpened:awaiting_po", "invoice.held"]
    assert kinds(p.steps[1]) == ["HoldReleased:awaiting_po", "HoldOpened:missing_receipt", "invoice.held"]
    assert kinds(p.steps[2]) == ["HoldReleased:missing_receipt", "invoice.approved_to_pay"]
    # Written once, final: the holds as released, the invoice with its last decision.
    assert {h.reason: h.status for h in p.writes.new_holds.values()} == {
        "awaiting_po": "released",
        "missing_receipt": "released",
    }
    assert p.writes.invoice_decisions["INV-1"].kind == "approved"
    assert p.writes.invoice_decisions["INV-1"].seq == 3
    assert p.seqs == {"INV-1": 41}
    assert [r.cause_event_id for r in p.writes.decisions] == ["evt-inv", "evt-po", "evt-GR-1"]


def test_an_override_sees_the_hold_the_invoice_before_it_opened() -> None:
    p = plan(add_po(match_mode="two_way"), add_invoice("INV-1", line(price="101.00")), override())
    assert p.steps[2].result == b.Result.OVERRIDE_ACCEPTED
    assert kinds(p.steps[2]) == ["HoldReleased:price_mismatch", "invoice.approved_to_pay"]
    (released,) = [n for n in p.steps[2].notices if isinstance(n, b.HoldReleased)]
    assert (released.hold.released_by, released.hold.override_id) == ("override", "OVR-1")
    assert p.writes.overrides["OVR-1"].status == "accepted"


def test_a_refused_override_resent_right_is_written_once_as_accepted() -> None:
    p = plan(
        add_po(match_mode="two_way"),
        add_invoice("INV-1", line(price="101.00")),
        override(approved_by="ops.lead@example.com"),
        override(approved_by="controller@example.com"),
        override(approved_by="controller@example.com"),
    )
    assert [s.result for s in p.steps[2:]] == [
        b.Result.OVERRIDE_REFUSED,
        b.Result.OVERRIDE_ACCEPTED,
        b.Result.OVERRIDE_ALREADY_ACCEPTED,
    ]
    assert list(p.writes.overrides) == ["OVR-1"] and p.writes.overrides["OVR-1"].status == "accepted"


def test_a_known_invoice_is_not_accepted_twice_and_a_rematch_of_nothing_new_changes_nothing() -> None:
    p = plan(
        add_po(),
        add_receipt(),
        add_invoice(),
        add_invoice(event_id="evt-again"),
        b.RequestRematch("INV-1", "e"),
    )
    assert [s.result for s in p.steps[2:]] == [
        b.Result.INVOICE_ACCEPTED,
        b.Result.INVOICE_ALREADY_KNOWN,
        b.Result.REMATCHED_NO_CHANGE,
    ]
    assert p.steps[3].notices == () and p.steps[4].notices == ()
    assert list(p.writes.new_invoices) == ["INV-1"]


def test_a_reversal_before_its_receipt_leaves_the_receipt_reversed() -> None:
    reversal = b.ReverseReceipt("GR-1", "PO-1", "warehouse", "damaged", T0, "evt-rev")
    p = plan(add_po(), reversal, add_receipt(), add_invoice())
    row = p.writes.receipts["GR-1"]
    assert (row.reversal_event_id, row.event_id, row.lines is not None) == ("evt-rev", "evt-GR-1", True)
    assert kinds(p.steps[3]) == ["HoldOpened:missing_receipt", "invoice.held"]


def test_an_unknown_invoice_is_neither_rematched_nor_overridden() -> None:
    p = plan(b.RequestRematch("INV-9", "e"), override())
    assert p.steps[0].result == b.Result.UNKNOWN_INVOICE
    assert p.steps[1].result == b.Result.OVERRIDE_REFUSED
    (refused,) = p.steps[1].notices
    assert isinstance(refused, b.OverrideRefused) and refused.reasons == ("invoice_unknown",)
