"""SPEC §13.3 through compliance_gate's real handlers and sweep on PostgreSQL: a changed payout
account holds the payee until a signed confirmation by someone else AND the cooling-off; bad
confirmations are refused with a document.rejected naming why, and change nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.compliance_gate.config import GateConfig
from services.compliance_gate.domain import CompliancePolicy
from services.compliance_gate.handlers import router
from shared.topics import IN_COMMANDS, IN_PAYEES
from shared.unit_of_work import UnitOfWork
from testkit import documents as doc
from tests import support
from tests.integration.compliance_gate.test_handlers import profile, run_sweep
from tests.support import emitted, record, scratch_pool

pytestmark = pytest.mark.integration

CHANGED_AT = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
COOLING_OFF = timedelta(hours=24)
CONFIG = GateConfig(CompliancePolicy(account_cooling_off=COOLING_OFF))
clock = {"now": CHANGED_AT}


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("compliance_gate") as p:
        yield p


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clock["now"] = CHANGED_AT
    monkeypatch.setattr(UnitOfWork, "now", property(lambda self: clock["now"]))
    yield


async def deliver(pool: asyncpg.Pool, *records: Any) -> support.BatchResult:
    return await support.deliver(pool, router, *records, config=CONFIG)


def profile_update(version: int, ref: str, at: datetime, by: str = "vendor.admin@example.com") -> Any:
    data = profile(version=version, payout_account_ref=ref, updated_by=by)
    return record(IN_PAYEES, "payee.profile_updated", data, occurred_at=at)


def confirmation(ref: str, by: str, **kw: Any) -> Any:
    data = doc.payout_account_confirmation("payee-ind-de", ref, confirmed_by=by)
    return record(IN_COMMANDS, "payee.payout_account_confirmed", data, **kw)


def eligibility(result: support.BatchResult) -> list[tuple[bool, list[str], str]]:
    return [
        (e["data"]["eligible"], e["data"]["reasons"], e["data"]["payout_account_ref"])
        for e in emitted(result, "payee.eligibility_changed")
    ]


def rejections(result: support.BatchResult) -> list[str]:
    return [r["code"] for e in emitted(result, "document.rejected") for r in e["data"]["reasons"]]


async def test_an_account_change_is_held_until_confirmed_and_cooled_off(pool: asyncpg.Pool) -> None:
    first = await deliver(pool, profile_update(1, "tok-1", CHANGED_AT - timedelta(days=30)))
    assert eligibility(first) == [(True, [], "tok-1")]  # the first account needs no confirmation

    changed = await deliver(pool, profile_update(2, "tok-2", CHANGED_AT))
    assert eligibility(changed) == [(False, ["payout_account_unconfirmed"], "tok-2")]

    # the person who changed it cannot confirm it; nor can anyone confirm another account
    clock["now"] = CHANGED_AT + timedelta(hours=1)
    own = await deliver(pool, confirmation("tok-2", "Vendor.Admin@example.com"))
    other = await deliver(pool, confirmation("tok-9", "treasurer@example.com"))
    assert rejections(own) == ["sod_violation"] and eligibility(own) == []
    assert rejections(other) == ["payout_account_not_current"] and eligibility(other) == []
    [rejected] = emitted(other, "document.rejected")
    assert rejected["data"]["event_type"] == "payee.payout_account_confirmed"

    confirmed = await deliver(pool, confirmation("tok-2", "treasurer@example.com"))
    assert rejections(confirmed) == [] and eligibility(confirmed) == []  # still cooling off
    # a sweep one second before the end of the cooling-off changes nothing; at its end it does
    assert await run_sweep_with(pool, CHANGED_AT + COOLING_OFF - timedelta(seconds=1)) == []
    assert await run_sweep_with(pool, CHANGED_AT + COOLING_OFF) == [(True, [], "tok-2")]
    assert await run_sweep_with(pool, CHANGED_AT + COOLING_OFF + timedelta(hours=1)) == []

    # a confirmation of the account already confirmed is acknowledged and does nothing
    clock["now"] = CHANGED_AT + 2 * COOLING_OFF
    again = await deliver(pool, confirmation("tok-2", "controller@example.com"))
    assert again.outbox == []


async def test_a_confirmation_after_the_cooling_off_releases_the_payee_at_once(pool: asyncpg.Pool) -> None:
    await deliver(pool, profile_update(1, "tok-1", CHANGED_AT - timedelta(days=30)))
    await deliver(pool, profile_update(2, "tok-2", CHANGED_AT))
    assert await run_sweep_with(pool, CHANGED_AT + 3 * COOLING_OFF) == []  # time alone never confirms
    clock["now"] = CHANGED_AT + 3 * COOLING_OFF
    confirmed = await deliver(pool, confirmation("tok-2", "treasurer@example.com"))
    assert eligibility(confirmed) == [(True, [], "tok-2")]


async def test_a_confirmation_for_an_unknown_payee_or_unsigned_is_refused(pool: asyncpg.Pool) -> None:
    unknown = await deliver(pool, confirmation("tok-2", "treasurer@example.com"))
    assert rejections(unknown) == ["payee_unknown"]
    await deliver(pool, profile_update(1, "tok-1", CHANGED_AT - timedelta(days=30)))
    await deliver(pool, profile_update(2, "tok-2", CHANGED_AT))
    clock["now"] = CHANGED_AT + 2 * COOLING_OFF
    unsigned = await deliver(pool, confirmation("tok-2", "treasurer@example.com", signed=False))
    assert unsigned.deadlettered == 1 and eligibility(unsigned) == []
    assert [json.loads(m.value())["data"]["error"] for m in unsigned.outbox] != []


async def run_sweep_with(pool: asyncpg.Pool, now: datetime) -> list[tuple[bool, list[str], str]]:
    messages = await run_sweep(pool, now, CONFIG.policy)
    return [
        (m.envelope.data["eligible"], m.envelope.data["reasons"], m.envelope.data["payout_account_ref"])
        for m in messages
    ]
