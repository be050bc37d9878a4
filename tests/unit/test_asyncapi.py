"""The committed AsyncAPI document is what FastStream generates from the code, and it is complete."""

from __future__ import annotations

from pathlib import Path

from shared.contracts.registry import TOPIC_EVENT_TYPES
from shared.topics import (
    COMPLIANCE_ELIGIBILITY,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_JOURNAL,
    OUT_PAYOUTS,
    OUT_REJECTIONS,
    PAYOUTS_EVENTS,
)
from tools.cli.contract import asyncapi_document, routers

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
PRODUCED = (
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    COMPLIANCE_ELIGIBILITY,
    PAYOUTS_EVENTS,
    OUT_PAYOUTS,
    OUT_EXCEPTIONS,
    OUT_REJECTIONS,
    OUT_JOURNAL,
)


def test_the_committed_document_matches_the_code() -> None:
    generated = asyncapi_document()
    assert DOC.read_text() == generated, (
        "docs/asyncapi.json is stale: run `concord asyncapi --write docs/asyncapi.json`"
    )


def test_every_event_type_concord_produces_is_declared_by_a_service() -> None:
    declared: dict[str, set[str]] = {}
    for router in routers():
        for topic, event_types in router.emitted.items():
            declared.setdefault(topic, set()).update(event_types)
    for topic in PRODUCED:
        assert declared.get(topic.name, set()) == set(TOPIC_EVENT_TYPES[topic.name]), topic.name
