"""The test kit's documents are valid documents: each parses as its event type's contract and is
allowed on the topic its caller sends it to (the demo's scenario, the chaos workload, the
benchmark's flows, the tests' samples)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from bench.pipeline import flow
from bench.profile import summarise
from chaos.workload import build as chaos_workload
from shared.consumer import RawRecord
from shared.contracts.registry import is_allowed_on, parse_data
from shared.settings import Settings
from shared.topics import Topic
from testkit import documents as doc
from testkit.samples import intake, upstream
from testkit.scenario import build as demo_scenario

TODAY = date(2026, 11, 30)


def _valid(topic: Topic, event_type: str, data: dict[str, Any]) -> None:
    assert is_allowed_on(topic.name, event_type), (topic.name, event_type)
    parse_data(event_type, data)


def _valid_record(r: RawRecord) -> None:
    env = json.loads(r.value)
    assert is_allowed_on(Settings().unprefixed(r.topic), env["event_type"])
    parse_data(env["event_type"], env["data"])


def test_the_demo_scenario() -> None:
    for p in demo_scenario("t1", TODAY).setup:
        _valid(p.topic, p.event_type, p.data)


def test_the_chaos_workload_less_its_deliberately_bad_records() -> None:
    w = chaos_workload(3, 60, tag="x", today=TODAY)
    good = [r for r in w.records if not r.bad]
    assert len(good) > 150
    for r in good:
        _valid(r.topic, r.event_type, json.loads(r.value)["data"])


def test_the_benchmarks_flows() -> None:
    for i in (0, 7, 1234):
        for topic, _key, event_type, data in flow("b1", i, TODAY.isoformat()):
            _valid(topic, event_type, data)


@pytest.mark.parametrize(
    "make",
    [
        lambda: upstream.po_rec("purchase_order.issued", upstream.po_issued()),
        lambda: upstream.po_rec("purchase_order.amended", upstream.po_amended(2)),
        lambda: upstream.po_rec("purchase_order.amendment_approved", upstream.amendment_approved(2)),
        lambda: upstream.inv_rec(upstream.invoice()),
        lambda: upstream.inv_rec(upstream.invoice("CN-1", document_type="credit_note")),
        lambda: upstream.ubl_rec("U-1", upstream.UBL_INVOICE.format(number="U-1")),
        lambda: upstream.req_rec("requisition.approved", upstream.requisition()),
        lambda: upstream.flip_rec("F-1", line_quantities={"L1": "2"}),
        intake.po_in_force,
        intake.po_closed,
        intake.receipt,
        intake.receipt_reversed,
        intake.requisition,
        intake.invoice,
        intake.override,
        intake.rematch,
    ],
)
def test_the_tests_samples(make: Any) -> None:
    _valid_record(make())


def test_the_rail_and_command_builders() -> None:
    from shared.topics import IN_COMMANDS, IN_RAIL_EVENTS

    _valid(
        IN_RAIL_EVENTS,
        "payout.settled",
        doc.payout_settled(
            "p1", rail_event_id="r1", amount="1.00", currency="EUR", settled_at="2026-11-30T10:00:00Z"
        ),
    )
    _valid(IN_RAIL_EVENTS, "payout.failed", doc.payout_failed("p1", rail_event_id="r2", failure_code="R01"))
    _valid(IN_COMMANDS, "payout_run.requested", doc.payout_run("run-1", requested_by="treasury@example.com"))
    _valid(
        IN_COMMANDS,
        "hold.override_requested",
        doc.hold_override(
            "o1",
            "i1",
            hold_reasons=["price_mismatch"],
            reason_code="price_agreed",
            justification="agreed",
            requested_by="a@example.com",
            approved_by="b@example.com",
            evidence=["mail://x"],
        ),
    )


def test_an_invoice_total_is_its_lines_and_tax_unless_given() -> None:
    lines = [doc.invoice_line("1", "L1", "3", "1.005"), doc.invoice_line("2", "L2", "1", "10.00", "10.00")]
    assert lines[0]["line_amount"] == "3.02"  # to the cent, half-even
    built = doc.invoice(
        "i",
        number="n",
        payee_id="p",
        legal_entity="e",
        currency="EUR",
        issue_date="2026-01-01",
        lines=lines,
        tax_total="2.50",
    )
    assert built["total_amount"] == "15.52"
    assert "po_number" not in built  # optional fields left out when not given


def test_a_profile_summary_ranks_functions_by_own_and_total_samples() -> None:
    collapsed = (
        "main (a.py:1);handle (b.py:5);parse (c.py:9) 30\n"
        "main (a.py:1);handle (b.py:5) 10\n"
        "main (a.py:1) 60\n"
    )
    text = summarise("svc", collapsed, top=3)
    own, total = text.split("total time")
    assert own.index("main (a.py:1)") < own.index("parse (c.py:9)") < own.index("handle (b.py:5)")
    assert "100.0%      100  main (a.py:1)" in total
    assert " 40.0%       40  handle (b.py:5)" in total
