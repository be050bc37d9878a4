"""payout_release on a real PostgreSQL (no Kafka): runs, crashes, concurrency, rail responses."""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.payout_release import store
from services.payout_release.config import PayoutConfig
from services.payout_release.domain import RunRequest, payout_id_for
from services.payout_release.handlers import router
from services.payout_release.runs import execute_run, scheduled_payout_run
from shared.consumer import BatchProcessor, BatchResult, RawRecord
from shared.outbox import write_outbox
from shared.settings import Settings
from shared.topics import MATCHING_DECISIONS
from shared.unit_of_work import UnitOfWork
from testkit.samples.payouts import (
    T0,
    approved,
    eligibility,
    funding,
    held,
    po_closed,
    po_in_force,
    rail,
    run_requested,
)
from tests.support import FrozenClock, deliver, emitted, record

pytestmark = pytest.mark.integration

# A policy file without a payout_release section: every business unit automated (SPEC §10),
# whatever the shipped deploy/policy.yaml says.
_NO_COHORTS = Path(tempfile.gettempdir()) / "concord-payout-release-test-policy.yaml"
_NO_COHORTS.write_text("matching: {}\n")
SETTINGS = Settings(service="payout_release", policy_file=str(_NO_COHORTS), payout_run_interval_s=30)


async def send(pool: asyncpg.Pool, *records: RawRecord, settings: Settings = SETTINGS) -> BatchResult:
    return await deliver(pool, router, *records, settings=settings)


async def ready(pool: asyncpg.Pool, funds: str = "1000.00") -> None:
    """A payable world: eligible payee, PO-1 v1 in force, funded account."""
    await send(pool, eligibility(), po_in_force(), funding(funds))


def released(result: BatchResult) -> list[dict[str, Any]]:
    return [e["data"] for e in emitted(result, "payout.released")]


def blocked(result: BatchResult) -> dict[str, list[str]]:
    return {e["data"]["invoice_id"]: e["data"]["reasons"] for e in emitted(result, "payout.blocked")}


async def inbox_result(pool: asyncpg.Pool, rec: RawRecord) -> str | None:
    """What the handler answered for this record (the inbox row's result)."""
    event_id = json.loads(rec.value)["event_id"]
    async with pool.acquire() as conn:
        result = await conn.fetchval("SELECT result FROM inbox WHERE event_id = $1", event_id)
    return None if result is None else str(result)


async def available(pool: asyncpg.Pool, account_id: str = "fund-1") -> Decimal | None:
    async with pool.acquire() as conn:
        return await store.available_funding(conn, account_id)


async def live_payouts(pool: asyncpg.Pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT invoice_id, payout_id FROM payout_invoices WHERE live")
    return {r["invoice_id"]: r["payout_id"] for r in rows}


async def scheduled(pool: asyncpg.Pool, settings: Settings = SETTINGS) -> BatchResult:
    """What the PeriodicTask does, minus the advisory try-lock of Service.run_unit_of_work."""
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(conn, settings, "payout_release", config=PayoutConfig.load(settings))
        await scheduled_payout_run(uow)
        await write_outbox(conn, uow.outbox)
    return BatchResult(outbox=uow.outbox)


# --- a run ---------------------------------------------------------------------------------


async def test_run_releases_the_payout_exactly_as_the_contract_says(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1", "100.00"), approved("cn-1", "30.00", document_type="credit_note"))
    result = await send(pool, run_requested("run-A"))

    [msg] = [m for m in result.outbox if m.envelope.event_type == "payout.released"]
    assert msg.topic == "concord.out.payouts" and msg.key == "payee-1"
    payout_id = payout_id_for("run-A", "payee-1", "EUR", "LE-1", "fund-1")
    assert msg.envelope.data == {
        "payout_id": payout_id,
        "idempotency_key": payout_id,
        "run_id": "run-A",
        "payee_id": "payee-1",
        "payout_account_ref": "tok-payee-1",
        "legal_entity": "LE-1",
        "funding_account_id": "fund-1",
        "currency": "EUR",
        "amount": "70.00",
        "invoices": [{"invoice_id": "cn-1", "amount": "-30.00"}, {"invoice_id": "inv-1", "amount": "100.00"}],
        "released_at": "2026-11-21T12:00:10Z",
    }
    assert await available(pool) == Decimal("930.00")
    assert blocked(result) == {}


async def test_every_candidate_not_released_is_blocked_with_every_reason(pool: asyncpg.Pool) -> None:
    await ready(pool, funds="150.00")
    await send(
        pool,
        eligibility("payee-2", False, "tax_form_missing", "aml_not_clear"),
        approved("inv-ok", "100.00"),
        held("inv-held"),
        approved("inv-bad-payee", payee_id="payee-2"),
        approved("inv-nobody", payee_id="payee-unknown"),
        # Newer than inv-ok: with money for one of them, the older invoice is paid first.
        approved("inv-no-money", "100.00", po_number=None, po_version=None, issue_date="2026-11-15"),
    )
    result = await send(pool, run_requested("run-A"))
    assert {i["invoice_id"] for p in released(result) for i in p["invoices"]} == {"inv-ok"}
    assert blocked(result) == {
        "inv-held": ["not_approved"],
        "inv-bad-payee": ["payee_ineligible", "tax_form_missing", "aml_not_clear"],
        "inv-nobody": ["payee_ineligible", "payee_unknown"],
        "inv-no-money": ["insufficient_funds"],
    }
    keys = {m.key for m in result.outbox if m.envelope.event_type == "payout.blocked"}
    assert keys == {"inv-held", "inv-bad-payee", "inv-nobody", "inv-no-money"}
    async with pool.acquire() as conn:
        why = await conn.fetchval(
            "SELECT reasons FROM payout_blocks WHERE run_id = 'run-A' AND invoice_id = 'inv-nobody'"
        )
    assert why == ["payee_ineligible", "payee_unknown"]


async def test_stale_po_and_po_not_in_force(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"), po_in_force("PO-1", version=2))
    first = await send(pool, run_requested("run-A"))
    assert blocked(first) == {"inv-1": ["stale_po"]}
    await send(pool, approved("inv-1", po_version=2, decided_at=T0), po_closed("PO-1"))
    second = await send(pool, run_requested("run-B"))
    assert blocked(second) == {"inv-1": ["po_not_in_force"]}


async def test_po_past_its_effective_dates_is_not_in_force(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, po_in_force("PO-1", version=1, effective_to="2026-11-20"), approved("inv-1"))
    assert blocked(await send(pool, run_requested("run-A"))) == {"inv-1": ["po_not_in_force"]}


async def test_held_revoked_and_superseded_invoices_are_not_paid(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"), approved("inv-2"), approved("inv-3"))
    revoke = {
        "invoice_id": "inv-2",
        "po_number": "PO-1",
        "reason": "receipt reversed",
        "decided_at": T0.isoformat(),
        "decision_id": "dec-r",
    }
    supersede = {"invoice_id": "inv-3", "superseded_by": "inv-3b", "po_number": "PO-1"}
    await send(
        pool,
        held("inv-1"),
        record(MATCHING_DECISIONS, "invoice.approval_revoked", revoke, key="inv-2"),
        record(MATCHING_DECISIONS, "invoice.superseded", supersede, key="inv-3"),
    )
    result = await send(pool, run_requested("run-A"))
    assert released(result) == []
    assert blocked(result) == {"inv-1": ["not_approved"], "inv-2": ["not_approved"]}


async def test_cohorts_hold_back_a_business_unit_until_an_operator_runs(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("payout_release:\n  automated_business_units: [BU-B]\n")
    settings = SETTINGS.model_copy(update={"policy_file": str(policy)})
    await ready(pool)
    await send(
        pool, approved("inv-a", business_unit="BU-A"), approved("inv-b", "50.00", business_unit="BU-B")
    )
    first = await scheduled(pool, settings)
    assert [i["invoice_id"] for p in released(first) for i in p["invoices"]] == ["inv-b"]
    assert blocked(first) == {"inv-a": ["not_automated"]}
    second = await send(pool, run_requested("run-ops"), settings=settings)
    assert [i["invoice_id"] for p in released(second) for i in p["invoices"]] == ["inv-a"]


async def test_run_filters_limit_what_is_paid(pool: asyncpg.Pool) -> None:
    await send(
        pool, eligibility(), po_in_force(), funding("1000"), funding("1000", "fund-2", legal_entity="LE-2")
    )
    await send(pool, approved("inv-1"), approved("inv-2", legal_entity="LE-2"))
    result = await send(pool, run_requested("run-A", legal_entity="LE-2"))
    assert [(p["legal_entity"], p["funding_account_id"]) for p in released(result)] == [("LE-2", "fund-2")]
    assert blocked(result) == {}


# --- crash and re-run ----------------------------------------------------------------------


async def test_rerun_after_crash_releases_the_same_payouts_and_no_more(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"), approved("inv-2", payee_id="payee-2"), eligibility("payee-2"))

    # First attempt crashes before its transaction commits: nothing of it survives.
    processor = BatchProcessor(router, SETTINGS)
    processor.config = PayoutConfig.load(SETTINGS)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        crashed = await processor.process(conn, [run_requested("run-A")])
        await tx.rollback()
    assert await live_payouts(pool) == {}

    # The command is redelivered (a new envelope, the same run_id): the same payouts, same ids.
    retried = await send(pool, run_requested("run-A"))
    ids = sorted(p["payout_id"] for p in released(retried))
    assert ids == sorted(p["payout_id"] for p in released(crashed))
    assert len(ids) == 2
    assert [m.envelope.event_id for m in retried.outbox] == [m.envelope.event_id for m in crashed.outbox]

    # Delivered once more after success, with a new invoice approved meanwhile: nothing more.
    await send(pool, approved("inv-3"))
    again = await send(pool, run_requested("run-A"))
    assert again.outbox == []
    assert set(await live_payouts(pool)) == {"inv-1", "inv-2"}


async def test_redelivered_run_command_answers_already_executed(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    await send(pool, run_requested("run-A"))
    rec = run_requested("run-A")
    await send(pool, rec)
    assert await inbox_result(pool, rec) == "run_already_executed"
    assert await available(pool) == Decimal("900.00")


async def test_scheduled_run_twice_in_one_slot_releases_once(
    pool: asyncpg.Pool, frozen_clock: FrozenClock
) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    first = await scheduled(pool)
    frozen_clock.now = T0 + timedelta(seconds=15)  # restarted within the same 30 s slot
    second = await scheduled(pool)
    [payout] = released(first)
    assert payout["run_id"] == "run-20261121T120000Z"
    assert payout["payout_id"] == payout_id_for("run-20261121T120000Z", "payee-1", "EUR", "LE-1", "fund-1")
    assert second.outbox == []
    frozen_clock.now = T0 + timedelta(seconds=30)
    await send(pool, approved("inv-2"))
    third = await scheduled(pool)
    assert [p["run_id"] for p in released(third)] == ["run-20261121T120030Z"]
    assert set(await live_payouts(pool)) == {"inv-1", "inv-2"}


async def test_scheduled_runs_repeat_a_block_only_when_its_reasons_change(
    pool: asyncpg.Pool, frozen_clock: FrozenClock
) -> None:
    await ready(pool)
    await send(pool, eligibility("payee-2", False, "tax_form_missing"), approved("inv-x", payee_id="payee-2"))
    first = await scheduled(pool)
    assert blocked(first) == {"inv-x": ["payee_ineligible", "tax_form_missing"]}
    frozen_clock.now = T0 + timedelta(seconds=30)
    assert blocked(await scheduled(pool)) == {}  # same reasons: the first notice still answers
    await send(pool, eligibility("payee-2", False, "aml_not_clear"))
    frozen_clock.now = T0 + timedelta(seconds=60)
    assert blocked(await scheduled(pool)) == {"inv-x": ["payee_ineligible", "aml_not_clear"]}
    # An operator's run answers for every candidate, changed or not.
    answered = blocked(await send(pool, run_requested("run-ops")))
    assert answered == {"inv-x": ["payee_ineligible", "aml_not_clear"]}


# --- concurrency ---------------------------------------------------------------------------


async def test_two_concurrent_runs_never_pay_an_invoice_twice_or_overdraw(pool: asyncpg.Pool) -> None:
    await send(pool, po_in_force(), funding("250.00"))
    payees = [f"payee-{i}" for i in range(6)]
    await send(pool, *(eligibility(p) for p in payees))
    await send(pool, *(approved(f"inv-{p}", "100.00", payee_id=p) for p in payees))

    results = await asyncio.gather(send(pool, run_requested("run-X")), send(pool, run_requested("run-Y")))

    payouts = [p for r in results for p in released(r)]
    paid = [i["invoice_id"] for p in payouts for i in p["invoices"]]
    assert len(paid) == len(set(paid)) == 2
    assert sum(Decimal(p["amount"]) for p in payouts) == Decimal("200.00")
    assert await available(pool) == Decimal("50.00")
    assert len(await live_payouts(pool)) == 2


async def test_a_run_that_starts_while_another_is_open_waits_and_sees_its_payouts(pool: asyncpg.Pool) -> None:
    await send(pool, po_in_force(), funding("250.00"))
    payees = [f"payee-{i}" for i in range(4)]
    await send(pool, *(eligibility(p) for p in payees))
    await send(pool, *(approved(f"inv-{p}", "100.00", payee_id=p) for p in payees))

    async def run(conn: asyncpg.Connection, run_id: str) -> UnitOfWork:
        uow = UnitOfWork(conn, SETTINGS, "payout_release", config=PayoutConfig.load(SETTINGS))
        await execute_run(uow, RunRequest(run_id, "command"))
        await write_outbox(conn, uow.outbox)
        return uow

    async def run_y(conn: asyncpg.Connection) -> UnitOfWork:
        async with conn.transaction():
            return await run(conn, "run-Y")

    async with pool.acquire() as c1, pool.acquire() as c2:
        tx = c1.transaction()
        await tx.start()
        x = await run(c1, "run-X")  # planned and reserved, not yet committed
        y_task = asyncio.create_task(run_y(c2))
        await asyncio.sleep(0.3)
        assert not y_task.done()  # run Y waits for run X instead of planning from the same money
        await tx.commit()
        y = await y_task

    x_paid = [i["invoice_id"] for p in released(BatchResult(outbox=x.outbox)) for i in p["invoices"]]
    assert x_paid == ["inv-payee-0", "inv-payee-1"]
    assert released(BatchResult(outbox=y.outbox)) == []
    assert blocked(BatchResult(outbox=y.outbox)) == {
        "inv-payee-2": ["insufficient_funds"],
        "inv-payee-3": ["insufficient_funds"],
    }
    assert await available(pool) == Decimal("50.00")


async def test_database_refuses_an_overdraft_and_a_second_live_payout(pool: asyncpg.Pool) -> None:
    await ready(pool, funds="100.00")
    await send(pool, approved("inv-1"))
    await send(pool, run_requested("run-A"))
    [payout_id] = set((await live_payouts(pool)).values())
    async with pool.acquire() as conn:
        with pytest.raises(store.FundingOverdrawn):
            async with conn.transaction():
                await store.reserve_funding(conn, {"fund-1": Decimal("0.01")})
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE funding_accounts SET reserved = reserved + 1 WHERE account_id = 'fund-1'"
            )
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO payout_runs (run_id, trigger, executed_at) VALUES ('r2', 'command', now())"
                )
                await conn.execute(
                    """INSERT INTO payouts (payout_id, run_id, payee_id, legal_entity, currency,
                           funding_account_id, amount, status, released_at, status_at)
                       VALUES ('p2', 'r2', 'payee-1', 'LE-1', 'EUR', 'fund-1', 1, 'released', now(), now())"""
                )
                await conn.execute(
                    "INSERT INTO payout_invoices (payout_id, invoice_id, amount) VALUES ('p2', 'inv-1', 1)"
                )
    assert await live_payouts(pool) == {"inv-1": payout_id}


# --- funding -------------------------------------------------------------------------------


async def test_funding_counts_once_per_funding_id_and_the_richest_account_pays(pool: asyncpg.Pool) -> None:
    await send(pool, eligibility(), po_in_force())
    await send(
        pool, funding("80.00", "fund-a", funding_id="F1"), funding("150.00", "fund-b", funding_id="F2")
    )
    replay = funding("80.00", "fund-a", funding_id="F1")
    await send(pool, replay)
    assert await inbox_result(pool, replay) == "duplicate_funding"
    assert await available(pool, "fund-a") == Decimal("80.00")
    await send(pool, approved("inv-1", "100.00"))
    [payout] = released(await send(pool, run_requested("run-A")))
    assert payout["funding_account_id"] == "fund-b"


async def test_funding_for_another_entity_on_an_existing_account_is_not_credited(pool: asyncpg.Pool) -> None:
    await send(pool, funding("100", "fund-1"))
    wrong = funding("100", "fund-1", legal_entity="LE-9")
    result = await send(pool, wrong)
    assert await inbox_result(pool, wrong) == "account_mismatch"
    [refused] = emitted(result, "funding.refused")  # treasury is told, not only the log
    assert (refused["data"]["expected"], refused["data"]["got"]) == ("LE-1 EUR", "LE-9 EUR")
    assert await available(pool) == Decimal("100")


# --- compliance between runs ---------------------------------------------------------------


async def test_payee_whose_w8ben_expires_between_runs_is_paid_then_blocked(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    first = await send(pool, run_requested("run-1"))
    assert [i["invoice_id"] for p in released(first) for i in p["invoices"]] == ["inv-1"]

    # The compliance gate's expiry sweep publishes the change; a second invoice arrives.
    await send(pool, eligibility("payee-1", False, "tax_form_expired", at=T0 + timedelta(days=1)))
    await send(pool, approved("inv-2"))
    second = await send(pool, run_requested("run-2"))
    assert released(second) == []
    assert blocked(second) == {"inv-2": ["payee_ineligible", "tax_form_expired"]}


async def test_a_late_older_eligibility_does_not_overwrite_a_newer_one(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, eligibility("payee-1", False, "aml_not_clear", at=T0 + timedelta(hours=1)))
    late = eligibility("payee-1", True, at=T0)
    await send(pool, late, approved("inv-1"))
    assert await inbox_result(pool, late) == "stale_evaluation"
    assert blocked(await send(pool, run_requested("run-A"))) == {
        "inv-1": ["payee_ineligible", "aml_not_clear"]
    }


# --- rail responses ------------------------------------------------------------------------


async def _one_payout(pool: asyncpg.Pool, run_id: str = "run-1") -> str:
    result = await send(pool, run_requested(run_id))
    [payout] = released(result)
    return str(payout["payout_id"])


async def test_replayed_settlement_is_applied_once(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    payout_id = await _one_payout(pool)
    first = await send(pool, rail("payout.settled", payout_id, "rail-1"))
    replay = rail("payout.settled", payout_id, "rail-1")  # same rail event, new envelope
    second = await send(pool, replay)

    [recorded] = emitted(first, "payout.settlement_recorded")
    assert recorded["data"]["invoice_ids"] == ["inv-1"] and recorded["data"]["amount"] == "100.00"
    assert [m.key for m in first.outbox] == [payout_id]
    assert second.outbox == []
    assert await inbox_result(pool, replay) == "duplicate_rail_event"
    assert await available(pool) == Decimal("900.00")  # settled money is spent, once
    # A settled invoice is never paid again.
    assert released(await send(pool, run_requested("run-2"))) == []


async def test_failure_opens_an_exception_and_a_later_run_pays_again(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    first_id = await _one_payout(pool, "run-1")
    assert await available(pool) == Decimal("900.00")

    failure = await send(pool, rail("payout.failed", first_id, "rail-f1"))
    [recorded] = emitted(failure, "payout.failure_recorded")
    assert recorded["data"]["failure_code"] == "account_closed"
    [exception] = emitted(failure, "payout.exception_opened")
    assert exception["data"] == {
        "payout_id": first_id,
        "invoice_ids": ["inv-1"],
        "payee_id": "payee-1",
        "reason": "payout_failed",
        "queue": "treasury",
        "opened_at": "2026-11-21T12:00:10Z",
        "detail": "account_closed: beneficiary account closed",
    }
    assert await available(pool) == Decimal("1000.00")
    assert await live_payouts(pool) == {}

    second_id = await _one_payout(pool, "run-2")
    assert second_id != first_id
    assert await live_payouts(pool) == {"inv-1": second_id}
    # A late settlement of the failed attempt changes nothing; treasury is told (SPEC §15).
    late = rail("payout.settled", first_id, "rail-s-late")
    result = await send(pool, late)
    assert [m.envelope.event_type for m in result.outbox] == ["rail_anomaly.opened"]
    [anomaly] = emitted(result, "rail_anomaly.opened")
    assert (anomaly["data"]["what"], anomaly["data"]["expected"], anomaly["data"]["got"]) == (
        "status_conflict",
        "released",
        "failed",
    )
    assert await inbox_result(pool, late) == "status_conflict"
    assert await live_payouts(pool) == {"inv-1": second_id}


async def test_return_after_settlement_reinstates_the_payable(pool: asyncpg.Pool) -> None:
    await ready(pool)
    await send(pool, approved("inv-1"))
    payout_id = await _one_payout(pool)
    await send(pool, rail("payout.settled", payout_id, "rail-s"))
    assert await available(pool) == Decimal("900.00")
    result = await send(pool, rail("payout.returned", payout_id, "rail-r"))
    assert [e["data"]["reason"] for e in emitted(result, "payout.exception_opened")] == ["payout_returned"]
    assert [e["data"]["amount"] for e in emitted(result, "payout.return_recorded")] == ["100.00"]
    assert await available(pool) == Decimal("1000.00")
    assert await _one_payout(pool, "run-2") != payout_id


async def test_a_run_reads_the_open_invoices_not_the_paid_history(pool: asyncpg.Pool) -> None:
    """A run's work follows the invoices still open, not everything ever paid: invoices in a live
    payout, settled or not, are not read (migration 0007); a returned one is read again."""
    await ready(pool)
    await send(pool, approved("inv-1"))
    payout_id = await _one_payout(pool)
    await send(pool, rail("payout.settled", payout_id, "rail-s"))
    await send(pool, approved("inv-2", "50.00"))
    in_flight = await _one_payout(pool, "run-2")  # released, not settled
    async with pool.acquire() as conn:
        # A paid history: 2,000 invoices in live payouts, as years of runs leave.
        await conn.execute(
            """INSERT INTO invoices (invoice_id, payee_id, approved, in_live_payout)
               SELECT 'old-' || n, 'payee-1', true, true FROM generate_series(1, 2000) AS n"""
        )
        await conn.execute("ANALYZE invoices")
        await send(pool, approved("inv-3", "25.00"))
        plan = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + store.CANDIDATES, None))

    def invoice_rows_read(node: dict[str, Any]) -> float:
        own = 0.0
        if node.get("Relation Name") == "invoices":
            own = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        return own + sum(invoice_rows_read(child) for child in node.get("Plans", []))

    # inv-3 is open; inv-1 (settled), inv-2 (released) and the history are not read at all
    assert invoice_rows_read(plan[0]["Plan"]) <= 2
    assert [c.invoice_id for c in await _candidates(pool)] == ["inv-3"]
    # Returned after settlement, failed before it: open again, read and paid again by the next run.
    await send(pool, rail("payout.returned", payout_id, "rail-r"))
    await send(pool, rail("payout.failed", in_flight, "rail-f"))
    assert [c.invoice_id for c in await _candidates(pool)] == ["inv-1", "inv-2", "inv-3"]
    paid = released(await send(pool, run_requested("run-3")))
    assert sorted(i["invoice_id"] for p in paid for i in p["invoices"]) == ["inv-1", "inv-2", "inv-3"]
    assert [c.invoice_id for c in await _candidates(pool)] == []


async def test_the_open_flag_follows_payout_invoices_whoever_writes_them(pool: asyncpg.Pool) -> None:
    """in_live_payout is derived by the database from payout_invoices, not by the store's
    writers: a row ended or made live again by hand (an operator's repair) moves the invoice
    in and out of the runs' reads as well."""
    await ready(pool)
    await send(pool, approved("inv-1"))
    payout_id = await _one_payout(pool)
    assert await _candidates(pool) == []
    async with pool.acquire() as conn:
        await conn.execute("UPDATE payout_invoices SET live = false WHERE payout_id = $1", payout_id)
        assert [c.invoice_id for c in await store.candidates(conn)] == ["inv-1"]
        await conn.execute("UPDATE payout_invoices SET live = true WHERE payout_id = $1", payout_id)
        assert await store.candidates(conn) == []
        flags = await conn.fetch("SELECT invoice_id, in_live_payout FROM invoices ORDER BY invoice_id")
    assert [tuple(r) for r in flags] == [("inv-1", True)]


async def _candidates(pool: asyncpg.Pool) -> list[store.Candidate]:
    async with pool.acquire() as conn:
        return await store.candidates(conn)


async def test_rail_event_for_an_unknown_payout_is_kept_not_crashed_on(pool: asyncpg.Pool) -> None:
    rec = rail("payout.settled", "payout_nope", "rail-x")
    result = await send(pool, rec)
    assert result.deadlettered == 0
    assert [m.envelope.event_type for m in result.outbox] == ["rail_anomaly.opened"]
    assert await inbox_result(pool, rec) == "unknown_payout"
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT payout_id, result FROM rail_events WHERE rail_event_id = 'rail-x'")
    assert dict(row) == {"payout_id": "payout_nope", "result": "unknown_payout"}
