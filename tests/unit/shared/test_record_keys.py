"""Every record our own tools publish as good is keyed as its topic says (SPEC §3–4), so the
`key_mismatch` rule of §15 deadletters only what it should: the demo, the chaos workload, the bench."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from bench.pipeline import flow as bench_flow
from chaos.workload import build as chaos_workload
from shared.topics import IN_COMMANDS, IN_FUNDING, INTAKE_DOCUMENTS, Topic
from testkit.scenario import build as demo_scenario


def _key_ok(topic: Topic, key: str, data: dict[str, Any]) -> bool:
    allowed = topic.allowed_keys(data)
    return allowed is None or key in allowed


def test_the_demo_scenario_keys_every_record_by_its_key_field() -> None:
    scenario = demo_scenario("t1", date(2026, 11, 30))
    wrong = [(p.topic.name, p.key) for p in scenario.setup if not _key_ok(p.topic, p.key, p.data)]
    assert wrong == []


def test_the_chaos_workload_keys_every_good_record_by_its_key_field() -> None:
    workload = chaos_workload(seed=7, invoices=60, tag="t1", today=date(2026, 11, 30))
    wrong = [
        (r.topic.name, r.key, r.event_type)
        for r in workload.records
        if not r.bad and not _key_ok(r.topic, r.key, json.loads(r.value)["data"])
    ]
    assert wrong == []


def test_the_bench_flow_keys_every_record_by_its_key_field() -> None:
    flows = [rec for i in range(3) for rec in bench_flow("t1", i, "2026-11-30")]
    wrong = [(t.name, key) for t, key, _, data in flows if not _key_ok(t, key, data)]
    assert wrong == []


@pytest.mark.parametrize(
    ("topic", "key", "data", "ok"),
    [
        (INTAKE_DOCUMENTS, "PO-1", {"po_number": "PO-1", "invoice_id": "INV-1"}, True),
        (INTAKE_DOCUMENTS, "INV-1", {"po_number": "PO-1", "invoice_id": "INV-1"}, False),
        (INTAKE_DOCUMENTS, "INV-1", {"invoice_id": "INV-1"}, True),  # a no-PO invoice
        (INTAKE_DOCUMENTS, "REQ-1", {"requisition_id": "REQ-1"}, True),
        (IN_COMMANDS, "INV-1", {"override_id": "OVR-1", "invoice_id": "INV-1"}, True),
        (IN_COMMANDS, "OVR-1", {"override_id": "OVR-1", "invoice_id": "INV-1"}, True),
        (IN_COMMANDS, "INV-2", {"override_id": "OVR-1", "invoice_id": "INV-1"}, False),
        (IN_FUNDING, "acct-1", {"account_id": 42}, True),  # a wrong type is the payload's to refuse
    ],
)
def test_which_keys_a_payload_allows(topic: Topic, key: str, data: dict[str, Any], ok: bool) -> None:
    assert _key_ok(topic, key, data) is ok
