"""Every concord.* topic (SPEC §3–4), with its partition count and what its records are keyed by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    partitions: int
    signed_by: str | None = None  # "rail" or "ops": records carry a concord-signature header


IN_REQUISITIONS = Topic("concord.in.requisitions", "requisition_id", 3)
IN_PURCHASE_ORDERS = Topic("concord.in.purchase-orders", "po_number", 6)
IN_RECEIPTS = Topic("concord.in.receipts", "po_number", 6)
IN_INVOICES = Topic("concord.in.invoices", "payee_id", 6)
IN_PAYEES = Topic("concord.in.payees", "payee_id", 3)
IN_FUNDING = Topic("concord.in.funding", "account_id", 3)
IN_RAIL_EVENTS = Topic("concord.in.rail-events", "payout_id", 3, signed_by="rail")
IN_COMMANDS = Topic("concord.in.commands", "subject id", 3, signed_by="ops")

INTAKE_DOCUMENTS = Topic("concord.intake.documents", "po_number (else document id)", 6)
MATCHING_DECISIONS = Topic("concord.matching.decisions", "invoice_id", 6)
COMPLIANCE_ELIGIBILITY = Topic("concord.compliance.eligibility", "payee_id", 3)
PAYOUTS_EVENTS = Topic("concord.payouts.events", "payout_id", 3)

OUT_PAYOUTS = Topic("concord.out.payouts", "payee_id", 3)
OUT_EXCEPTIONS = Topic("concord.out.exceptions", "invoice_id", 3)
OUT_REJECTIONS = Topic("concord.out.rejections", "rejected record's key", 3)
OUT_JOURNAL = Topic("concord.out.journal", "entry_id", 3)
# SPEC §12.3: in the ACL matrix of §11 already; created (added to ALL_TOPICS) with its first event.
OUT_INVOICE_RESPONSES = Topic("concord.out.invoice-responses", "invoice_id", 3)
DEADLETTER = Topic("concord.deadletter", "origin key", 1)

ALL_TOPICS: tuple[Topic, ...] = (
    IN_REQUISITIONS,
    IN_PURCHASE_ORDERS,
    IN_RECEIPTS,
    IN_INVOICES,
    IN_PAYEES,
    IN_FUNDING,
    IN_RAIL_EVENTS,
    IN_COMMANDS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    COMPLIANCE_ELIGIBILITY,
    PAYOUTS_EVENTS,
    OUT_PAYOUTS,
    OUT_EXCEPTIONS,
    OUT_REJECTIONS,
    OUT_JOURNAL,
    DEADLETTER,
)

BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
