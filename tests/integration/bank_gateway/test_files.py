"""bank_gateway on real PostgreSQL (SPEC §12.4): payouts in → one pain.001 per cut-off, each payout
in exactly one file; the bank's pain.002 / camt.054 in → signed rail events, applied whole or not
at all; every bad file in rejected/ with its reason; nothing applied twice."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from lxml import etree

from services.bank_gateway.config import BankConfig
from services.bank_gateway.cutoff import cut_off, write_files
from services.bank_gateway.domain.accounts import AccountBook, is_sandbox_closed
from services.bank_gateway.domain.ids import end_to_end_id, uetr
from services.bank_gateway.handlers import router
from services.bank_gateway.inbox import read_inbox
from shared.outbox import OutboxMessage, write_outbox
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, verify
from shared.topics import OUT_PAYOUTS
from shared.unit_of_work import UnitOfWork
from testkit import bank
from tests.support import deliver, emitted, record, scratch_pool

pytestmark = pytest.mark.integration

XSD = Path(__file__).resolve().parents[2] / "fixtures" / "iso20022" / "xsd" / "pain.001.001.09.xsd"
SETTINGS = Settings(service="bank_gateway")


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("bank_gateway") as p:
        yield p


@pytest.fixture
def config(tmp_path: Path) -> BankConfig:
    return BankConfig(
        book=AccountBook(debtors={}, vault={}, sandbox=True),
        outbox=tmp_path / "outbox",
        inbox=tmp_path / "inbox",
        max_file_bytes=64 * 1024,
        settle_s=0.0,
    )


async def run(
    pool: asyncpg.Pool, config: BankConfig, fn: Callable[[UnitOfWork], Awaitable[None]]
) -> list[dict[str, Any]]:
    """One periodic task in its own transaction, as Service.run_unit_of_work runs it."""
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(conn, SETTINGS, "bank_gateway", config=config)
        await fn(uow)
        await write_outbox(conn, uow.outbox)
    _assert_signed(uow.outbox)
    return [json.loads(m.value()) for m in uow.outbox]


def _assert_signed(messages: list[OutboxMessage]) -> None:
    for m in messages:
        assert verify(SETTINGS.rail_secret, m.value(), m.headers.get(SIGNATURE_HEADER)), m.envelope.event_type


async def release(pool: asyncpg.Pool, config: BankConfig, *payouts: dict[str, Any]) -> list[dict[str, Any]]:
    result = await deliver(
        pool, router, *(record(OUT_PAYOUTS, "payout.released", p) for p in payouts), config=config
    )
    _assert_signed(result.outbox)
    return emitted(result)


async def file_out(pool: asyncpg.Pool, config: BankConfig) -> list[Path]:
    await run(pool, config, cut_off)
    await run(pool, config, write_files)
    return sorted(p for p in config.outbox.iterdir() if not p.name.startswith("."))


def drop(config: BankConfig, name: str, data: bytes) -> Path:
    config.inbox.mkdir(parents=True, exist_ok=True)
    path = config.inbox / name
    path.write_bytes(data)
    return path


async def read_twice(pool: asyncpg.Pool, config: BankConfig) -> list[dict[str, Any]]:
    """Read the inbox, then look again (files move after the reading transaction commits)."""
    events = await run(pool, config, read_inbox)
    assert await run(pool, config, read_inbox) == []
    return events


def by_type(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["event_type"], []).append(e["data"])
    return out


def reason_of(config: BankConfig, name: str) -> str:
    assert not (config.inbox / name).exists() and not (config.processed / name).exists()
    return (config.rejected / f"{name}.reason.txt").read_text()


async def test_round_trip_through_files(pool: asyncpg.Pool, config: BankConfig) -> None:
    answered = await release(
        pool,
        config,
        bank.payout_released("po-1", amount="100.00", account_ref="acct-tok-p1"),
        bank.payout_released("po-2", amount="25.50", account_ref="acct-tok-p2-fail-x", payee_id="payee-2"),
        bank.payout_released(
            "po-3", amount="10.00", currency="USD", funding_account_id="va-usd-1", account_ref="acct-tok-p3"
        ),
        bank.payout_released("po-4", account_ref="tok-nobody-knows"),
    )
    # An unresolvable token is answered at once and is in no file.
    assert [(e["event_type"], e["data"]["payout_id"], e["data"]["failure_code"]) for e in answered] == [
        ("payout.failed", "po-4", "unknown_account")
    ]
    (path,) = await file_out(pool, config)
    raw = path.read_bytes()
    etree.XMLSchema(etree.parse(str(XSD))).assertValid(etree.fromstring(raw))
    msg_id, txs = bank.read_pain001(raw)
    assert sorted(t.end_to_end_id for t in txs) == sorted(end_to_end_id(p) for p in ("po-1", "po-2", "po-3"))
    assert b"tok-nobody-knows" not in raw and b"acct-tok" not in raw  # tokens stay home, IBANs go out

    _, report, notification = bank.answer(
        raw, lambda t: is_sandbox_closed(t.creditor_iban), booking_date="2026-12-01"
    )
    assert notification is not None
    drop(config, "status.xml", report)
    drop(config, "booked.xml", notification)
    events = by_type(await read_twice(pool, config))
    assert [(d["payout_id"], d["failure_code"]) for d in events["payout.failed"]] == [("po-2", "AC01")]
    assert sorted(
        (d["payout_id"], d["amount"], d["currency"], d["settled_at"]) for d in events["payout.settled"]
    ) == [
        ("po-1", "100.00", "EUR", "2026-12-01T00:00:00Z"),
        ("po-3", "10.00", "USD", "2026-12-01T00:00:00Z"),
    ]
    assert sorted(p.name for p in config.processed.iterdir()) == ["booked.xml", "status.xml"]

    # Dropped twice: rejected with its reason, nothing published again.
    drop(config, "status-again.xml", report)
    assert await read_twice(pool, config) == []
    assert reason_of(config, "status-again.xml").startswith("duplicate_file")

    # Dropped twice at once: one is read, the other refused.
    twice = bank.pain002("STS-TWICE", msg_id, payments=[])
    drop(config, "twice-1.xml", twice)
    drop(config, "twice-2.xml", twice)
    await run(pool, config, read_inbox)
    await run(pool, config, read_inbox)
    assert await run(pool, config, read_inbox) == []
    assert (config.processed / "twice-1.xml").exists()
    assert reason_of(config, "twice-2.xml").startswith("duplicate_file")

    # Returned after settlement: a booked credit with return information.
    returned = bank.camt054(
        "NTF-RET-1",
        [
            bank.Entry(
                "100.00",
                "EUR",
                "CRDT",
                [
                    bank.Detail(
                        end_to_end_id("po-1"), "100.00", "EUR", uetr("po-1"), "AC06", "Blocked account"
                    )
                ],
            )
        ],
    )
    drop(config, "return.xml", returned)
    (ret,) = by_type(await read_twice(pool, config))["payout.returned"]
    assert (ret["payout_id"], ret["amount"], ret["reason"]) == ("po-1", "100.00", "AC06 Blocked account")


async def test_a_payout_is_in_exactly_one_file_however_often_it_is_delivered(
    pool: asyncpg.Pool, config: BankConfig
) -> None:
    p = bank.payout_released("po-1")
    await release(pool, config, p, p)
    first = await file_out(pool, config)
    await release(pool, config, p)  # redelivered after its file was written
    assert await file_out(pool, config) == first  # the next cut-off writes nothing
    assert len(first) == 1


async def test_a_crash_between_writing_and_recording_rewrites_the_same_file(
    pool: asyncpg.Pool, config: BankConfig
) -> None:
    await release(pool, config, bank.payout_released("po-1"), bank.payout_released("po-2"))
    await run(pool, config, cut_off)

    class Crash(Exception):
        pass

    async def write_then_crash(uow: UnitOfWork) -> None:
        await write_files(uow)
        raise Crash  # the process dies after the rename, before the commit

    with pytest.raises(Crash):
        await run(pool, config, write_then_crash)
    (path,) = list(config.outbox.iterdir())
    before = path.read_bytes()
    os.utime(path, (0, 0))
    await run(pool, config, write_files)  # after the restart
    (again,) = [p for p in config.outbox.iterdir() if not p.name.startswith(".")]
    assert again == path and again.read_bytes() == before
    await run(pool, config, cut_off)
    await run(pool, config, write_files)
    assert len(list(config.outbox.iterdir())) == 1


async def test_bad_files_go_to_rejected_with_a_specific_reason_and_apply_nothing(
    pool: asyncpg.Pool, config: BankConfig
) -> None:
    await release(pool, config, bank.payout_released("po-1", amount="100.00"))
    (path,) = await file_out(pool, config)
    msg_id, _ = bank.read_pain001(path.read_bytes())
    e2e = end_to_end_id("po-1")
    files = {
        "malformed.xml": (b"<Document><oops>", "malformed_xml"),
        "xxe.xml": (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>',
            "dtd_or_entity",
        ),
        "oversize.xml": (b"<Document>" + b" " * (64 * 1024) + b"</Document>", "oversize"),
        "unknown-payout.xml": (
            bank.pain002(
                "STS-X",
                msg_id,
                payments=[bank.PmtStatus(f"{msg_id}-1", txs=[bank.TxStatus("CNCNOTOURS", "RJCT", "AC01")])],
            ),
            "unknown_payout",
        ),
        "unknown-file.xml": (
            bank.pain002("STS-Y", "NEVER-SENT", group_status="RJCT", group_reason="FF01"),
            "unknown_original_message",
        ),
        "short.xml": (
            bank.camt054("NTF-X", [bank.Entry("99.00", "EUR", "DBIT", [bank.Detail(e2e, "99.00", "EUR")])]),
            "amount_mismatch",
        ),
    }
    for name, (data, _) in files.items():
        drop(config, name, data)
    # Half-written: a transfer agent's aside file is never read; neither is a file still changing.
    drop(config, ".incoming.xml.part", b"<Document")
    assert await read_twice(pool, config) == []
    for name, (_, code) in files.items():
        assert reason_of(config, name).startswith(code), name
    assert (config.inbox / ".incoming.xml.part").exists()

    slow = BankConfig(config.book, config.outbox, config.inbox, config.max_file_bytes, settle_s=60.0)
    drop(config, "being-written.xml", b"<Document")
    assert await run(pool, slow, read_inbox) == []
    assert (config.inbox / "being-written.xml").exists()
    (config.inbox / "being-written.xml").unlink()

    # The payout is still settleable: the refused files applied nothing.
    drop(
        config,
        "booked.xml",
        bank.camt054("NTF-OK", [bank.Entry("100.00", "EUR", "DBIT", [bank.Detail(e2e, "100.00", "EUR")])]),
    )
    (settled,) = by_type(await run(pool, config, read_inbox))["payout.settled"]
    assert settled["payout_id"] == "po-1"


async def test_another_file_with_a_processed_message_id_is_refused(
    pool: asyncpg.Pool, config: BankConfig
) -> None:
    await release(pool, config, bank.payout_released("po-1", amount="100.00"))
    await file_out(pool, config)
    e2e = end_to_end_id("po-1")
    drop(
        config,
        "a.xml",
        bank.camt054("NTF-1", [bank.Entry("100.00", "EUR", "DBIT", [bank.Detail(e2e, "100.00", "EUR")])]),
    )
    assert len(await read_twice(pool, config)) == 1
    # Same MsgId, other bytes (another booking date): a re-sent message, not a new one.
    drop(
        config,
        "b.xml",
        bank.camt054(
            "NTF-1",
            [
                bank.Entry(
                    "100.00", "EUR", "DBIT", [bank.Detail(e2e, "100.00", "EUR")], booking_date="2020-01-01"
                )
            ],
        ),
    )
    assert await read_twice(pool, config) == []
    assert reason_of(config, "b.xml").startswith("duplicate_message_id")
