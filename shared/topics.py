"""Every concord.* topic (SPEC §3–4), with its partition count and what its records are keyed by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    partitions: int
    signed_by: str | None = None  # "rail" or "ops": records carry a concord-signature header
    # The payload fields a record's Kafka key must equal (SPEC §15 `key_mismatch`): the first of
    # them present in `data` as a string — or, on a topic keyed by "the subject id" (commands),
    # any one of them present. A record with none of them (a UBL invoice: its payee is inside the
    # XML) is not checked; a present field of the wrong type is left to the payload's validation.
    key_fields: tuple[str, ...] = ()
    key_is_any_of: bool = False
    # The outbox relay sends this topic's rows of a batch first and awaits their acks before the
    # rest, so nothing a later step causes from them can reach a reader ahead of them (SPEC §12.3:
    # the Invoice Responses a supplier reads keep their causal order).
    sent_first: bool = False

    def allowed_keys(self, data: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The keys a record with this payload may carry here; None when it cannot be checked."""
        present = tuple(v for f in self.key_fields if isinstance(v := data.get(f), str) and v)
        if not present:
            return None
        return present if self.key_is_any_of else present[:1]


IN_REQUISITIONS = Topic("concord.in.requisitions", "requisition_id", 3, key_fields=("requisition_id",))
IN_PURCHASE_ORDERS = Topic("concord.in.purchase-orders", "po_number", 6, key_fields=("po_number",))
IN_RECEIPTS = Topic("concord.in.receipts", "po_number", 6, key_fields=("po_number",))
IN_INVOICES = Topic("concord.in.invoices", "payee_id", 6, key_fields=("payee_id",))
IN_PAYEES = Topic("concord.in.payees", "payee_id", 3, key_fields=("payee_id",))
IN_FUNDING = Topic("concord.in.funding", "account_id", 3, key_fields=("account_id",))
IN_RAIL_EVENTS = Topic("concord.in.rail-events", "payout_id", 3, signed_by="rail", key_fields=("payout_id",))
IN_COMMANDS = Topic(
    "concord.in.commands",
    "subject id",
    3,
    signed_by="ops",
    key_fields=("invoice_id", "run_id", "po_number", "flip_id", "override_id", "replay_id", "payee_id"),
    key_is_any_of=True,
)

INTAKE_DOCUMENTS = Topic(
    "concord.intake.documents",
    "po_number (else document id)",
    6,
    key_fields=("po_number", "invoice_id", "requisition_id"),
)
MATCHING_DECISIONS = Topic("concord.matching.decisions", "invoice_id", 6, key_fields=("invoice_id",))
COMPLIANCE_ELIGIBILITY = Topic("concord.compliance.eligibility", "payee_id", 3, key_fields=("payee_id",))
PAYOUTS_EVENTS = Topic("concord.payouts.events", "payout_id", 3, key_fields=("payout_id",))

OUT_PAYOUTS = Topic("concord.out.payouts", "payee_id", 3, key_fields=("payee_id",))
OUT_EXCEPTIONS = Topic("concord.out.exceptions", "invoice_id", 3)
OUT_REJECTIONS = Topic("concord.out.rejections", "rejected record's key", 3)
OUT_JOURNAL = Topic("concord.out.journal", "entry_id", 3)
# SPEC §12.3: `invoice_response.issued` from intake, matching and payout_release.
OUT_INVOICE_RESPONSES = Topic(
    "concord.out.invoice-responses", "invoice_id", 3, key_fields=("invoice_id",), sent_first=True
)
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
    OUT_INVOICE_RESPONSES,
)

BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}

# The internal topics (SPEC §4: written by Concord's own services only, by the ACLs of SPEC §11).
# Their records carry a `concord-event-type` header (shared.envelope.EVENT_TYPE_HEADER) set from
# the envelope by the producing unit of work, so a consumer can acknowledge a type it does not
# handle without decoding the record (shared.consumer.BatchProcessor).
INTERNAL_TOPICS: frozenset[str] = frozenset(
    t.name for t in (INTAKE_DOCUMENTS, MATCHING_DECISIONS, COMPLIANCE_ELIGIBILITY, PAYOUTS_EVENTS)
)
