"""Files in (SPEC §12.4): pain.002 and camt.054 from CONCORD_BANK_INBOX → signed rail events.

One periodic task, one transaction per look at the folder:
1. a file read on an earlier look (its content hash and name are in `files_in`) is moved now,
   after that look committed: to processed/, or to rejected/ with `<name>.reason.txt` beside it. Moving
   before the commit could leave a file in processed/ whose events were never committed;
2. every new complete file is read, decided whole (domain.apply) and recorded with its events.
A file is complete when its name is not a dotfile or `*.part`/`*.tmp` (a transfer agent's
write-aside-then-rename) and it has not changed for CONCORD_BANK_SETTLE_S (a file written in
place). The same bytes dropped again, or another file with a MsgId already processed, go to
rejected/ (`duplicate_file`, `duplicate_message_id`): nothing is applied twice.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from services.bank_gateway import contract, store
from services.bank_gateway.config import BankConfig
from services.bank_gateway.domain import apply, reports
from services.bank_gateway.domain.reports import BadReport, Refusal
from shared.metrics import BANK_FILES
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

MAX_FILES_PER_LOOK = 50
INCOMPLETE_SUFFIXES = (".part", ".tmp", ".reason.txt")


@dataclass(frozen=True)
class Dropped:
    path: Path
    raw: bytes
    sha256: str


def complete_files(folder: Path, settle_s: float, max_bytes: int) -> list[Dropped]:
    if not folder.is_dir():
        return []
    now = time.time()
    found: list[Dropped] = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(INCOMPLETE_SUFFIXES):
            continue
        if now - path.stat().st_mtime < settle_s:
            continue
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)  # an oversize file is never read whole
        found.append(Dropped(path, raw, hashlib.sha256(raw).hexdigest()))
        if len(found) >= MAX_FILES_PER_LOOK:
            break
    return found


async def read_inbox(uow: UnitOfWork) -> None:
    config: BankConfig = uow.config
    dropped = complete_files(config.inbox, config.settle_s, config.max_file_bytes)
    if not dropped:
        return
    seen = await store.seen_files(uow.conn, [d.sha256 for d in dropped])
    moved: list[str] = []
    new: list[Dropped] = []
    for d in dropped:
        earlier = seen.get(d.sha256)
        if earlier is None:
            if all(n.sha256 != d.sha256 for n in new):
                new.append(d)  # the same bytes twice in one look: the copy waits for the next
        elif earlier.file_name == d.path.name and not earlier.moved:
            _move(config, d.path, earlier.outcome, earlier.reasons)
            moved.append(d.sha256)
        else:
            _move(
                config,
                d.path,
                "rejected",
                f"{Refusal.DUPLICATE_FILE}: identical to {earlier.file_name}, read before;"
                " nothing applied again",
            )
    await store.mark_moved(uow.conn, moved, uow.now)
    reads = await _read_new(uow, new)
    await store.record_reads(uow.conn, reads, uow.now)


async def _read_new(uow: UnitOfWork, new: list[Dropped]) -> list[store.ReadFile]:
    config: BankConfig = uow.config
    reads: list[store.ReadFile] = []
    taken: set[tuple[str, str]] = set()  # (kind, msg id) processed in this look
    for d in new:
        try:
            report = reports.parse(d.raw, config.max_file_bytes)
        except BadReport as exc:
            reads.append(
                store.ReadFile(d.sha256, d.path.name, None, None, "rejected", f"{exc.code}: {exc.message}")
            )
            log.warning("bank_file_rejected", file=d.path.name, reason=str(exc.code))
            continue
        kind = (
            reports.ReportKind.PAIN_002
            if isinstance(report, reports.StatusReport)
            else reports.ReportKind.CAMT_054
        )
        if (kind, report.msg_id) in taken or await store.processed_msg_ids(uow.conn, kind, [report.msg_id]):
            reason = (
                f"{Refusal.DUPLICATE_MESSAGE}: {kind} MsgId {report.msg_id} was already processed;"
                " nothing applied again"
            )
            reads.append(store.ReadFile(d.sha256, d.path.name, kind, report.msg_id, "rejected", reason))
            continue
        decision = apply.decide(report, await _payouts_for(uow, report))
        if not decision.accepted:
            reason = "\n".join(f"{code}: {text}" for code, text in decision.refusals)
            reads.append(store.ReadFile(d.sha256, d.path.name, kind, report.msg_id, "rejected", reason))
            log.warning("bank_file_rejected", file=d.path.name, reason=str(decision.refusals[0][0]))
            continue
        taken.add((kind, report.msg_id))
        for line in decision.lines:
            event = contract.rail_event(line)
            if event is not None:
                contract.emit_signed(uow, event, line.payout_id, line.rail_event_id)
        reads.append(
            store.ReadFile(d.sha256, d.path.name, kind, report.msg_id, "processed", "", tuple(decision.lines))
        )
        log.info(
            "bank_file_read",
            file=d.path.name,
            kind=str(kind),
            msg_id=report.msg_id,
            lines=len(decision.lines),
        )
    return reads


async def _payouts_for(uow: UnitOfWork, report: reports.Report) -> list[apply.KnownPayout]:
    if isinstance(report, reports.StatusReport):
        e2e = [ln.end_to_end_id for ln in report.lines if ln.end_to_end_id]
        uetrs = [ln.uetr for ln in report.lines if ln.uetr]
        originals = [report.original_msg_id]
    else:
        e2e = [t.end_to_end_id for t in report.txs if t.end_to_end_id]
        uetrs = [t.uetr for t in report.txs if t.uetr]
        originals = []
    known = {p.payout_id: p for p in await store.known_payouts(uow.conn, e2e, originals)}
    if uetrs:
        known.update({p.payout_id: p for p in await store.payouts_by_uetr(uow.conn, uetrs)})
    return list(known.values())


def _move(config: BankConfig, path: Path, outcome: str, reasons: str) -> None:
    folder = config.processed if outcome == "processed" else config.rejected
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
    if outcome != "processed":
        reason_file = folder / f"{target.name}.reason.txt"
        reason_file.write_text(reasons + "\n")
    os.replace(path, target)
    BANK_FILES.labels(folder.name).inc()
    log.info("bank_file_moved", file=path.name, to=str(target.relative_to(config.inbox)))
