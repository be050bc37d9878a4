"""Field mapping: `payout.released` → the gateway's payout; decided lines → the rail's signed events."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from pydantic import BaseModel

from services.bank_gateway.domain.apply import Line, RailOutcome
from services.bank_gateway.domain.ids import end_to_end_id, uetr
from services.bank_gateway.domain.pain001 import FiledPayout
from shared.contracts.inbound import PayoutFailed, PayoutReturned, PayoutSettled
from shared.contracts.outbound import PayoutReleased
from shared.envelope import derived_event_id
from shared.signatures import SIGNATURE_HEADER, sign
from shared.unit_of_work import UnitOfWork

UNKNOWN_ACCOUNT = "unknown_account"


def payout_from(event: PayoutReleased) -> FiledPayout:
    return FiledPayout(
        payout_id=event.payout_id,
        payee_id=event.payee_id,
        account_ref=event.payout_account_ref,
        funding_account_id=event.funding_account_id,
        currency=event.currency,
        amount=Decimal(event.amount),
        invoice_ids=tuple(i.invoice_id for i in event.invoices),
        end_to_end_id=end_to_end_id(event.payout_id),
        uetr=uetr(event.payout_id),
    )


def unknown_account(payout_id: str) -> PayoutFailed:
    return PayoutFailed(
        payout_id=payout_id,
        rail_event_id=f"bank:resolve:{payout_id}",
        failure_code=UNKNOWN_ACCOUNT,
        message="the payout account token does not resolve to a bank account",
    )


def rail_event(line: Line) -> BaseModel | None:
    """The event a decided line publishes; None for a status that is only recorded."""
    if line.outcome is RailOutcome.FAILED:
        return PayoutFailed(
            payout_id=line.payout_id,
            rail_event_id=line.rail_event_id,
            failure_code=line.code or "NARR",
            message=line.message,
        )
    if line.outcome is RailOutcome.SETTLED:
        return PayoutSettled(
            payout_id=line.payout_id,
            rail_event_id=line.rail_event_id,
            amount=line.amount,
            currency=line.currency,
            settled_at=f"{line.date}T00:00:00Z",
        )
    if line.outcome is RailOutcome.RETURNED:
        return PayoutReturned(
            payout_id=line.payout_id,
            rail_event_id=line.rail_event_id,
            amount=line.amount,
            currency=line.currency,
            returned_at=f"{line.date}T00:00:00Z",
            reason=" ".join(x for x in (line.code, line.message) if x) or None,
        )
    return None


def emit_signed(uow: UnitOfWork, event: BaseModel, payout_id: str, rail_event_id: str) -> None:
    """Queue a rail event with the rail's concord-signature over the exact bytes the relay publishes
    (SPEC §3); its event id derives from the rail_event_id, so a re-read emits nothing new."""
    spec_type = type(event).EVENT.type  # type: ignore[attr-defined]
    uow.emit_event(event, key=payout_id, event_id=derived_event_id(spec_type, rail_event_id))
    message = uow.outbox[-1]
    uow.outbox[-1] = replace(
        message,
        headers={**message.headers, SIGNATURE_HEADER: sign(uow.settings.rail_secret, message.value())},
    )
