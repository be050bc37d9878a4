"""The chaos run's phase B wait: matching's decision on every invoice intake did not reject.

Intake's Invoice Response (RE) is sent before its document.rejected (out.invoice-responses is
sent first), so the wait for intake's answers can end before the rejection is seen. The set of
invoices to wait for must therefore read the rejections as it goes; read once, up front, a
rejection seen a moment later left the run waiting 600 s for a decision that never comes."""

from __future__ import annotations

from typing import Any

from chaos.run import Watcher, _all_decided, _undecided
from shared.settings import Settings
from testkit.watch import Seen


def _seen(event_type: str, data: dict[str, Any], event_id: str) -> Seen:
    return Seen("t", None, {"event_id": event_id, "event_type": event_type, "data": data})


def test_a_rejection_seen_after_the_wait_began_ends_it() -> None:
    watcher = Watcher(Settings())
    invoices = [("evt-1", "INV-1"), ("evt-2", "INV-2")]
    done = _all_decided(watcher, invoices)
    assert not done()
    watcher.on_seen(_seen("invoice.approved_to_pay", {"invoice_id": "INV-1"}, "d-1"))
    assert not done() and _undecided(watcher, invoices) == ["INV-2"]
    # INV-2's rejection arrives after its RE response: it needs no decision
    watcher.on_seen(_seen("document.rejected", {"rejected_event_id": "evt-2"}, "r-2"))
    assert done()


def test_an_accepted_invoice_without_a_decision_keeps_it_waiting() -> None:
    watcher = Watcher(Settings())
    invoices = [("evt-1", "INV-1")]
    watcher.on_seen(_seen("invoice_response.issued", {"invoice_id": "INV-1"}, "ab-1"))
    assert _undecided(watcher, invoices) == ["INV-1"]
    watcher.on_seen(_seen("invoice.held", {"invoice_id": "INV-1"}, "h-1"))
    assert _all_decided(watcher, invoices)()
