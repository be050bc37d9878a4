"""The real bank_gateway process on Kafka and PostgreSQL (SPEC §12.4), SIGKILLed between and
during cut-offs and while it reads the bank's answers: every payout is in exactly one pain.001,
every answer becomes exactly one signed rail event per payout, nothing is lost or paid twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.bank_gateway.domain.accounts import is_sandbox_closed
from services.bank_gateway.domain.ids import end_to_end_id
from shared.publish import Publisher
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, verify
from shared.topics import IN_RAIL_EVENTS, OUT_PAYOUTS
from testkit import bank
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings, read_topic
from tests.support import scratch_service_database

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    settings = isolated_settings(
        bank_cutoff_s=2.0,
        bank_poll_s=0.3,
        bank_settle_s=0.2,
        bank_sandbox=True,
        bank_outbox=str(tmp_path / "outbox"),
        bank_inbox=str(tmp_path / "inbox"),
        relay_poll_interval_s=0.1,
    )
    await create_topics(settings)
    try:
        async with scratch_service_database("bank_gateway") as db:
            process = ServiceProcess(
                "services.bank_gateway", settings.model_copy(update=db.settings()), "bank_gateway"
            )
            process.start()
            await process.wait_ready()
            try:
                yield process
            finally:
                process.stop()
    finally:
        await delete_topics(settings)


def outbox_files(settings: Settings) -> list[Path]:
    folder = Path(settings.bank_outbox)
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def filed(settings: Settings) -> Counter[str]:
    """How many files each EndToEndId is in."""
    return Counter(
        t.end_to_end_id for f in outbox_files(settings) for t in bank.read_pain001(f.read_bytes())[1]
    )


async def wait_for(predicate: object, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("condition not met in time")


async def restart(gateway: ServiceProcess) -> None:
    gateway.kill()
    gateway.start()
    await gateway.wait_ready()


async def test_crashes_lose_nothing_and_file_nothing_twice(gateway: ServiceProcess) -> None:
    settings = gateway.settings
    batch_a = [
        bank.payout_released(f"po-a{i}", amount=f"{10 + i}.00", account_ref=f"acct-tok-a{i}")
        for i in range(5)
    ]
    batch_b = [
        bank.payout_released(f"po-b{i}", amount=f"{20 + i}.00", account_ref=f"acct-tok-b{i}")
        for i in range(5)
    ]
    batch_b.append(bank.payout_released("po-fail", amount="5.00", account_ref="acct-tok-x-fail-1"))
    async with Publisher(settings, source="payout_release") as pub:
        for p in batch_a:
            await pub.publish_event(OUT_PAYOUTS, p["payee_id"], "payout.released", p)
        await wait_for(lambda: len(filed(settings)) == 5)
        # Between cut-offs: new payouts arrive, the gateway dies, the old ones are delivered again.
        for p in batch_b:
            await pub.publish_event(OUT_PAYOUTS, p["payee_id"], "payout.released", p)
        await restart(gateway)
        for p in batch_a:
            await pub.publish_event(OUT_PAYOUTS, p["payee_id"], "payout.released", p)
        await wait_for(lambda: len(filed(settings)) == 11)
        await asyncio.sleep(3 * settings.bank_cutoff_s)  # later cut-offs add nothing
    counts = filed(settings)
    assert set(counts) == {end_to_end_id(p["payout_id"]) for p in batch_a + batch_b}  # type: ignore[arg-type]
    assert set(counts.values()) == {1}

    # The bank answers every file; the gateway is killed while it reads them.
    answer_all(settings)
    await asyncio.sleep(0.5)
    await restart(gateway)

    records = await read_topic(
        settings,
        IN_RAIL_EVENTS,
        until=lambda rs: len({r["value"]["event_id"] for r in rs}) >= 11,
        timeout_s=60,
        settle_s=3,
    )
    for r in records:
        assert verify(settings.rail_secret, _raw(r), r["headers"].get(SIGNATURE_HEADER))
    events = {r["value"]["event_id"]: r["value"] for r in records}  # consumers dedupe by event_id
    per_payout = Counter(e["data"]["payout_id"] for e in events.values())
    assert set(per_payout.values()) == {1}, per_payout
    settled = {e["data"]["payout_id"] for e in events.values() if e["event_type"] == "payout.settled"}
    failed = {
        (e["data"]["payout_id"], e["data"]["failure_code"])
        for e in events.values()
        if e["event_type"] == "payout.failed"
    }
    assert failed == {("po-fail", "AC01")}
    assert settled == {p["payout_id"] for p in batch_a + batch_b} - {"po-fail"}
    inbox = Path(settings.bank_inbox)
    await wait_for(lambda: not any(p.is_file() for p in inbox.iterdir()), timeout_s=10)
    assert len(list((inbox / "processed").iterdir())) == 2 * len(outbox_files(settings))


def answer_all(settings: Settings) -> None:
    """The sandbox bank answers every pain.001 in the outbox (AC01 for closed sandbox accounts)."""
    inbox = Path(settings.bank_inbox)
    inbox.mkdir(parents=True, exist_ok=True)
    for f in outbox_files(settings):
        msg_id, report, notification = bank.answer(
            f.read_bytes(), lambda t: is_sandbox_closed(t.creditor_iban)
        )
        (inbox / f"{msg_id}.pain.002.xml").write_bytes(report)
        assert notification is not None
        (inbox / f"{msg_id}.camt.054.xml").write_bytes(notification)


def _raw(record: dict[str, object]) -> bytes:
    """The record's bytes as the relay sent them (pydantic's compact JSON, key order kept)."""
    return json.dumps(record["value"], separators=(",", ":"), ensure_ascii=False).encode()
