"""bank_gateway's entry point: `payout.released` on concord.out.payouts, a batch at a time (SPEC §12.4).

translate (contract) → check each account token resolves (config's book; nothing resolved is kept)
→ insert the new payouts once (a payout redelivered is in one file, ever) → answer an unresolvable
token at once with a signed `payout.failed` (`unknown_account`). The cut-off (cutoff.py) files them.
"""

from __future__ import annotations

from enum import StrEnum

import structlog

from services.bank_gateway import contract, store
from services.bank_gateway.config import BankConfig
from shared.consumer import BatchContext, Item, Router
from shared.contracts.inbound import PayoutFailed, PayoutReturned, PayoutSettled
from shared.contracts.outbound import PayoutReleased
from shared.contracts.registry import spec_of
from shared.topics import IN_RAIL_EVENTS, OUT_PAYOUTS

log = structlog.get_logger(__name__)

router = Router("bank_gateway", topics=[OUT_PAYOUTS])
router.emits(IN_RAIL_EVENTS, *(spec_of(m).type for m in (PayoutSettled, PayoutFailed, PayoutReturned)))


class Received(StrEnum):
    QUEUED = "queued"  # waits for the next cut-off
    UNKNOWN_ACCOUNT = "unknown_account"  # answered payout.failed at once, in no file
    ALREADY_KNOWN = "already_known"  # the same payout delivered again: nothing changes


@router.handles_batch(PayoutReleased)
async def on_payout_released(ctx: BatchContext, items: list[Item[PayoutReleased]]) -> None:
    config: BankConfig = ctx.config
    payouts = [contract.payout_from(item.data) for item in items]
    rows = [
        store.NewPayout(
            p,
            item.envelope.event_id,
            "pending" if config.book.resolvable(p.account_ref, p.payee_id) else "failed",
        )
        for item, p in zip(items, payouts, strict=True)
    ]
    inserted = await store.add_payouts(ctx.conn, rows, ctx.now)
    for item, row in zip(items, rows, strict=True):
        p = row.payout
        if p.payout_id not in inserted:
            item.outcome = Received.ALREADY_KNOWN
            continue
        inserted.discard(p.payout_id)  # the same payout twice in one batch: the first one counts
        if row.state == "failed":
            item.outcome = Received.UNKNOWN_ACCOUNT
            failed = contract.unknown_account(p.payout_id)
            contract.emit_signed(ctx.on_behalf_of(item), failed, p.payout_id, failed.rail_event_id)
        else:
            item.outcome = Received.QUEUED
        item.business_ref = p.payout_id
        log.info("payout_received", payout_id=p.payout_id, payee_id=p.payee_id, outcome=str(item.outcome))
