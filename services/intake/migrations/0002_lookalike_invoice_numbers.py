"""Recompute the duplicate key of every stored supplier invoice number (SPEC §15 "Text").

The key gained the look-alike folding and the UTS #39 skeleton, so an invoice accepted before
must be found under its new key, or a look-alike re-send of it would be paid twice. Two stored
invoices of one payee and document type whose numbers now share a key (`INV-1` and `INV-I`):
the one accepted first keeps the number; both stay accepted (nothing is undone), and any new
look-alike is refused as a duplicate of the holder.
"""

from __future__ import annotations

import asyncpg

from services.intake.domain import normalise_invoice_number


async def apply(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT invoice_id, supplier_invoice_number, normalised_number FROM invoices ORDER BY accepted_at"
    )
    changed = [
        (r["invoice_id"], key)
        for r in rows
        if (key := normalise_invoice_number(r["supplier_invoice_number"])) != r["normalised_number"]
    ]
    if changed:
        await conn.executemany("UPDATE invoices SET normalised_number = $2 WHERE invoice_id = $1", changed)
    # The registry: each number row follows its holder's new key; the earliest holder wins a tie.
    holders = await conn.fetch(
        """SELECT n.payee_id, n.document_type, n.invoice_id, i.normalised_number
             FROM invoice_numbers n JOIN invoices i USING (invoice_id)
            ORDER BY i.accepted_at, n.invoice_id"""
    )
    await conn.execute("DELETE FROM invoice_numbers")
    await conn.executemany(
        """INSERT INTO invoice_numbers (payee_id, normalised_number, document_type, invoice_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        [(h["payee_id"], h["normalised_number"], h["document_type"], h["invoice_id"]) for h in holders],
    )
