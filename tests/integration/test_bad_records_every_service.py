"""The bad-input corpus for keys, headers and duplicate JSON keys, through every service's router
(SPEC §15 "Records"): each such record is deadlettered with its reason by the shared decoding
path, whichever service reads it, and nothing else comes of it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from services.bank_gateway.handlers import router as bank_router
from services.compliance_gate.handlers import router as compliance_router
from services.intake.handlers import router as intake_router
from services.ledger.handlers import router as ledger_router
from services.matching.handlers import router as matching_router
from services.payout_release.handlers import router as payout_router
from shared.consumer import DEADLETTER_EVENT_TYPE, RawRecord, Router
from shared.settings import Settings
from shared.topics import (
    IN_FUNDING,
    IN_INVOICES,
    IN_PAYEES,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_PAYOUTS,
    Topic,
)
from tests.support import deliver, emitted, record, scratch_pool

pytestmark = pytest.mark.integration

# service → (its router, one topic it reads, an event type of that topic, the payload's key field)
SERVICES: dict[str, tuple[Router, Topic, str, str]] = {
    "intake": (intake_router, IN_INVOICES, "invoice.submitted", "payee_id"),
    "matching": (matching_router, INTAKE_DOCUMENTS, "invoice.accepted", "invoice_id"),
    "compliance_gate": (compliance_router, IN_PAYEES, "payee.profile_updated", "payee_id"),
    "payout_release": (payout_router, MATCHING_DECISIONS, "invoice.approved_to_pay", "invoice_id"),
    "ledger": (ledger_router, IN_FUNDING, "funding.received", "account_id"),
    "bank_gateway": (bank_router, OUT_PAYOUTS, "payout.released", "payee_id"),
}


def _base(service: str) -> RawRecord:
    _, topic, event_type, key_field = SERVICES[service]
    return record(topic, event_type, {key_field: "SUBJECT-1"}, key="SUBJECT-1")


def _dup_in_data(rec: RawRecord) -> RawRecord:
    text = rec.value.decode().replace('"data":{', '"data":{"amount":"1.00","amount":"1000.00",', 1)
    return dataclasses.replace(rec, value=text.encode())


def _dup_event_id(rec: RawRecord) -> RawRecord:
    return dataclasses.replace(rec, value=b'{"event_id":"evt_other",' + rec.value[1:])


MUTATIONS: dict[str, tuple[Callable[[RawRecord], RawRecord], str]] = {
    "traceparent not UTF-8": (
        lambda r: dataclasses.replace(r, headers=(*r.headers, ("traceparent", b"00-\xff\xfe-01"))),
        "undecodable_header",
    ),
    "key not UTF-8": (lambda r: dataclasses.replace(r, key=b"SUBJECT-\xff"), "undecodable_key"),
    "key of another subject": (lambda r: dataclasses.replace(r, key=b"SUBJECT-2"), "key_mismatch"),
    "no key": (lambda r: dataclasses.replace(r, key=None), "key_mismatch"),
    "duplicate key in data": (_dup_in_data, "duplicate_json_key"),
    "duplicate event_id": (_dup_event_id, "duplicate_json_key"),
}


@pytest.fixture(scope="module")
async def pools() -> AsyncIterator[dict[str, asyncpg.Pool]]:
    opened: dict[str, asyncpg.Pool] = {}
    contexts = []
    try:
        for service in SERVICES:
            ctx = scratch_pool(service)
            opened[service] = await ctx.__aenter__()
            contexts.append(ctx)
        yield opened
    finally:
        for ctx in reversed(contexts):
            await ctx.__aexit__(None, None, None)


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("service", list(SERVICES))
async def test_every_service_deadletters_a_bad_key_header_or_duplicate_json_key(
    pools: dict[str, asyncpg.Pool], service: str, mutation: str
) -> None:
    router = SERVICES[service][0]
    mutate, reason = MUTATIONS[mutation]
    rec = mutate(_base(service))
    result = await deliver(pools[service], router, rec, settings=Settings(service=service))
    assert (result.deadlettered, result.handled, result.rejected) == (1, 0, 0)
    [dead] = emitted(result)
    assert dead["event_type"] == DEADLETTER_EVENT_TYPE
    assert dead["data"]["reason"] == reason, dead["data"]["error"]
    assert dead["data"]["origin"]["offset"] == rec.offset
    async with pools[service].acquire() as conn:
        row = await conn.fetchrow(
            'SELECT result FROM inbox WHERE topic = $1 AND "offset" = $2', rec.topic, rec.offset
        )
    assert row is not None and row["result"] == "deadlettered"


def test_the_corpus_records_are_valid_json_apart_from_the_mutation() -> None:
    for service in SERVICES:
        assert json.loads(_base(service).value)["data"]
