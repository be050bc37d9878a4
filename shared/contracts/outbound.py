"""Outbound contract v1 (SPEC §4): the `data` of what Concord publishes for others.

We produce these, so unknown fields are forbidden (a typo in a producer fails loudly).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import Field, StrictInt, model_validator

from shared.contracts.common import (
    CurrencyCode,
    DateStr,
    DecimalStr,
    NonEmptyStr,
    OutboundModel,
    Timestamp,
)

# --- concord.out.payouts -----------------------------------------------------------------


class PayoutInvoice(OutboundModel):
    invoice_id: NonEmptyStr
    amount: DecimalStr  # negative for a credit note netted into the payout
    # SPEC §13.5: the early-payment discount taken; amount + discount = the invoice's payable amount
    discount: DecimalStr | None = None


class PayoutExpedite(OutboundModel):
    """The urgent payout (SPEC §13.2) a payout.released pays."""

    expedite_id: NonEmptyStr
    approved_by: NonEmptyStr
    justification: NonEmptyStr


class PayoutReleased(OutboundModel):
    """`payout.released` — rails use `idempotency_key` (= payout_id) as their own key."""

    payout_id: NonEmptyStr
    idempotency_key: NonEmptyStr
    run_id: NonEmptyStr
    payee_id: NonEmptyStr
    payout_account_ref: str | None = None
    legal_entity: NonEmptyStr
    funding_account_id: NonEmptyStr
    currency: CurrencyCode
    amount: DecimalStr
    invoices: list[PayoutInvoice] = Field(min_length=1)
    released_at: Timestamp
    expedite: PayoutExpedite | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PayoutReleased:
        if self.idempotency_key != self.payout_id:
            raise ValueError("idempotency_key must equal payout_id")
        if self.amount <= 0:
            raise ValueError("amount must be positive")
        total = sum((i.amount for i in self.invoices), Decimal(0))
        if total != self.amount:
            raise ValueError(f"amount {self.amount} != sum of invoice amounts {total}")
        return self


# --- concord.out.exceptions --------------------------------------------------------------


class HoldNotice(OutboundModel):
    """Common shape of hold.opened / hold.released / hold.escalated. `po_number` is absent
    for a no-PO invoice. A payout failure/return exception for treasury is not a hold notice:
    it is `payout.exception_opened` (below), one per payout."""

    hold_id: NonEmptyStr
    invoice_id: NonEmptyStr
    po_number: NonEmptyStr | None = None
    line_id: NonEmptyStr | None = None
    reason: NonEmptyStr = Field(
        description="The failed check (SPEC §6 table), e.g. price_mismatch, missing_receipt. From SPEC §15: "
        "tax_review (tax_total above the policy's max_tax_rate of the net lines; soft review, queue ap) "
        "and replaces_settled_invoice (a correction of an invoice already approved to pay; hard fail, "
        "queue ap: send a credit note). A positive line-level allowance_charge_amount beyond the PO's "
        "`other` allowance is an unexpected_charge."
    )
    queue: NonEmptyStr
    owner: NonEmptyStr
    opened_at: Timestamp
    due_by: Timestamp
    evidence_required: list[NonEmptyStr] = Field(default_factory=list)
    next_action: NonEmptyStr


class HoldOpened(HoldNotice):
    """`hold.opened` — `lapsed_override_id` (SPEC §13.4): the hold reopens a check an accepted
    override released, because the check now fails on other facts than the override approved."""

    lapsed_override_id: NonEmptyStr | None = None


class HoldEscalated(HoldNotice):
    """`hold.escalated` — still open after `due_by` (sent once)."""

    escalated_at: Timestamp | None = None


class HoldReleased(HoldNotice):
    """`hold.released` — `override_id` and `approved_by` are required when by override."""

    released_by: Literal["rematch", "override", "correction"]
    released_at: Timestamp
    releasing_event_id: NonEmptyStr
    override_id: NonEmptyStr | None = None
    approved_by: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _override_fields(self) -> HoldReleased:
        if self.released_by == "override" and (self.override_id is None or self.approved_by is None):
            raise ValueError("a release by override names override_id and approved_by")
        return self


class OverrideRefused(OutboundModel):
    """`override.refused` — every reason the override was refused."""

    override_id: NonEmptyStr
    invoice_id: NonEmptyStr
    reasons: list[NonEmptyStr] = Field(
        min_length=1,
        description="invoice_unknown, invoice_superseded, approver_is_requester (compared "
        "case-insensitively), evidence_missing, no_open_holds, no_hold_reasons (an empty hold_reasons "
        "list, SPEC §15), hold_not_open:<reason>, not_overridable:<reason>, approver_lacks_role:<queue>",
    )


class PayoutBlocked(OutboundModel):
    """`payout.blocked` — a candidate not released in a run, with every reason code."""

    invoice_id: NonEmptyStr
    payee_id: NonEmptyStr
    run_id: NonEmptyStr
    reasons: list[NonEmptyStr] = Field(min_length=1)
    not_before: DateStr | None = None  # with `not_due` (SPEC §13.5): the first day a run releases it


class PayoutExceptionOpened(OutboundModel):
    """`payout.exception_opened` — a released payout failed or was returned by the rail; its
    invoices are payable again and treasury works the exception (SPEC §8). One per payout,
    keyed by the payout's first invoice_id."""

    payout_id: NonEmptyStr
    invoice_ids: list[NonEmptyStr] = Field(min_length=1)
    payee_id: NonEmptyStr
    reason: Literal["payout_failed", "payout_returned"]
    queue: Literal["treasury"] = "treasury"
    opened_at: Timestamp
    detail: str | None = None  # the rail's failure code / return reason


RailAnomalyWhat = Literal[
    "unknown_payout", "amount_mismatch", "currency_mismatch", "status_conflict", "rail_event_id_reused"
]


class RailAnomalyOpened(OutboundModel):
    """`rail_anomaly.opened` — a rail event Concord did not apply, for treasury (SPEC §15):

    - `unknown_payout`: no payout has this id (`got` says what the rail reported);
    - `currency_mismatch` / `amount_mismatch`: a settlement or return in another currency or of
      another amount than the payout (`expected` and `got` are "amount currency"); a short
      settlement is not a settlement, so the payout stays in transit;
    - `status_conflict`: the event does not fit the payout's state, e.g. a failure after
      settlement (`expected` = the state it applies to, `got` = the payout's state);
    - `rail_event_id_reused`: a `rail_event_id` seen before with a different body (`expected` =
      the first, which stands; `got` = this one).

    Keyed by the payout's first invoice_id, or by payout_id when no payout is known.
    """

    payout_id: NonEmptyStr | None = None
    rail_event_id: NonEmptyStr
    what: RailAnomalyWhat
    expected: str | None = None
    got: str | None = None
    event_type: Literal["payout.settled", "payout.failed", "payout.returned"]
    invoice_ids: list[NonEmptyStr] = Field(default_factory=list)
    queue: Literal["treasury"] = "treasury"
    opened_at: Timestamp


class FundingRefused(OutboundModel):
    """`funding.refused` — a `funding.received` that payout_release did not credit, for treasury:
    `funding_account_mismatch` when the account already funds another legal entity or currency
    (an account funds one of each, SPEC §10; `expected` / `got` are "legal_entity currency").
    The ledger applies the same rule and posts nothing for it. Keyed by account_id. (A funding
    that is not positive or not in an ISO 4217 currency never gets here: it is deadlettered
    `invalid_funding` by both services.)"""

    funding_id: NonEmptyStr
    account_id: NonEmptyStr
    legal_entity: NonEmptyStr
    currency: CurrencyCode
    amount: DecimalStr
    reasons: list[Literal["funding_account_mismatch"]] = Field(min_length=1)
    expected: NonEmptyStr
    got: NonEmptyStr
    queue: Literal["treasury"] = "treasury"
    refused_at: Timestamp


# --- concord.out.rejections --------------------------------------------------------------


class RejectionReason(OutboundModel):
    code: NonEmptyStr = Field(
        description="A SPEC code, e.g. sod_violation, duplicate_invoice, total_mismatch. From SPEC §15: "
        "invalid_characters (an identifier with control, format or whitespace characters, or text with "
        "control characters other than tab and newline), invalid_prepaid_amount (negative or above the "
        "total), invalid_rounding_amount (one major unit or more either way), negative_tax_total, "
        "amount_out_of_range (any amount, or quantity × unit price, above the policy's max_amount)."
    )
    field: str | None = None  # dotted path, e.g. "lines.2.unit_price"
    message: NonEmptyStr


class DocumentRejected(OutboundModel):
    """`document.rejected` — every reason found, not just the first."""

    rejected_event_id: NonEmptyStr
    event_type: NonEmptyStr
    reasons: list[RejectionReason] = Field(min_length=1)


# --- concord.out.journal -----------------------------------------------------------------


class JournalLine(OutboundModel):
    """Exactly one of debit/credit, non-negative."""

    account: NonEmptyStr
    currency: CurrencyCode
    debit: DecimalStr | None = None
    credit: DecimalStr | None = None

    @model_validator(mode="after")
    def _one_side(self) -> JournalLine:
        if (self.debit is None) == (self.credit is None):
            raise ValueError("a journal line has exactly one of debit or credit")
        value = self.debit if self.debit is not None else self.credit
        if value is not None and value < 0:
            raise ValueError("debit/credit must not be negative (use the other side)")
        return self


class JournalApproval(OutboundModel):
    by: NonEmptyStr
    role: NonEmptyStr | None = None
    at: Timestamp | None = None
    what: NonEmptyStr


class JournalLinks(OutboundModel):
    po_number: NonEmptyStr | None = None
    po_version: StrictInt | None = None
    invoice_ids: list[NonEmptyStr] = Field(default_factory=list)
    receipt_ids: list[NonEmptyStr] = Field(default_factory=list)
    payout_id: NonEmptyStr | None = None
    override_ids: list[NonEmptyStr] = Field(default_factory=list)
    approvals: list[JournalApproval] = Field(default_factory=list)
    expedite_id: NonEmptyStr | None = None  # SPEC §13.2: on a release that paid an expedite


class JournalEntryPosted(OutboundModel):
    """`journal.entry_posted` — balances to zero per currency (checked here)."""

    entry_id: NonEmptyStr
    source_event_id: NonEmptyStr
    source_event_type: NonEmptyStr
    posted_at: Timestamp
    description: NonEmptyStr
    lines: list[JournalLine] = Field(min_length=2)
    links: JournalLinks = Field(default_factory=JournalLinks)

    @model_validator(mode="after")
    def _balanced(self) -> JournalEntryPosted:
        net: dict[str, Decimal] = defaultdict(Decimal)
        for line in self.lines:
            net[line.currency] += line.debit if line.debit is not None else Decimal(0)
            net[line.currency] -= line.credit if line.credit is not None else Decimal(0)
        unbalanced = {c: v for c, v in net.items() if v != 0}
        if unbalanced:
            raise ValueError(f"entry does not balance per currency: {unbalanced}")
        return self


# --- concord.deadletter ------------------------------------------------------------------


class DeadLetterOrigin(OutboundModel):
    topic: NonEmptyStr
    partition: StrictInt = Field(ge=0)
    offset: StrictInt = Field(ge=0)
    # The key as text: bytes that are not UTF-8 shown as U+FFFD (reason undecodable_key), a NUL
    # as the six characters \u0000 (PostgreSQL text cannot hold it); None for a null key.
    key: str | None = None


class DeadletterReason(StrEnum):
    """Why a record went to `concord.deadletter` (SPEC §2, §3, §15)."""

    UNDECODABLE_KEY = "undecodable_key"  # the Kafka key is not UTF-8
    UNDECODABLE_HEADER = "undecodable_header"  # a header value is not UTF-8
    BAD_SIGNATURE = "bad_signature"  # concord-signature missing or wrong (rail events, commands)
    INVALID_ENVELOPE = "invalid_envelope"  # not UTF-8 JSON, not an object, or not a v1 envelope
    DUPLICATE_JSON_KEY = "duplicate_json_key"  # an object in the value repeats a key
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"  # unknown, or not one of its topic's
    KEY_MISMATCH = "key_mismatch"  # the Kafka key is not the payload's key field
    INVALID_DATA = "invalid_data"  # an internal event whose data breaks its model
    EVENT_ID_CONFLICT = "event_id_conflict"  # an event_id seen before with a different payload
    HANDLER_FAILED = "handler_failed"  # failed handler_max_attempts times, each in its own savepoint
    # On an internal topic: the `concord-event-type` header names another type than the envelope
    EVENT_TYPE_HEADER_MISMATCH = "event_type_header_mismatch"


class DeadLetter(OutboundModel):
    """A record that could not be processed: raw value (base64), error, origin, headers.
    `reason` is the code, `error` the detail; `replay_id` is set when the record failed again
    when run on a `deadletter.replay_requested`."""

    origin: DeadLetterOrigin
    reason: DeadletterReason | None = None
    error: NonEmptyStr
    replay_id: str | None = None
    value_base64: str  # "" for a null/empty value
    headers: dict[str, str] = Field(default_factory=dict)


class ExpediteRefused(OutboundModel):
    """`expedite.refused` (SPEC §13.2) — every reason an urgent payout was not released."""

    expedite_id: NonEmptyStr
    invoice_id: NonEmptyStr
    reasons: list[NonEmptyStr] = Field(
        min_length=1,
        description="self_approval, approver_not_treasury, invoice_unknown, already_released, and the "
        "SPEC §8 block codes that apply (a held invoice: not_approved and each open hold's reason)",
    )


# --- concord.out.invoice-responses (SPEC §12.3) -------------------------------------------


class InvoiceResponseReason(OutboundModel):
    code: NonEmptyStr = Field(description="Peppol OPStatusReason code, e.g. REF, PRI, QTY, DEL, ITM, OTH")
    action: NonEmptyStr = Field(description="Peppol OPStatusAction code, e.g. NOA, PIN, NIN, CNA, CNP")
    concord: NonEmptyStr = Field(description="Concord's own code: a rejection reason or a hold reason")
    text: NonEmptyStr


class InvoiceResponseIssued(OutboundModel):
    """`invoice_response.issued` — one per change of the status the supplier sees (SPEC §12.3):
    AB accepted by intake, RE rejected, UQ under query (a hold opened or its reasons changed), AP
    approved to pay, PD the payout that pays it settled. `document` is the Peppol BIS Invoice
    Response 3 (UBL 2.1 ApplicationResponse); null when a party id is not `<schemeID>:<value>`.
    `response_id` is derived from the causing event: a redelivery publishes nothing new.
    Identity fields are null only for a rejected document Concord could not read."""

    response_id: NonEmptyStr
    invoice_id: NonEmptyStr
    supplier_invoice_number: NonEmptyStr | None = None
    payee_id: NonEmptyStr | None = None
    legal_entity: NonEmptyStr | None = None
    document_type: Literal["invoice", "credit_note"] = "invoice"
    status: Literal["AB", "RE", "UQ", "AP", "PD"]
    reasons: list[InvoiceResponseReason] = Field(default_factory=list)
    issued_at: Timestamp
    document: str | None = None

    @model_validator(mode="after")
    def _reasons_when_asked(self) -> InvoiceResponseIssued:
        if self.status in ("RE", "UQ") and not self.reasons:
            raise ValueError(f"a {self.status} response carries at least one reason")
        return self
