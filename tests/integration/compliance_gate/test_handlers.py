"""compliance_gate handlers and sweep on a real PostgreSQL (no Kafka): what downstream would see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import structlog
import structlog.testing

from services.compliance_gate import store
from services.compliance_gate.config import GateConfig
from services.compliance_gate.domain import CompliancePolicy, Reason, SweepChange, eligibility_from, status_of
from services.compliance_gate.handlers import router
from services.compliance_gate.sweep import sweep_eligibility
from shared.consumer import BatchProcessor, BatchResult, RawRecord, Router
from shared.outbox import OutboxMessage, write_outbox
from shared.settings import Settings
from shared.topics import COMPLIANCE_ELIGIBILITY, IN_PAYEES
from shared.unit_of_work import UnitOfWork
from tests import support
from tests.support import emitted, record, scratch_pool

pytestmark = pytest.mark.integration

# Handlers evaluate at the unit of work's clock; tests freeze it so the rules' dates are fixed.
CLOCK = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
TIN_LAST4 = "6789"
# Quoted, as a JSON or repr value would be: bare digits could turn up inside a random hex event id.
TIN_JSON, TIN_REPR = '"6789"', "'6789'"
VAT_NUMBER = "DE123456789"


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("compliance_gate") as p:
        yield p


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(UnitOfWork, "now", property(lambda self: CLOCK))
    yield


# The defaults, whatever the developer's environment says.
CONFIG = GateConfig()


async def deliver(
    pool: asyncpg.Pool, router: Router, *records: RawRecord, config: GateConfig = CONFIG
) -> BatchResult:
    return await support.deliver(pool, router, *records, config=config)


def profile(payee_id: str = "payee-ind-de", version: int = 1, **changes: Any) -> dict[str, Any]:
    """A compliant non-US individual with a W-8BEN signed 2024-03-10 (in force through 2027-12-31)."""
    data: dict[str, Any] = {
        "payee_id": payee_id,
        "profile_version": version,
        "entity_type": "individual",
        "country": "DE",
        "kyc": {"status": "verified", "verified_at": "2027-01-10T09:00:00Z"},
        "aml": {"status": "clear", "screened_at": "2027-05-01T09:00:00Z"},
        "tax_form": {"type": "W-8BEN", "status": "valid", "signed_at": "2024-03-10", "tin_last4": TIN_LAST4},
        "payout_account_ref": "acct_tok_1",
    }
    data.update(changes)
    return data


def business_profile(payee_id: str = "payee-biz-de", version: int = 1, **changes: Any) -> dict[str, Any]:
    data = profile(payee_id, version, entity_type="business", kyc=None)
    data.update(
        kyb={"status": "verified", "beneficial_owners_verified": True},
        tax_form={"type": "W-8BEN-E", "status": "valid", "signed_at": "2026-01-05", "tin_last4": TIN_LAST4},
        vat={"number": VAT_NUMBER, "status": "valid", "checked_at": "2027-05-02T10:00:00Z"},
    )
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def profile_updated(data: dict[str, Any], event_id: str | None = None) -> Any:
    return record(IN_PAYEES, "payee.profile_updated", data, key=data["payee_id"], event_id=event_id)


def changes(result: BatchResult) -> list[dict[str, Any]]:
    return emitted(result, "payee.eligibility_changed")


async def inbox_result(pool: asyncpg.Pool, event_id: str) -> str | None:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT result FROM inbox WHERE event_id = $1", event_id)  # type: ignore[no-any-return]


async def stored_version(pool: asyncpg.Pool, payee_id: str) -> int | None:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT profile_version FROM payees WHERE payee_id = $1", payee_id)  # type: ignore[no-any-return]


async def run_sweep(
    pool: asyncpg.Pool, now: datetime, policy: CompliancePolicy | None = None
) -> list[OutboxMessage]:
    """One sweep in its own transaction, exactly as Service.run_unit_of_work runs it."""
    async with pool.acquire() as conn, conn.transaction():
        config = GateConfig(policy or CompliancePolicy())
        uow = UnitOfWork(conn, Settings(service="compliance_gate"), "compliance_gate", config=config)
        await sweep_eligibility(uow, now)
        await write_outbox(conn, uow.outbox)
    return uow.outbox


def envelopes(messages: list[OutboxMessage]) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in messages]


# --- profile updates ------------------------------------------------------------------------


async def test_the_first_profile_of_a_payee_publishes_its_eligibility(pool: asyncpg.Pool) -> None:
    result = await deliver(pool, router, profile_updated(profile()))

    [event] = changes(result)
    assert event["data"] == {
        "payee_id": "payee-ind-de",
        "eligible": True,
        "reasons": [],
        "profile_version": 1,
        "evaluated_at": "2027-06-01T12:00:00Z",
        "country": "DE",
        "entity_type": "individual",
        "payout_account_ref": "acct_tok_1",
        "reportable_1099_nec": False,
    }
    [message] = result.outbox
    assert message.topic == COMPLIANCE_ELIGIBILITY.name
    assert message.key == "payee-ind-de"


async def test_a_first_profile_that_fails_publishes_every_reason(pool: asyncpg.Pool) -> None:
    data = profile(
        country="US",
        kyc={"status": "pending"},
        aml={"status": "hit", "screened_at": "2025-01-01T00:00:00Z"},
    )
    [event] = changes(await deliver(pool, router, profile_updated(data)))
    assert event["data"]["eligible"] is False
    assert event["data"]["reasons"] == [
        "aml_not_clear",
        "aml_screening_stale",
        "kyc_not_verified",
        "tax_form_wrong_type",
    ]
    assert event["data"]["reportable_1099_nec"] is True


async def test_no_tax_id_or_vat_number_reaches_an_event_or_the_database(pool: asyncpg.Pool) -> None:
    result = await deliver(pool, router, profile_updated(business_profile()))
    [message] = result.outbox
    assert TIN_JSON not in message.value().decode()
    assert "tin_last4" not in message.value().decode()
    assert VAT_NUMBER not in message.value().decode()
    async with pool.acquire() as conn:
        dumped = await conn.fetchval(
            "SELECT string_agg(profile::text, ' ') FROM "
            "(SELECT profile FROM payees UNION ALL SELECT profile FROM payee_profile_versions) p"
        )
    assert TIN_JSON not in dumped
    assert "tin_last4" not in dumped
    assert VAT_NUMBER not in dumped


async def test_no_tax_id_or_vat_number_reaches_a_log_line(pool: asyncpg.Pool) -> None:
    failing = business_profile(
        version=2,
        tax_form={"type": "W-9", "status": "invalid", "tin_last4": TIN_LAST4},
        vat={"number": VAT_NUMBER, "status": "invalid"},
    )
    with structlog.testing.capture_logs() as logs:
        await deliver(pool, router, profile_updated(business_profile()))
        await deliver(pool, router, profile_updated(failing), profile_updated(business_profile(version=1)))
        await run_sweep(pool, datetime(2030, 1, 1, tzinfo=UTC))
    assert {entry["event"] for entry in logs} >= {
        "payee_eligibility_changed",
        "payee_profiles_applied",
        "eligibility_sweep_done",
    }
    text = repr(logs)
    assert TIN_REPR not in text
    assert "tin_last4" not in text
    assert VAT_NUMBER not in text
    assert "payee-biz-de" in text  # the business key is there to find the flow


async def test_a_lower_or_equal_profile_version_is_ignored(pool: asyncpg.Pool) -> None:
    await deliver(pool, router, profile_updated(profile(version=2)))

    older = profile_updated(profile(version=1, aml={"status": "hit", "screened_at": "2027-05-01T09:00:00Z"}))
    same = profile_updated(profile(version=2, kyc={"status": "failed"}))
    result = await deliver(pool, router, older, same)

    assert changes(result) == []
    assert await inbox_result(pool, json.loads(older.value)["event_id"]) == "stale_version"
    assert await inbox_result(pool, json.loads(same.value)["event_id"]) == "stale_version"
    assert await stored_version(pool, "payee-ind-de") == 2
    # The stale profiles changed nothing: the sweep still sees an eligible payee.
    assert await run_sweep(pool, CLOCK) == []


async def test_eligibility_changed_is_published_only_when_the_outcome_changes(pool: asyncpg.Pool) -> None:
    hit = {"status": "hit", "screened_at": "2027-05-20T09:00:00Z"}
    steps: list[tuple[dict[str, Any], list[str] | None]] = [
        (profile(version=1), []),  # first evaluation: always published
        (profile(version=2, kyc={"status": "verified", "verified_at": "2027-05-30T09:00:00Z"}), None),
        (profile(version=3, aml=hit), ["aml_not_clear"]),
        (profile(version=4, aml=hit), None),  # still the same reasons
        (profile(version=5, aml=hit, kyc={"status": "pending"}), ["aml_not_clear", "kyc_not_verified"]),
        (profile(version=6, aml=hit, kyc={"status": "pending"}), None),
        (profile(version=7), []),  # eligible again
    ]
    for data, expected in steps:
        rec = profile_updated(data)
        result = await deliver(pool, router, rec)
        published = changes(result)
        outcome = await inbox_result(pool, json.loads(rec.value)["event_id"])
        if expected is None:
            assert published == [], f"version {data['profile_version']} published without a change"
            assert outcome == "unchanged"
        else:
            assert outcome == "published"
            [event] = published
            assert event["data"]["reasons"] == expected
            assert event["data"]["eligible"] is (expected == [])
            assert event["data"]["profile_version"] == data["profile_version"]
    assert await stored_version(pool, "payee-ind-de") == 7


async def test_a_new_payout_account_is_published_and_unconfirmed(pool: asyncpg.Pool) -> None:
    # SPEC §13.3 (it was "eligible, new account" in v1): the change waits for its confirmation.
    await deliver(pool, router, profile_updated(profile(version=1)))
    [event] = changes(
        await deliver(pool, router, profile_updated(profile(version=2, payout_account_ref="acct_tok_2")))
    )
    assert event["data"]["eligible"] is False
    assert event["data"]["reasons"] == ["payout_account_unconfirmed"]
    assert event["data"]["payout_account_ref"] == "acct_tok_2"


async def test_a_redelivered_profile_is_acknowledged_and_does_nothing(pool: asyncpg.Pool) -> None:
    rec = profile_updated(profile(), event_id="evt_payee_1")
    first = await deliver(pool, router, rec)
    again = await deliver(pool, router, rec)
    assert len(changes(first)) == 1
    assert again.duplicates == 1
    assert again.outbox == []


async def test_an_invalid_profile_goes_to_the_deadletter_topic_and_changes_nothing(
    pool: asyncpg.Pool,
) -> None:
    bad = profile()
    del bad["aml"]
    result = await deliver(pool, router, profile_updated(bad))
    assert result.deadlettered == 1
    assert changes(result) == []
    assert await stored_version(pool, "payee-ind-de") is None


async def test_each_payee_is_evaluated_on_its_own(pool: asyncpg.Pool) -> None:
    result = await deliver(
        pool,
        router,
        profile_updated(profile("payee-a")),
        profile_updated(business_profile("payee-b", vat={"number": VAT_NUMBER, "status": "invalid"})),
    )
    by_payee = {e["data"]["payee_id"]: e["data"] for e in changes(result)}
    assert by_payee["payee-a"]["eligible"] is True
    assert by_payee["payee-b"]["reasons"] == ["vat_invalid"]


# --- the sweep ------------------------------------------------------------------------------


async def test_the_sweep_blocks_a_payee_whose_w8ben_expired_between_two_sweeps(pool: asyncpg.Pool) -> None:
    # W-8BEN signed 2024-03-10: in force through 2027-12-31, expired on 2028-01-01 (SPEC §7).
    # AML screened on the day of the update (not later: SPEC §15) so only the tax form changes
    # between the two sweeps.
    data = profile(aml={"status": "clear", "screened_at": "2027-06-01T09:00:00Z"})
    await deliver(pool, router, profile_updated(data), profile_updated(business_profile("payee-other")))

    assert await run_sweep(pool, datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC)) == []

    new_year = datetime(2028, 1, 1, 0, 0, tzinfo=UTC)
    [event] = envelopes(await run_sweep(pool, new_year))
    assert event["event_type"] == "payee.eligibility_changed"
    assert event["data"]["payee_id"] == "payee-ind-de"
    assert event["data"]["eligible"] is False
    assert event["data"]["reasons"] == ["tax_form_expired"]
    assert event["data"]["profile_version"] == 1
    assert event["data"]["evaluated_at"] == "2028-01-01T00:00:00Z"

    # A re-run of the same sweep (and a later one) finds nothing new to say.
    assert await run_sweep(pool, new_year) == []
    assert await run_sweep(pool, new_year + timedelta(hours=1)) == []


async def test_a_sweep_rerun_after_a_crash_publishes_the_same_event_ids(pool: asyncpg.Pool) -> None:
    await deliver(
        pool, router, profile_updated(profile(aml={"status": "clear", "screened_at": "2027-06-01T09:00:00Z"}))
    )
    new_year = datetime(2028, 1, 1, 0, 0, tzinfo=UTC)

    class Crash(Exception):
        pass

    crashed: list[str] = []
    with pytest.raises(Crash):
        async with pool.acquire() as conn, conn.transaction():
            uow = UnitOfWork(conn, Settings(service="compliance_gate"), "compliance_gate", config=CONFIG)
            await sweep_eligibility(uow, new_year)
            crashed = [m.envelope.event_id for m in uow.outbox]
            raise Crash  # before the commit: nothing of this attempt is kept

    rerun = [m.envelope.event_id for m in await run_sweep(pool, new_year + timedelta(seconds=5))]
    assert len(crashed) == 1
    assert rerun == crashed  # downstream dedupes the attempt that got out, if any did
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'payee.eligibility_changed'")
            == 2
        )


async def test_the_sweep_blocks_a_payee_whose_aml_screening_went_stale(pool: asyncpg.Pool) -> None:
    w8_in_force_until_2029 = {"type": "W-8BEN", "status": "valid", "signed_at": "2026-02-01"}
    aml = {"status": "clear", "screened_at": "2027-05-01T09:00:00Z"}
    await deliver(pool, router, profile_updated(profile(aml=aml, tax_form=w8_in_force_until_2029)))
    assert await run_sweep(pool, datetime(2028, 4, 30, 9, 0, tzinfo=UTC)) == []  # exactly 365 days
    [event] = envelopes(await run_sweep(pool, datetime(2028, 4, 30, 9, 0, 1, tzinfo=UTC)))
    assert event["data"]["reasons"] == ["aml_screening_stale"]


async def test_the_sweep_applies_a_policy_change(pool: asyncpg.Pool) -> None:
    await deliver(
        pool, router, profile_updated(business_profile(vat={"number": VAT_NUMBER, "status": "unchecked"}))
    )
    # Published at the profile update already: the VAT number is unchecked.
    assert await run_sweep(pool, CLOCK) == []
    [event] = envelopes(await run_sweep(pool, CLOCK, CompliancePolicy(eu_vat_check=False)))
    assert event["data"]["eligible"] is True


async def test_a_profile_update_after_a_sweep_compares_with_what_the_sweep_published(
    pool: asyncpg.Pool,
) -> None:
    await deliver(
        pool, router, profile_updated(profile(aml={"status": "clear", "screened_at": "2027-06-01T09:00:00Z"}))
    )
    await run_sweep(pool, datetime(2028, 1, 1, tzinfo=UTC))  # published: tax_form_expired
    # The payee is evaluated at the frozen clock (2027-06-01) again with a new form in force:
    # eligible, which differs from what the sweep published, so it is published.
    renewed = profile(version=2, tax_form={"type": "W-8BEN", "status": "valid", "signed_at": "2027-05-01"})
    [event] = changes(await deliver(pool, router, profile_updated(renewed)))
    assert event["data"]["eligible"] is True


async def test_a_sweep_outcome_never_overwrites_a_newer_profile(pool: asyncpg.Pool) -> None:
    await deliver(pool, router, profile_updated(profile(version=3)))
    async with pool.acquire() as conn:
        [payee] = await store.load_payees(conn)
        blocked = eligibility_from([Reason.AML_NOT_CLEAR])

        def swept(version: int) -> SweepChange:
            at = replace(payee.profile, profile_version=version)
            return SweepChange(at, blocked, status_of(at, blocked))

        # The sweep evaluated version 2, but version 3 was applied meanwhile.
        written = await store.save_swept(conn, [swept(2)], datetime(2028, 1, 1, tzinfo=UTC))
        assert written == set()
        written = await store.save_swept(conn, [swept(3)], datetime(2028, 1, 1, tzinfo=UTC))
        assert written == {"payee-ind-de"}


async def test_a_sweep_racing_a_newer_profile_leaves_the_payee_to_that_profile(pool: asyncpg.Pool) -> None:
    await deliver(
        pool, router, profile_updated(profile(aml={"status": "clear", "screened_at": "2027-06-01T09:00:00Z"}))
    )
    renewed = profile(
        version=2,
        aml={"status": "clear", "screened_at": "2027-06-01T09:00:00Z"},
        tax_form={"type": "W-8BEN", "status": "valid", "signed_at": "2027-05-01"},
    )
    processor = BatchProcessor(router, Settings(service="compliance_gate"))
    processor.config = CONFIG
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        # Version 2 is applied but not committed yet: it holds the payee's row lock.
        await processor.process(conn, [profile_updated(renewed)])
        # Meanwhile the sweep reads version 1 (expired on 2028-01-01) and wants to publish that.
        sweep = asyncio.create_task(run_sweep(pool, datetime(2028, 1, 1, tzinfo=UTC)))
        assert await _waits_for_a_lock(pool), "the sweep never reached the payee's row"
        await tx.commit()
    assert await sweep == []  # version 2 won; the sweep's view of version 1 was not published
    assert await stored_version(pool, "payee-ind-de") == 2


async def _waits_for_a_lock(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        for _ in range(100):
            waiting = await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'"""
            )
            if waiting:
                return True
            await asyncio.sleep(0.05)
    return False


async def test_the_service_sweeps_periodically_at_its_own_clock(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.compliance_gate.app import service

    await deliver(
        pool, router, profile_updated(profile(aml={"status": "clear", "screened_at": "2027-06-01T09:00:00Z"}))
    )
    [task] = service.periodic
    assert task.interval_s(Settings(compliance_sweep_interval_s=2.5)) == 2.5
    monkeypatch.setattr(UnitOfWork, "now", property(lambda self: datetime(2028, 1, 1, tzinfo=UTC)))
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(conn, Settings(service="compliance_gate"), "compliance_gate", config=CONFIG)
        await task.run(uow)
    [event] = envelopes(uow.outbox)
    assert event["data"]["reasons"] == ["tax_form_expired"]
