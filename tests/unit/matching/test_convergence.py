"""Property: every arrival order of the same PO versions, receipts, reversals and invoices converges to
the same decisions and open holds (SPEC §1 rule 4), running the same pure pipeline the handlers run
after each document: accumulate → evaluate → reconcile → apply."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.matching import domain as d
from tests.unit.matching.factory import invoice, line, po, policy, receipt

D = Decimal
POLICY = policy()


@dataclass
class Matching:
    """The store, reduced to what the handlers keep (po_versions, receipts, invoices, holds, decisions)."""

    versions: dict[int, d.PurchaseOrder] = field(default_factory=dict)
    receipts: dict[str, d.Receipt] = field(default_factory=dict)
    reversed: set[str] = field(default_factory=set)
    invoices: list[d.Invoice] = field(default_factory=list)
    closed_after_seq: int | None = None
    holds: dict[str, list[d.StoredHold]] = field(default_factory=dict)
    decisions: dict[str, d.StoredDecision] = field(default_factory=dict)
    hold_counter: int = 0

    def receive(self, event: tuple[str, Any]) -> None:
        kind, doc = event
        if kind == "po":
            self.versions[doc.version] = doc
        elif kind == "receipt":
            self.receipts[doc.receipt_id] = doc
        elif kind == "reversal":
            self.reversed.add(doc)
        elif kind == "closure":
            if self.closed_after_seq is None:  # the first closure stands (ON CONFLICT DO NOTHING)
                self.closed_after_seq = max((i.seq for i in self.invoices), default=0)
        else:
            self.invoices.append(replace(doc, seq=len(self.invoices) + 1))  # seq: acceptance order
        self.rematch()

    def rematch(self) -> None:
        state = d.PoState(
            po_number="PO-1",
            po=self.versions[max(self.versions)] if self.versions else None,
            closed_after_seq=self.closed_after_seq,
            receipts=tuple(r for r in self.receipts.values() if r.receipt_id not in self.reversed),
            invoices=tuple(self.invoices),
        )
        changes = d.reconcile(d.evaluate(state, POLICY), self.holds, self.decisions)
        self.holds, self.decisions = d.apply_changes(changes, self.holds, self.decisions, self._hold_id)

    def _hold_id(self, invoice_id: str, finding: d.Finding) -> str:
        self.hold_counter += 1
        return f"h{self.hold_counter}"

    def result(self) -> tuple[dict[str, tuple[str, str]], dict[str, list[tuple[str, str | None]]]]:
        decided = {i: (s.kind, s.fingerprint) for i, s in self.decisions.items()}
        open_holds = {i: sorted((h.reason, h.line_id) for h in hs) for i, hs in self.holds.items() if hs}
        return decided, open_holds


quantities = st.sampled_from(["1", "2", "3", "4", "5"])
prices = st.sampled_from(["100.00", "100.00", "100.00", "101.00"])


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """(free events, chained events): chained ones (invoices, closure) keep their relative order, as
    intake publishes them on one partition; everything else may arrive in any order."""
    lines = (d.PoLine("L1", "goods", D("8"), D("100.00")), d.PoLine("L2", "services", D("4"), D("50.00")))
    free: list[tuple[str, Any]] = [("po", po(*lines))]
    if draw(st.booleans()):
        amended = (replace(lines[0], quantity=D(draw(st.sampled_from(["6", "12"])))), lines[1])
        free.append(("po", po(*amended, version=2)))
    for n in range(draw(st.integers(0, 3))):
        po_line = draw(st.sampled_from(["L1", "L2"]))
        kind = (
            "goods_receipt"
            if po_line == "L1"
            else draw(st.sampled_from(["service_completion", "goods_receipt"]))
        )
        free.append(("receipt", receipt(f"GR-{n}", draw(quantities), po_line, kind, minute=n)))
        if draw(st.integers(0, 3)) == 0:
            free.append(("reversal", f"GR-{n}"))
    chained: list[tuple[str, Any]] = []
    for n in range(draw(st.integers(1, 4))):
        po_line = draw(st.sampled_from(["L1", "L2"]))
        price = draw(prices) if po_line == "L1" else "50.00"
        credit = n > 0 and draw(st.integers(0, 4)) == 0
        replaces = f"INV-{n - 1}" if n > 0 and draw(st.integers(0, 4)) == 0 else None
        chained.append(
            (
                "invoice",
                invoice(
                    f"INV-{n}",
                    line("1", po_line, draw(quantities), price),
                    document_type="credit_note" if credit else "invoice",
                    replaces_invoice_id=replaces,
                ),
            )
        )
    if draw(st.integers(0, 4)) == 0:
        chained.insert(draw(st.integers(0, len(chained))), ("closure", None))
    return free, chained


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), data=st.data())
def test_every_arrival_order_converges(
    scenario: tuple[list[tuple[str, Any]], list[tuple[str, Any]]], data: st.DataObject
) -> None:
    free, chained = scenario
    reference = Matching()
    for event in free + chained:
        reference.receive(event)

    # An arbitrary interleaving: shuffle everything, then put the chained events back in their order.
    shuffled = data.draw(st.permutations(free + chained))
    chain = iter(chained)
    arrival = [next(chain) if e[0] in ("invoice", "closure") else e for e in shuffled]
    other = Matching()
    for event in arrival:
        other.receive(event)
    assert other.result() == reference.result()

    # Redelivering everything again (a rematch per document) changes nothing.
    before = other.result()
    for event in arrival:
        if event[0] != "invoice":
            other.receive(event)
    assert other.result() == before


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios())
def test_approved_invoices_never_consume_more_than_was_received(
    scenario: tuple[list[tuple[str, Any]], list[tuple[str, Any]]],
) -> None:
    free, chained = scenario
    matching = Matching()
    for event in free + [e for e in chained if e[0] != "invoice" or e[1].document_type == "invoice"]:
        matching.receive(event)
    standing = [r for r in matching.receipts.values() if r.receipt_id not in matching.reversed]
    approved = [
        i
        for i in matching.invoices
        if matching.decisions.get(i.invoice_id, d.StoredDecision()).kind == "approved"
    ]
    for po_line, kind in (("L1", "goods_receipt"), ("L2", "service_completion")):
        received = sum(
            (rl.quantity for r in standing if r.kind == kind for rl in r.lines if rl.po_line_id == po_line),
            D(0),
        )
        billed = sum((ln.quantity for i in approved for ln in i.lines if ln.po_line_id == po_line), D(0))
        assert billed <= received, (po_line, billed, received)
