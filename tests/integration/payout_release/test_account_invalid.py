"""SPEC §12.4: a rail failure pointing at the payee's account blocks the payee's invoices with
`payout_account_invalid` until the payee's profile changes, instead of re-releasing them every run."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from shared.consumer import RawRecord
from shared.contracts.internal import PayeeEligibilityChanged
from shared.contracts.registry import spec_of
from shared.topics import COMPLIANCE_ELIGIBILITY, IN_RAIL_EVENTS
from testkit.samples.payouts import T0, approved, run_requested
from tests.integration.payout_release.test_handlers import _one_payout, blocked, ready, released, send
from tests.support import record

pytestmark = pytest.mark.integration


def failed(payout_id: str, code: str) -> RawRecord:
    data = {
        "payout_id": payout_id,
        "rail_event_id": f"rail-{code}",
        "failure_code": code,
        "message": "from the bank",
    }
    return record(IN_RAIL_EVENTS, "payout.failed", data, key=payout_id)


def profile(version: int, account: str) -> RawRecord:
    data = {
        "payee_id": "payee-1",
        "eligible": True,
        "reasons": [],
        "profile_version": version,
        "evaluated_at": (T0 + timedelta(hours=version)).isoformat(),
        "payout_account_ref": account,
    }
    return record(COMPLIANCE_ELIGIBILITY, spec_of(PayeeEligibilityChanged).type, data, key="payee-1")


@pytest.mark.parametrize("code", ["AC01", "AC04", "AC06", "unknown_account"])
async def test_an_account_failure_blocks_the_payee_until_its_profile_changes(
    pool: asyncpg.Pool, code: str
) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    payout_id = await _one_payout(pool, "run-1")
    await send(pool, failed(payout_id, code))

    again = await send(pool, run_requested("run-2"))
    assert released(again) == []
    assert blocked(again) == {"inv-1": ["payout_account_invalid"]}

    # A re-evaluation of the same profile (a sweep) keeps the block; a new profile version lifts it.
    await send(pool, profile(1, "tok-payee-1"))
    assert blocked(await send(pool, run_requested("run-3"))) == {"inv-1": ["payout_account_invalid"]}
    await send(pool, profile(2, "tok-payee-1-new"))
    [paid] = released(await send(pool, run_requested("run-4")))
    assert paid["payout_account_ref"] == "tok-payee-1-new"


async def test_other_failures_are_retried_next_run(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    payout_id = await _one_payout(pool, "run-1")
    await send(pool, failed(payout_id, "AM04"))  # insufficient funds: not the payee's account
    assert len(released(await send(pool, run_requested("run-2")))) == 1
