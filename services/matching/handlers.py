"""What matching consumes (SPEC §6): every input is a step in its PO's history.

A PO version in force, a closure, a receipt, a reversal, an invoice (incl. a corrected one), a
requisition (the owner of fulfilment holds), `invoice.rematch_requested` and
`hold.override_requested` all go to one batch handler: a record's outcome can depend on the
records before it in the batch (an override of the hold an invoice just opened, an invoice and
then its PO), so consecutive inputs of any of these types form one run, replayed in order by
`rematch.run` with one load and one write per batch. `contract.STEPS` maps each event class to
its step; `domain.batch` says what each step does.
"""

from __future__ import annotations

from typing import Any

from services.matching import contract, rematch
from shared.consumer import BatchContext, Item, Router
from shared.topics import (
    IN_COMMANDS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_INVOICE_RESPONSES,
)

router = Router("matching", topics=[INTAKE_DOCUMENTS, IN_COMMANDS])
router.emits(
    MATCHING_DECISIONS,
    "invoice.approved_to_pay",
    "invoice.approval_revoked",
    "invoice.held",
    "invoice.superseded",
)
router.emits(OUT_EXCEPTIONS, "hold.opened", "hold.released", "hold.escalated", "override.refused")
router.emits(OUT_INVOICE_RESPONSES, "invoice_response.issued")


async def on_matching_inputs(ctx: BatchContext, items: list[Item[Any]]) -> None:
    """load → plan → write → emit, for every PO the run touches (rematch.py)."""
    await rematch.run(ctx, items)


# One handler for every input class: the consumer hands consecutive records of any of them over
# as one run (`purchase_order.amendment_pending` is not among them: the previous version stays
# in force, so it is acknowledged as ignored).
for event_class in contract.STEPS:
    router.handles_batch(event_class)(on_matching_inputs)
