"""`concord trace` of a paid invoice whose stored text is hostile (SPEC §15 "Operators"): the
real CLI process against a ledger database filled by the ledger's own handlers. It used to die
with a rich MarkupError on an override justification and to print an invoice id's terminal
escape sequences raw."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.ledger.handlers import router
from shared.consumer import RawRecord
from shared.db import create_pool
from shared.topics import BY_NAME
from tests.integration.ledger import flow
from tests.support import ROOT, deliver, record, scratch_database

pytestmark = pytest.mark.integration

INVOICE = "INV-\x1b[2J\x1b[31mPAID\x1b]0;pwned\x07"
JUSTIFICATION = "agreed [/bold] by phone [red]really[/red] :warning: \x1b[1A\x1b[2Kall clear"


def rewritten(rec: RawRecord, change: Any) -> RawRecord:
    """The same record with its data changed, re-enveloped as its producer would have sent it."""
    envelope = json.loads(rec.value)
    data = envelope["data"]
    change(data)
    topic = BY_NAME[rec.topic]
    return record(topic, envelope["event_type"], data, key=rec.key.decode())


def hostile_flow() -> list[RawRecord]:
    def approval(data: dict[str, Any]) -> None:
        data["overrides"][0]["justification"] = JUSTIFICATION
        data["overrides"][0]["evidence"] = ["[link=file:///etc/passwd]mail[/link]"]

    return [
        flow.funding(),
        flow.po_in_force(),
        flow.receipt(),
        flow.invoice_accepted(INVOICE),
        flow.held(INVOICE),
        rewritten(flow.approved(INVOICE), approval),
        flow.released(invoice_id=INVOICE),
        flow.rail("payout.settlement_recorded"),
    ]


@pytest.fixture
async def ledger_dsn() -> AsyncIterator[str]:
    async with scratch_database("ledger") as dsn:
        pool = await create_pool(dsn, max_size=2)
        try:
            for rec in hostile_flow():
                await deliver(pool, router, rec)
        finally:
            await pool.close()
        yield dsn


async def concord(dsn: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "CONCORD_LEDGER_DB_DSN": dsn, "COLUMNS": "400"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_trace_of_a_paid_invoice_with_hostile_text_renders_it_escaped(ledger_dsn: str) -> None:
    code, out, err = await concord(ledger_dsn, "trace", INVOICE)
    assert (code, err) == (0, "")
    assert "\x1b" not in out and "\x07" not in out
    assert "trace of invoice INV-\\x1b[2J\\x1b[31mPAID\\x1b]0;pwned\\x07" in out
    assert "agreed [/bold] by phone [red]really[/red] :warning: \\x1b[1A\\x1b[2Kall clear" in out
    assert "[link=file:///etc/passwd]mail[/link]" in out
    assert "PAY-1" in out and "settled 244.80" in out  # the whole trace, not a torso


async def test_a_trace_reference_that_is_markup_is_answered_not_crashed_on(ledger_dsn: str) -> None:
    code, out, err = await concord(ledger_dsn, "trace", "[/bold]\x1b[31m")
    assert (code, err) == (1, "")
    assert out.startswith("nothing in the ledger answers to '[/bold]\\x1b[31m'")
