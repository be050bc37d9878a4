"""`concord bank answer`: the local sandbox bank of SPEC §12.4.

It takes every pain.001 the gateway left in CONCORD_BANK_OUTBOX (moving it to `.cache/bank/sent/`,
as a transfer agent would) and drops its answer into CONCORD_BANK_INBOX, written aside and renamed
so the gateway never reads half a file: a pain.002.001.10 (ACCP, or RJCT `AC01` for an account the
sandbox bank has closed: the test IBANs of `-fail-` tokens) and a camt.054.001.08 booking every
accepted transaction, batch-booked per payment information.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from services.bank_gateway.config import resolve_path
from services.bank_gateway.domain.accounts import is_sandbox_closed
from shared.settings import Settings
from testkit import bank


@dataclass(frozen=True)
class Answered:
    file: str
    msg_id: str
    accepted: int
    rejected: int
    end_to_end_ids: tuple[str, ...] = ()


def _drop(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder / f".{name}.part"
    aside.write_bytes(data)
    os.replace(aside, folder / name)


def answer_outbox(settings: Settings) -> list[Answered]:
    outbox = resolve_path(settings.bank_outbox)
    inbox = resolve_path(settings.bank_inbox)
    sent = outbox.parent / "sent"
    sent.mkdir(parents=True, exist_ok=True)
    done: list[Answered] = []
    if not outbox.is_dir():
        return done
    for path in sorted(p for p in outbox.iterdir() if p.is_file() and not p.name.startswith(".")):
        raw = path.read_bytes()
        msg_id, txs = bank.read_pain001(raw)
        rejected = sum(1 for t in txs if is_sandbox_closed(t.creditor_iban))
        _, report, notification = bank.answer(raw, lambda t: is_sandbox_closed(t.creditor_iban))
        _drop(inbox, f"{msg_id}.pain.002.xml", report)
        if notification is not None:
            _drop(inbox, f"{msg_id}.camt.054.xml", notification)
        os.replace(path, sent / path.name)
        e2e = tuple(t.end_to_end_id for t in txs)
        done.append(Answered(path.name, msg_id, len(txs) - rejected, rejected, e2e))
    return done


def gateway_ready(timeout_s: float = 2.0) -> bool:
    """Whether the local stack's bank_gateway answers /health/ready (deploy/services.sh: the sixth
    health port from CONCORD_HEALTH_PORT_BASE)."""
    import urllib.request

    port = int(os.environ.get("CONCORD_HEALTH_PORT_BASE", "8081")) + 5
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=timeout_s) as r:
            return bool(r.status == 200)
    except OSError:
        return False
