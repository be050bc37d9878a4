"""compliance_gate, a batch at a time: several versions of one payee in one batch end exactly as
they do one by one, and a batch costs the same statements whatever its size (issue 13)."""

from __future__ import annotations

import pytest

from services.compliance_gate.handlers import router
from shared.consumer import RawRecord
from tests.batches import BatchHarness, tables
from tests.integration.compliance_gate.test_handlers import (  # noqa: F401 - frozen_clock: autouse fixture
    CONFIG,
    business_profile,
    frozen_clock,
    profile,
    profile_updated,
)
from tests.support import scratch_pool

pytestmark = pytest.mark.integration

STATE = {
    "payees": "payee_id, profile_version, profile, eligible, reasons, evaluated_at",
    "payee_profile_versions": "payee_id, profile_version, profile, event_id",
    "inbox": "event_id, event_type, business_ref, result",
}
HARNESS = BatchHarness(router, tables(STATE), config=CONFIG)

PENDING_KYB = {"status": "pending", "beneficial_owners_verified": True}


def versions_of_two_payees() -> list[RawRecord]:
    no_form = {"type": "W-8BEN", "status": "missing"}
    return [
        profile_updated(profile(version=1, tax_form=no_form)),  # first: publishes, ineligible
        profile_updated(business_profile(version=1)),
        profile_updated(profile(version=2)),  # now eligible: publishes
        profile_updated(profile(version=2)),  # the same version re-published: stale
        profile_updated(profile(version=1)),  # older: stale
        profile_updated(profile(version=3)),  # nothing downstream needs: unchanged
        profile_updated(profile(version=4, payout_account_ref="acct_tok_2")),  # new account: publishes
        profile_updated(business_profile(version=2, kyb=PENDING_KYB)),
    ]


async def test_one_batch_ends_exactly_as_one_record_at_a_time() -> None:
    compared = await HARNESS.compare(versions_of_two_payees())
    compared.assert_same()
    assert len(compared.batch.published) == 5
    results = [r[3] for r in compared.batch.stored["inbox"]]
    assert sorted(results) == sorted(["published"] * 5 + ["stale_version"] * 2 + ["unchanged"])


async def test_statements_per_batch_do_not_grow_with_the_batch() -> None:
    def batch(start: int, n: int, version: int = 1) -> list[RawRecord]:
        return [profile_updated(profile(f"payee-{i}", version)) for i in range(start, start + n)]

    async with scratch_pool("compliance_gate") as pool, pool.acquire() as conn:
        await HARNESS.process(conn, batch(1000, 1))  # asyncpg introspects array types once per connection
        new = (await HARNESS.statements(conn, batch(0, 10)), await HARNESS.statements(conn, batch(10, 200)))
        # Newer versions of payees already known, with their rows locked and replaced.
        known = (
            await HARNESS.statements(conn, batch(0, 10, 2)),
            await HARNESS.statements(conn, batch(10, 200, 2)),
        )
    assert new[1] - new[0] <= 1, new
    assert known[1] - known[0] <= 1, known
