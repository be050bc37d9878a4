"""bank_gateway's SQL, in one place. Tokens and identifiers only: never a resolved bank detail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.bank_gateway.domain.apply import KnownPayout, Line
from services.bank_gateway.domain.pain001 import FiledPayout, FilePlan


@dataclass(frozen=True)
class NewPayout:
    payout: FiledPayout
    event_id: str
    state: str  # pending | failed


async def add_payouts(conn: asyncpg.Connection, rows: Sequence[NewPayout], now: datetime) -> set[str]:
    """Insert the payouts not known yet; returns the ids inserted (a payout is filed once, ever)."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        """INSERT INTO payouts (payout_id, end_to_end_id, uetr, payee_id, account_ref, funding_account_id,
                                currency, amount, invoice_ids, received_event_id, received_at, state)
           SELECT u.payout_id, u.e2e, u.uetr, u.payee, u.ref, u.funding, u.currency, u.amount,
                  string_to_array(u.inv, chr(31)), u.ev, $12::timestamptz, u.s
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::numeric[], $9::text[], $10::text[], $11::text[])
                  AS u(payout_id, e2e, uetr, payee, ref, funding, currency, amount, inv, ev, s)
           ON CONFLICT (payout_id) DO NOTHING
           RETURNING payout_id""",
        [r.payout.payout_id for r in rows],
        [r.payout.end_to_end_id for r in rows],
        [r.payout.uetr for r in rows],
        [r.payout.payee_id for r in rows],
        [r.payout.account_ref for r in rows],
        [r.payout.funding_account_id for r in rows],
        [r.payout.currency for r in rows],
        [r.payout.amount for r in rows],
        ["\x1f".join(r.payout.invoice_ids) for r in rows],
        [r.event_id for r in rows],
        [r.state for r in rows],
        now,
    )
    return {r["payout_id"] for r in inserted}


def _filed(r: asyncpg.Record) -> FiledPayout:
    return FiledPayout(
        payout_id=r["payout_id"],
        payee_id=r["payee_id"],
        account_ref=r["account_ref"],
        funding_account_id=r["funding_account_id"],
        currency=r["currency"],
        amount=r["amount"],
        invoice_ids=tuple(r["invoice_ids"]),
        end_to_end_id=r["end_to_end_id"],
        uetr=r["uetr"],
    )


async def lock_pending(conn: asyncpg.Connection) -> list[FiledPayout]:
    rows = await conn.fetch(
        "SELECT * FROM payouts WHERE state = 'pending' ORDER BY payout_id FOR UPDATE SKIP LOCKED"
    )
    return [_filed(r) for r in rows]


async def next_file_number(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT nextval('file_seq')"))


async def record_file(conn: asyncpg.Connection, plan: FilePlan) -> None:
    """The cut-off's decision, before any byte is written: which payouts are in which file."""
    await conn.execute(
        """INSERT INTO files_out (msg_id, created_at, file_name, nb_of_txs, ctrl_sum)
           VALUES ($1, $2, $3, $4, $5)""",
        plan.msg_id,
        plan.created_at,
        plan.file_name,
        plan.nb_of_txs,
        plan.ctrl_sum,
    )
    ids = [p.payout_id for g in plan.groups for p in g.payouts]
    groups = [g.pmt_inf_id for g in plan.groups for _ in g.payouts]
    await conn.execute(
        """UPDATE payouts SET state = 'filed', file_msg_id = $1, pmt_inf_id = x.pmt
             FROM unnest($2::text[], $3::text[]) AS x(id, pmt)
            WHERE payouts.payout_id = x.id AND payouts.state = 'pending'""",
        plan.msg_id,
        ids,
        groups,
    )


@dataclass(frozen=True)
class UnwrittenFile:
    msg_id: str
    created_at: datetime
    payouts: list[FiledPayout]


async def lock_unwritten(conn: asyncpg.Connection) -> list[UnwrittenFile]:
    files = await conn.fetch(
        """SELECT msg_id, created_at FROM files_out WHERE written_at IS NULL
            ORDER BY created_at FOR UPDATE SKIP LOCKED"""
    )
    if not files:
        return []
    rows = await conn.fetch(
        "SELECT * FROM payouts WHERE file_msg_id = ANY($1::text[]) ORDER BY payout_id",
        [f["msg_id"] for f in files],
    )
    return [
        UnwrittenFile(
            f["msg_id"], f["created_at"], [_filed(r) for r in rows if r["file_msg_id"] == f["msg_id"]]
        )
        for f in files
    ]


async def mark_written(conn: asyncpg.Connection, msg_ids: Sequence[str], now: datetime) -> None:
    await conn.execute(
        "UPDATE files_out SET written_at = $2 WHERE msg_id = ANY($1::text[])", list(msg_ids), now
    )


async def fail_unwritable(conn: asyncpg.Connection, msg_id: str) -> None:
    """A file that cannot be written (an account stopped resolving) is dropped whole: its payouts fail."""
    await conn.execute("UPDATE payouts SET state = 'failed' WHERE file_msg_id = $1", msg_id)
    await conn.execute("DELETE FROM files_out WHERE msg_id = $1", msg_id)


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenFile:
    sha256: str
    file_name: str
    outcome: str
    reasons: str
    moved: bool


async def seen_files(conn: asyncpg.Connection, hashes: Sequence[str]) -> dict[str, SeenFile]:
    rows = await conn.fetch(
        """SELECT sha256, file_name, outcome, reasons, moved_at IS NOT NULL AS moved
             FROM files_in WHERE sha256 = ANY($1::text[])""",
        list(hashes),
    )
    return {
        r["sha256"]: SeenFile(r["sha256"], r["file_name"], r["outcome"], r["reasons"], r["moved"])
        for r in rows
    }


async def processed_msg_ids(conn: asyncpg.Connection, kind: str, msg_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT msg_id FROM files_in WHERE outcome = 'processed' AND kind = $1 AND msg_id = ANY($2::text[])",
        kind,
        list(msg_ids),
    )
    return {r["msg_id"] for r in rows}


async def mark_moved(conn: asyncpg.Connection, hashes: Sequence[str], now: datetime) -> None:
    if hashes:
        await conn.execute(
            "UPDATE files_in SET moved_at = $2 WHERE sha256 = ANY($1::text[])", list(hashes), now
        )


_KNOWN = "SELECT payout_id, end_to_end_id, uetr, amount, currency, file_msg_id, pmt_inf_id FROM payouts"


def _known(rows: Sequence[asyncpg.Record]) -> list[KnownPayout]:
    return [
        KnownPayout(
            r["payout_id"],
            r["end_to_end_id"],
            r["uetr"],
            r["amount"],
            r["currency"],
            r["file_msg_id"],
            r["pmt_inf_id"],
        )
        for r in rows
    ]


async def known_payouts(
    conn: asyncpg.Connection, e2e_ids: Sequence[str], file_msg_ids: Sequence[str]
) -> list[KnownPayout]:
    rows = await conn.fetch(
        f"{_KNOWN} WHERE end_to_end_id = ANY($1::text[]) OR file_msg_id = ANY($2::text[])",
        list(e2e_ids),
        list(file_msg_ids),
    )
    return _known(rows)


async def payouts_by_uetr(conn: asyncpg.Connection, uetrs: Sequence[str]) -> list[KnownPayout]:
    return _known(await conn.fetch(f"{_KNOWN} WHERE uetr = ANY($1::text[])", list(uetrs)))


@dataclass(frozen=True)
class ReadFile:
    sha256: str
    file_name: str
    kind: str | None
    msg_id: str | None
    outcome: str
    reasons: str
    lines: tuple[Line, ...] = ()


async def record_reads(conn: asyncpg.Connection, reads: Sequence[ReadFile], now: datetime) -> None:
    if not reads:
        return
    await conn.execute(
        """INSERT INTO files_in (sha256, file_name, kind, msg_id, outcome, reasons, read_at)
           SELECT *, $7::timestamptz
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
           ON CONFLICT (sha256) DO NOTHING""",
        [r.sha256 for r in reads],
        [r.file_name for r in reads],
        [r.kind for r in reads],
        [r.msg_id for r in reads],
        [r.outcome for r in reads],
        [r.reasons for r in reads],
        now,
    )
    lines = [(r.sha256, ln) for r in reads for ln in r.lines]
    if lines:
        await conn.execute(
            """INSERT INTO statuses (rail_event_id, payout_id, file_sha256, outcome, status, code, read_at)
               SELECT *, $7::timestamptz
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
               ON CONFLICT (rail_event_id) DO NOTHING""",
            [ln.rail_event_id for _, ln in lines],
            [ln.payout_id for _, ln in lines],
            [sha for sha, _ in lines],
            [str(ln.outcome) for _, ln in lines],
            [ln.status for _, ln in lines],
            [ln.code for _, ln in lines],
            now,
        )
