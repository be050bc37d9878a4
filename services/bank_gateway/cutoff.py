"""Files out (SPEC §12.4): record at the cut-off, then write — so a payout is in exactly one file, ever.

Two periodic tasks, each one transaction under its own advisory lock:
- `cut_off` (every CONCORD_BANK_CUTOFF_S): the pending payouts are assigned to a new file (MsgId,
  PmtInfId) and the file is recorded — the database decides membership before any byte exists;
- `write_files` (every CONCORD_BANK_POLL_S): each recorded, unwritten file is rendered from the
  database (creditors resolved from the vault now, never stored), written aside as a dotfile,
  fsynced, renamed into the outbox, the folder fsynced, and only then marked written.
A crash after the rename and before the mark writes the same file again: the same MsgId, name and
bytes (everything in it comes from the database), so the folder still holds one file per MsgId.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from services.bank_gateway import contract, store
from services.bank_gateway.config import BankConfig
from services.bank_gateway.domain import pain001
from shared.metrics import BANK_FILES
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


def msg_id(number: int, created_at_day: str) -> str:
    return f"CONCORD-{created_at_day}-{number:08d}"


async def cut_off(uow: UnitOfWork) -> None:
    pending = await store.lock_pending(uow.conn)
    if not pending:
        return
    now = uow.now.replace(microsecond=0)
    number = await store.next_file_number(uow.conn)
    plan = pain001.plan_file(msg_id(number, now.strftime("%Y%m%d")), now, pending)
    await store.record_file(uow.conn, plan)
    log.info("bank_file_recorded", msg_id=plan.msg_id, payouts=plan.nb_of_txs, ctrl_sum=str(plan.ctrl_sum))


async def write_files(uow: UnitOfWork) -> None:
    config: BankConfig = uow.config
    files = await store.lock_unwritten(uow.conn)
    written: list[str] = []
    for f in files:
        plan = pain001.plan_file(f.msg_id, f.created_at, f.payouts)
        try:
            data = pain001.render(
                plan, config.book.debtor, lambda p: config.book.creditor(p.account_ref, p.payee_id)
            )
        except pain001.UnresolvedAccount as exc:
            # Only if the book changed since the payout was accepted: the whole file is dropped, its
            # payouts answered unknown_account (none of them reached the bank).
            log.error("bank_file_unwritable", msg_id=f.msg_id, error=str(exc))
            await store.fail_unwritable(uow.conn, f.msg_id)
            for p in f.payouts:
                failed = contract.unknown_account(p.payout_id)
                contract.emit_signed(uow, failed, p.payout_id, failed.rail_event_id)
            continue
        write_atomically(config.outbox, plan.file_name, data)
        BANK_FILES.labels("outbox").inc()
        written.append(f.msg_id)
        log.info("bank_file_written", msg_id=f.msg_id, file=plan.file_name, payouts=plan.nb_of_txs)
    await store.mark_written(uow.conn, written, uow.now)


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """Written aside (a dotfile a transfer agent ignores), fsynced, renamed, the folder fsynced."""
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder / f".{name}.part"
    target = folder / name
    with open(aside, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(aside, target)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return target
