"""event_type → payload model, and which event types may appear on which topic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from shared import topics
from shared.contracts import inbound as i
from shared.contracts import internal as n
from shared.contracts import outbound as o
from shared.contracts.common import EventSpec


class UnknownEventType(LookupError):
    """No model for this event_type (SPEC §2: such a record goes to the deadletter topic)."""


EVENT_MODELS: dict[str, type[BaseModel]] = {
    # inbound (SPEC §3)
    "requisition.approved": i.RequisitionApproved,
    "requisition.closed": i.RequisitionClosed,
    "purchase_order.issued": i.PurchaseOrderIssued,
    "purchase_order.amended": i.PurchaseOrderAmended,
    "purchase_order.amendment_approved": i.PurchaseOrderAmendmentApproved,
    "purchase_order.closed": i.PurchaseOrderClosed,
    "receipt.recorded": i.ReceiptRecorded,
    "receipt.reversed": i.ReceiptReversed,
    "invoice.submitted": i.InvoiceSubmitted,
    "invoice.submitted_ubl": i.InvoiceSubmittedUbl,
    "payee.profile_updated": i.PayeeProfileUpdated,
    "funding.received": i.FundingReceived,
    "payout.settled": i.PayoutSettled,
    "payout.failed": i.PayoutFailed,
    "payout.returned": i.PayoutReturned,
    "hold.override_requested": i.HoldOverrideRequested,
    "invoice.rematch_requested": i.InvoiceRematchRequested,
    "payout_run.requested": i.PayoutRunRequested,
    "po_flip.requested": i.PoFlipRequested,
    "deadletter.replay_requested": i.DeadletterReplayRequested,
    "payee.payout_account_confirmed": i.PayeePayoutAccountConfirmed,
    "purchase_order.submitted_ubl": i.PurchaseOrderSubmittedUbl,
    "receipt.recorded_ubl": i.ReceiptRecordedUbl,
    # internal (SPEC §4, ours)
    "requisition.accepted": n.RequisitionAccepted,
    "requisition.closure_accepted": n.RequisitionClosureAccepted,
    "purchase_order.version_in_force": n.PurchaseOrderVersionInForce,
    "purchase_order.amendment_pending": n.PurchaseOrderAmendmentPending,
    "purchase_order.closure_accepted": n.PurchaseOrderClosureAccepted,
    "receipt.accepted": n.ReceiptAccepted,
    "receipt.reversal_accepted": n.ReceiptReversalAccepted,
    "invoice.accepted": n.InvoiceAccepted,
    "invoice.approved_to_pay": n.InvoiceApprovedToPay,
    "invoice.approval_revoked": n.InvoiceApprovalRevoked,
    "invoice.held": n.InvoiceHeld,
    "invoice.superseded": n.InvoiceSuperseded,
    "payee.eligibility_changed": n.PayeeEligibilityChanged,
    "payout.settlement_recorded": n.PayoutSettlementRecorded,
    "payout.failure_recorded": n.PayoutFailureRecorded,
    "payout.return_recorded": n.PayoutReturnRecorded,
    # outbound (SPEC §4)
    "payout.released": o.PayoutReleased,
    "hold.opened": o.HoldOpened,
    "hold.released": o.HoldReleased,
    "hold.escalated": o.HoldEscalated,
    "override.refused": o.OverrideRefused,
    "payout.blocked": o.PayoutBlocked,
    "payout.exception_opened": o.PayoutExceptionOpened,
    "rail_anomaly.opened": o.RailAnomalyOpened,
    "funding.refused": o.FundingRefused,
    "document.rejected": o.DocumentRejected,
    "journal.entry_posted": o.JournalEntryPosted,
    "deadletter.recorded": o.DeadLetter,
    "payout.expedite_requested": i.PayoutExpediteRequested,
    "expedite.refused": o.ExpediteRefused,
    "invoice_response.issued": o.InvoiceResponseIssued,
}

TOPIC_EVENT_TYPES: dict[str, frozenset[str]] = {
    topics.IN_REQUISITIONS.name: frozenset({"requisition.approved", "requisition.closed"}),
    topics.IN_PURCHASE_ORDERS.name: frozenset(
        {
            "purchase_order.issued",
            "purchase_order.amended",
            "purchase_order.amendment_approved",
            "purchase_order.closed",
            "purchase_order.submitted_ubl",
        }
    ),
    topics.IN_RECEIPTS.name: frozenset({"receipt.recorded", "receipt.reversed", "receipt.recorded_ubl"}),
    topics.IN_INVOICES.name: frozenset({"invoice.submitted", "invoice.submitted_ubl"}),
    topics.IN_PAYEES.name: frozenset({"payee.profile_updated"}),
    topics.IN_FUNDING.name: frozenset({"funding.received"}),
    topics.IN_RAIL_EVENTS.name: frozenset({"payout.settled", "payout.failed", "payout.returned"}),
    topics.IN_COMMANDS.name: frozenset(
        {
            "hold.override_requested",
            "invoice.rematch_requested",
            "payout_run.requested",
            "po_flip.requested",
            "deadletter.replay_requested",
            "payout.expedite_requested",
            "payee.payout_account_confirmed",
        }
    ),
    topics.INTAKE_DOCUMENTS.name: frozenset(
        {
            "requisition.accepted",
            "requisition.closure_accepted",
            "purchase_order.version_in_force",
            "purchase_order.amendment_pending",
            "purchase_order.closure_accepted",
            "receipt.accepted",
            "receipt.reversal_accepted",
            "invoice.accepted",
        }
    ),
    topics.MATCHING_DECISIONS.name: frozenset(
        {
            "invoice.approved_to_pay",
            "invoice.approval_revoked",
            "invoice.held",
            "invoice.superseded",
        }
    ),
    topics.COMPLIANCE_ELIGIBILITY.name: frozenset({"payee.eligibility_changed"}),
    topics.PAYOUTS_EVENTS.name: frozenset(
        {"payout.settlement_recorded", "payout.failure_recorded", "payout.return_recorded"}
    ),
    topics.OUT_PAYOUTS.name: frozenset({"payout.released"}),
    topics.OUT_EXCEPTIONS.name: frozenset(
        {
            "hold.opened",
            "hold.released",
            "hold.escalated",
            "override.refused",
            "payout.blocked",
            "payout.exception_opened",
            "rail_anomaly.opened",
            "funding.refused",
            "expedite.refused",
        }
    ),
    topics.OUT_REJECTIONS.name: frozenset({"document.rejected"}),
    topics.OUT_JOURNAL.name: frozenset({"journal.entry_posted"}),
    topics.DEADLETTER.name: frozenset({"deadletter.recorded"}),
    topics.OUT_INVOICE_RESPONSES.name: frozenset({"invoice_response.issued"}),
}


def _name_every_event() -> None:
    """Give every contract class its EventSpec (type and topic); a class used for two event
    types, or a type on no topic or on two, fails at import."""
    topic_of: dict[str, topics.Topic] = {}
    for topic_name, event_types in TOPIC_EVENT_TYPES.items():
        for event_type in event_types:
            if event_type in topic_of:
                raise AssertionError(f"{event_type} is declared on two topics")
            topic_of[event_type] = topics.BY_NAME[topic_name]
    for event_type, model in EVENT_MODELS.items():
        if "EVENT" in model.__dict__:
            raise AssertionError(f"{model.__name__} is the model of two event types")
        model.EVENT = EventSpec(event_type, topic_of[event_type])  # type: ignore[attr-defined]


_name_every_event()


def spec_of(model: type[BaseModel] | BaseModel) -> EventSpec:
    """The event type and topic of a contract class (or of one of its instances)."""
    spec: EventSpec = model.EVENT  # type: ignore[union-attr]
    return spec


def model_for(event_type: str) -> type[BaseModel]:
    """The payload model of `event_type`; raises UnknownEventType."""
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def parse_data(event_type: str, data: Mapping[str, Any]) -> BaseModel:
    """Validate an envelope's `data` against its event type's model.

    Raises UnknownEventType, or pydantic.ValidationError listing every invalid field.
    """
    return model_for(event_type).model_validate(data)


def is_allowed_on(topic: str, event_type: str) -> bool:
    """Whether `event_type` belongs on `topic` (an unknown topic allows nothing)."""
    return event_type in TOPIC_EVENT_TYPES.get(topic, frozenset())
