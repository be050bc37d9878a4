"""Payout release's Invoice Responses (SPEC §12.3): `PD` when the payout that pays an invoice
settles. Payout release is the service that learns of settlement and knows each payout's
invoices; the ledger sees the same facts but only keeps the books and publishes nothing outward.

The response names the supplier's own invoice number, which only intake's `invoice.accepted`
carries, so payout release keeps it (`invoice_references`) from `concord.intake.documents`, which
it reads already. Either arrival order converges: a settlement issues `PD` for each invoice whose
reference is known, and a reference that arrives after its payout settled issues it then. The
response is derived from (payout, invoice): both paths, and any replay, issue the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from services.payout_release.domain.rail import Payout
from shared import invoice_response as ir
from shared.consumer import BatchContext, Item
from shared.contracts.internal import InvoiceAccepted
from shared.envelope import derived_event_id


class Result(StrEnum):
    REFERENCE_KEPT = "reference_kept"
    REFERENCE_KEPT_PAID = "reference_kept_paid"  # its payout had settled already: PD issued now


async def on_invoice_accepted(ctx: BatchContext, items: list[Item[InvoiceAccepted]]) -> None:
    refs = {
        i.data.invoice_id: ir.InvoiceRef(
            i.data.invoice_id,
            i.data.supplier_invoice_number,
            i.data.payee_id,
            i.data.legal_entity,
            i.data.document_type,
        )
        for i in items
    }
    # a known reference was answered then: the settled payouts of the new references
    settled = await save_references(ctx.conn, list(refs.values()))
    for item in items:
        invoice_id = item.data.invoice_id
        item.business_ref = f"invoice_id={invoice_id}"
        payout_id = settled.pop(invoice_id, None)  # popped: a second record of it issues nothing
        item.outcome = Result.REFERENCE_KEPT if payout_id is None else Result.REFERENCE_KEPT_PAID
        if payout_id is not None:
            _emit(ctx, item, refs[invoice_id], payout_id, ctx.now)


async def on_settled(ctx: BatchContext, settled: Sequence[tuple[Item[Any], Payout]]) -> None:
    """`PD` for every invoice of each payout that settled in this batch."""
    if not settled:
        return
    refs = await references(ctx.conn, sorted({i for _, p in settled for i in p.invoice_ids}))
    for item, payout in settled:
        for invoice_id in payout.invoice_ids:
            if invoice_id in refs:
                _emit(ctx, item, refs[invoice_id], payout.payout_id, ctx.now)


def _emit(ctx: BatchContext, item: Item[Any], ref: ir.InvoiceRef, payout_id: str, at: datetime) -> None:
    response = ir.issue(ref, ir.Status.PAID, f"payout:{payout_id}", at)
    event_id = derived_event_id("invoice_response.issued", response.response_id)
    ctx.emit_for(item, response, key=ref.invoice_id, event_id=event_id)


# --- SQL --------------------------------------------------------------------------------------


async def save_references(conn: asyncpg.Connection, refs: Sequence[ir.InvoiceRef]) -> dict[str, str]:
    """Keep the references; for those that were new, the settled payout that paid the invoice
    before its reference came (invoice_id → payout_id). One statement: the payouts read are not
    the table written, so the insert's snapshot is the one the lookup needs."""
    rows = await conn.fetch(
        """WITH new AS (
               INSERT INTO invoice_references
                      (invoice_id, supplier_invoice_number, payee_id, legal_entity, document_type)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
               ON CONFLICT (invoice_id) DO NOTHING
               RETURNING invoice_id
           )
           SELECT pi.invoice_id, pi.payout_id
             FROM new
             JOIN payout_invoices pi ON pi.invoice_id = new.invoice_id AND pi.live
             JOIN payouts p ON p.payout_id = pi.payout_id AND p.status = 'settled'""",
        [r.invoice_id for r in refs],
        [r.supplier_invoice_number for r in refs],
        [r.payee_id for r in refs],
        [r.legal_entity for r in refs],
        [r.document_type for r in refs],
    )
    return {r["invoice_id"]: r["payout_id"] for r in rows}


async def references(conn: asyncpg.Connection, invoice_ids: Sequence[str]) -> dict[str, ir.InvoiceRef]:
    rows = await conn.fetch(
        """SELECT invoice_id, supplier_invoice_number, payee_id, legal_entity, document_type
             FROM invoice_references WHERE invoice_id = ANY($1::text[])""",
        list(invoice_ids),
    )
    return {
        r["invoice_id"]: ir.InvoiceRef(
            r["invoice_id"],
            r["supplier_invoice_number"],
            r["payee_id"],
            r["legal_entity"],
            r["document_type"],
        )
        for r in rows
    }
