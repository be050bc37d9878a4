"""Policy (SPEC §6): hold reasons, queues and actions; tolerances; the per (business unit,
category) rules, most specific wins; what it takes to clear each hold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# --- hold reasons (SPEC §6 table, plus the header-level identity and intake flags) ----------
AWAITING_PO = "awaiting_po"
PO_NOT_IN_FORCE = "po_not_in_force"
INVALID_PO_LINE_REF = "invalid_po_line_ref"
DUPLICATE_LINE_MAPPING = "duplicate_line_mapping"
PRICE_MISMATCH = "price_mismatch"
QTY_OVER_ORDERED = "qty_over_ordered"
MISSING_RECEIPT = "missing_receipt"
QTY_OVER_RECEIVED = "qty_over_received"
UNEXPECTED_CHARGE = "unexpected_charge"
HEADER_TOTAL_MISMATCH = "header_total_mismatch"
PAYEE_MISMATCH = "payee_mismatch"
ENTITY_MISMATCH = "entity_mismatch"
CURRENCY_MISMATCH = "currency_mismatch"
SUSPECTED_DUPLICATE = "suspected_duplicate"
NO_PO_REVIEW = "no_po_review"
TAX_REVIEW = "tax_review"
REPLACES_SETTLED_INVOICE = "replaces_settled_invoice"

HARD_FAIL: Final = "hard_fail"
SOFT_REVIEW: Final = "soft_review"
HOLD: Final = "hold"
Action = Literal["hard_fail", "soft_review", "hold"]

AP, OPS, PROCUREMENT, NO_PO_QUEUE = "ap", "ops", "procurement", "no_po_review"
QUEUES = (AP, OPS, PROCUREMENT, NO_PO_QUEUE)

# Mismatch types whose tolerance and action the policy file sets (SPEC §6 "per mismatch type").
TOLERATED = (PRICE_MISMATCH, QTY_OVER_ORDERED, QTY_OVER_RECEIVED, UNEXPECTED_CHARGE, HEADER_TOTAL_MISMATCH)

# Reasons whose action is fixed by the SPEC, not by policy: (queue, action).
FIXED_REASONS: dict[str, tuple[str, Action]] = {
    AWAITING_PO: (AP, HOLD),
    PO_NOT_IN_FORCE: (PROCUREMENT, HOLD),
    INVALID_PO_LINE_REF: (AP, HARD_FAIL),
    DUPLICATE_LINE_MAPPING: (AP, HARD_FAIL),
    MISSING_RECEIPT: (OPS, HOLD),
    PAYEE_MISMATCH: (AP, HARD_FAIL),
    ENTITY_MISMATCH: (AP, HARD_FAIL),
    CURRENCY_MISMATCH: (AP, HARD_FAIL),
    SUSPECTED_DUPLICATE: (AP, SOFT_REVIEW),
    NO_PO_REVIEW: (NO_PO_QUEUE, SOFT_REVIEW),
    # SPEC §15: tax above the policy's max_tax_rate of the net lines is looked at before payment.
    TAX_REVIEW: (AP, SOFT_REVIEW),
    # SPEC §15: a correction of an invoice that was approved to pay (and so may be paid or in a
    # payout) is refused: a credit note is the way to correct it. No override can release it.
    REPLACES_SETTLED_INVOICE: (AP, HARD_FAIL),
}
TOLERATED_QUEUES: dict[str, str] = {
    PRICE_MISMATCH: AP,
    QTY_OVER_ORDERED: AP,
    QTY_OVER_RECEIVED: OPS,
    UNEXPECTED_CHARGE: AP,
    HEADER_TOTAL_MISMATCH: AP,
}
ALL_REASONS = tuple(FIXED_REASONS) + TOLERATED
# Fulfilment holds belong to the person who asked for the goods, not to AP (SPEC §6 issue text).
REQUESTER_OWNED = frozenset({MISSING_RECEIPT, QTY_OVER_RECEIVED})

TWO_WAY, THREE_WAY, NO_PO = "two_way", "three_way", "no_po"
ANY_RECEIPT = "any"
RECEIPT_KINDS = ("goods_receipt", "service_completion")

# --- policy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """How far a value may stray: within `percent` of the reference OR within `amount` (money in
    the invoice currency) passes; with neither set the values must agree exactly."""

    percent: Decimal | None = None
    amount: Decimal | None = None

    def allows(self, excess: Decimal, reference: Decimal, excess_money: Decimal) -> bool:
        if excess <= 0:
            return True
        if self.percent is not None and excess * HUNDRED <= abs(reference) * self.percent:
            return True
        return self.amount is not None and excess_money <= self.amount


EXACT = Band()


@dataclass(frozen=True)
class Tolerance:
    """`over` bounds a value above its reference; `under` (price only) below it."""

    over: Band = EXACT
    under: Band | None = None  # None: an invoice price below the PO's uses the `over` band too

    @property
    def lower(self) -> Band:
        return self.under if self.under is not None else self.over


@dataclass(frozen=True)
class LinePolicy:
    mode: str  # two_way | three_way
    receipt_kind: str  # any | goods_receipt | service_completion: which receipts count
    tolerances: Mapping[str, Tolerance]
    actions: Mapping[str, Action]

    def tolerance(self, reason: str) -> Tolerance:
        return self.tolerances.get(reason, Tolerance())

    def action(self, reason: str) -> Action:
        return self.actions.get(reason, SOFT_REVIEW)


@dataclass(frozen=True)
class Rule:
    """A policy override for one (business_unit, category); "*" matches any."""

    business_unit: str
    category: str
    mode: str | None = None
    receipt_kind: str | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    actions: Mapping[str, Action] = field(default_factory=dict)

    def matches(self, business_unit: str, category: str | None) -> bool:
        return self.business_unit in ("*", business_unit) and (
            self.category == "*" or (category is not None and self.category == category)
        )

    @property
    def specificity(self) -> int:
        # Most specific wins (SPEC §6): a business unit outranks a category, both outrank neither.
        return (2 if self.business_unit != "*" else 0) + (1 if self.category != "*" else 0)


@dataclass(frozen=True)
class HoldText:
    evidence_required: tuple[str, ...]
    next_action: str


@dataclass(frozen=True)
class Policy:
    default: LinePolicy
    rules: tuple[Rule, ...] = ()
    queue_owners: Mapping[str, str] = field(default_factory=dict)
    hold_texts: Mapping[str, HoldText] = field(default_factory=dict)
    # SPEC §15: tax above this percentage of the net lines opens a `tax_review` (soft review).
    max_tax_rate: Decimal = Decimal(30)

    def for_line(self, business_unit: str, category: str | None) -> LinePolicy:
        """The default, then every matching rule from least to most specific, knob by knob."""
        result = self.default
        for rule in sorted(
            (r for r in self.rules if r.matches(business_unit, category)), key=lambda r: r.specificity
        ):
            result = LinePolicy(
                mode=rule.mode or result.mode,
                receipt_kind=rule.receipt_kind or result.receipt_kind,
                tolerances={**result.tolerances, **rule.tolerances},
                actions={**result.actions, **rule.actions},
            )
        return result

    def owner(self, reason: str, queue: str, requester: str | None) -> str:
        if reason in REQUESTER_OWNED and requester:
            return requester
        return self.queue_owners.get(queue, f"{queue}-queue")

    def text(self, reason: str) -> HoldText:
        return self.hold_texts.get(reason, DEFAULT_HOLD_TEXTS[reason])


# What it takes to clear each hold (the article's operator table, seeds/002).
DEFAULT_HOLD_TEXTS: dict[str, HoldText] = {
    AWAITING_PO: HoldText(
        ("purchase order issued and approved",), "wait for the PO; rematch runs on arrival"
    ),
    PO_NOT_IN_FORCE: HoldText(
        ("approved PO amendment extending the dates or reopening the PO",),
        "procurement amends the PO or the supplier corrects the invoice date",
    ),
    INVALID_PO_LINE_REF: HoldText(
        ("corrected invoice with a valid PO line id",), "request a corrected invoice"
    ),
    DUPLICATE_LINE_MAPPING: HoldText(
        ("supplier confirmation plus corrected invoice", "or documented duplicate rejection"),
        "request a corrected invoice",
    ),
    PRICE_MISMATCH: HoldText(
        ("approved PO change", "or documented price exception"),
        "review the price; amend the PO or override with evidence",
    ),
    QTY_OVER_ORDERED: HoldText(
        ("approved PO amendment raising the quantity", "or supplier credit note"),
        "amend the PO or request a credit note",
    ),
    MISSING_RECEIPT: HoldText(
        ("receiving document tied to the same PO line",), "record the receipt or service completion"
    ),
    QTY_OVER_RECEIVED: HoldText(
        ("corrected GRN or other receiving record",),
        "record the missing receipt quantity or request a credit",
    ),
    UNEXPECTED_CHARGE: HoldText(
        ("PO amendment allowing the charge", "or supplier credit note"), "review the charge"
    ),
    HEADER_TOTAL_MISMATCH: HoldText(
        ("recalculated invoice", "or supplier credit note"), "request a recalculated invoice"
    ),
    PAYEE_MISMATCH: HoldText(
        ("corrected invoice from the PO's payee",), "reject and request a corrected invoice"
    ),
    ENTITY_MISMATCH: HoldText(("corrected invoice to the PO's legal entity",), "request a corrected invoice"),
    CURRENCY_MISMATCH: HoldText(("corrected invoice in the PO currency",), "request a corrected invoice"),
    SUSPECTED_DUPLICATE: HoldText(
        ("supplier confirmation", "or rejection note", "or corrected invoice record"),
        "compare with the suspected original and confirm or reject",
    ),
    NO_PO_REVIEW: HoldText(("approval of the no-PO spend",), "review the no-PO invoice"),
    TAX_REVIEW: HoldText(
        ("tax calculation or tax authority ruling supporting the rate",),
        "check the tax against the net lines; override with evidence or request a corrected invoice",
    ),
    REPLACES_SETTLED_INVOICE: HoldText(
        ("supplier credit note for the settled invoice",),
        "the replaced invoice was already approved to pay: ask the supplier for a credit note",
    ),
}


def overridable(reason: str, action: str) -> bool:
    """A hard fail needs a correction (or a PO change and rematch), and an invoice waiting for its
    PO has nothing to be approved against: neither is released by an override."""
    return action != HARD_FAIL and reason != AWAITING_PO
