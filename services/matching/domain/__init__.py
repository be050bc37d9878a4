"""Matching, pure (SPEC §6): policy, line checks, holds, overrides (`rules`) and the batch
plan (`batch`). No I/O, no async, no SQL. `rules` says what one PO's documents come to;
`batch` replays a batch's records over them, step by step, and says what to write and publish."""

from services.matching.domain.rules import (
    ALL_REASONS as ALL_REASONS,
)
from services.matching.domain.rules import (
    ANY_RECEIPT as ANY_RECEIPT,
)
from services.matching.domain.rules import (
    AP as AP,
)
from services.matching.domain.rules import (
    AWAITING_PO as AWAITING_PO,
)
from services.matching.domain.rules import (
    CURRENCY_MISMATCH as CURRENCY_MISMATCH,
)
from services.matching.domain.rules import (
    DEFAULT_HOLD_TEXTS as DEFAULT_HOLD_TEXTS,
)
from services.matching.domain.rules import (
    DUPLICATE_LINE_MAPPING as DUPLICATE_LINE_MAPPING,
)
from services.matching.domain.rules import (
    ENTITY_MISMATCH as ENTITY_MISMATCH,
)
from services.matching.domain.rules import (
    EXACT as EXACT,
)
from services.matching.domain.rules import (
    FIXED_REASONS as FIXED_REASONS,
)
from services.matching.domain.rules import (
    HARD_FAIL as HARD_FAIL,
)
from services.matching.domain.rules import (
    HEADER_TOTAL_MISMATCH as HEADER_TOTAL_MISMATCH,
)
from services.matching.domain.rules import (
    HOLD as HOLD,
)
from services.matching.domain.rules import (
    HUNDRED as HUNDRED,
)
from services.matching.domain.rules import (
    INVALID_PO_LINE_REF as INVALID_PO_LINE_REF,
)
from services.matching.domain.rules import (
    LINE_CHARGE_TYPE as LINE_CHARGE_TYPE,
)
from services.matching.domain.rules import (
    MISSING_RECEIPT as MISSING_RECEIPT,
)
from services.matching.domain.rules import (
    NO_PO as NO_PO,
)
from services.matching.domain.rules import (
    NO_PO_QUEUE as NO_PO_QUEUE,
)
from services.matching.domain.rules import (
    NO_PO_REVIEW as NO_PO_REVIEW,
)
from services.matching.domain.rules import (
    OPS as OPS,
)
from services.matching.domain.rules import (
    PAYEE_MISMATCH as PAYEE_MISMATCH,
)
from services.matching.domain.rules import (
    PO_NOT_IN_FORCE as PO_NOT_IN_FORCE,
)
from services.matching.domain.rules import (
    PRICE_MISMATCH as PRICE_MISMATCH,
)
from services.matching.domain.rules import (
    PROCUREMENT as PROCUREMENT,
)
from services.matching.domain.rules import (
    QTY_OVER_ORDERED as QTY_OVER_ORDERED,
)
from services.matching.domain.rules import (
    QTY_OVER_RECEIVED as QTY_OVER_RECEIVED,
)
from services.matching.domain.rules import (
    QUEUES as QUEUES,
)
from services.matching.domain.rules import (
    RECEIPT_KINDS as RECEIPT_KINDS,
)
from services.matching.domain.rules import (
    REPLACES_SETTLED_INVOICE as REPLACES_SETTLED_INVOICE,
)
from services.matching.domain.rules import (
    REQUESTER_OWNED as REQUESTER_OWNED,
)
from services.matching.domain.rules import (
    SOFT_REVIEW as SOFT_REVIEW,
)
from services.matching.domain.rules import (
    SUSPECTED_DUPLICATE as SUSPECTED_DUPLICATE,
)
from services.matching.domain.rules import (
    TAX_REVIEW as TAX_REVIEW,
)
from services.matching.domain.rules import (
    THREE_WAY as THREE_WAY,
)
from services.matching.domain.rules import (
    TOLERATED as TOLERATED,
)
from services.matching.domain.rules import (
    TOLERATED_QUEUES as TOLERATED_QUEUES,
)
from services.matching.domain.rules import (
    TWO_WAY as TWO_WAY,
)
from services.matching.domain.rules import (
    UNEXPECTED_CHARGE as UNEXPECTED_CHARGE,
)
from services.matching.domain.rules import (
    ZERO as ZERO,
)
from services.matching.domain.rules import (
    Action as Action,
)
from services.matching.domain.rules import (
    Approved as Approved,
)
from services.matching.domain.rules import (
    Band as Band,
)
from services.matching.domain.rules import (
    Changes as Changes,
)
from services.matching.domain.rules import (
    Charge as Charge,
)
from services.matching.domain.rules import (
    DecisionChange as DecisionChange,
)
from services.matching.domain.rules import (
    Finding as Finding,
)
from services.matching.domain.rules import (
    Held as Held,
)
from services.matching.domain.rules import (
    HoldDetails as HoldDetails,
)
from services.matching.domain.rules import (
    HoldKey as HoldKey,
)
from services.matching.domain.rules import (
    HoldOpening as HoldOpening,
)
from services.matching.domain.rules import (
    HoldRelease as HoldRelease,
)
from services.matching.domain.rules import (
    HoldText as HoldText,
)
from services.matching.domain.rules import (
    Invoice as Invoice,
)
from services.matching.domain.rules import (
    InvoiceLine as InvoiceLine,
)
from services.matching.domain.rules import (
    LinePolicy as LinePolicy,
)
from services.matching.domain.rules import (
    Outcome as Outcome,
)
from services.matching.domain.rules import (
    Override as Override,
)
from services.matching.domain.rules import (
    OverrideDecision as OverrideDecision,
)
from services.matching.domain.rules import (
    OverrideRequest as OverrideRequest,
)
from services.matching.domain.rules import (
    Policy as Policy,
)
from services.matching.domain.rules import (
    PoLine as PoLine,
)
from services.matching.domain.rules import (
    PoState as PoState,
)
from services.matching.domain.rules import (
    PurchaseOrder as PurchaseOrder,
)
from services.matching.domain.rules import (
    Receipt as Receipt,
)
from services.matching.domain.rules import (
    ReceiptLine as ReceiptLine,
)
from services.matching.domain.rules import (
    Roles as Roles,
)
from services.matching.domain.rules import (
    Rule as Rule,
)
from services.matching.domain.rules import (
    StoredDecision as StoredDecision,
)
from services.matching.domain.rules import (
    StoredHold as StoredHold,
)
from services.matching.domain.rules import (
    Superseded as Superseded,
)
from services.matching.domain.rules import (
    Tolerance as Tolerance,
)
from services.matching.domain.rules import (
    ValuedLine as ValuedLine,
)
from services.matching.domain.rules import (
    apply_changes as apply_changes,
)
from services.matching.domain.rules import (
    decide_override as decide_override,
)
from services.matching.domain.rules import (
    describe_hold as describe_hold,
)
from services.matching.domain.rules import (
    evaluate as evaluate,
)
from services.matching.domain.rules import (
    fingerprint as fingerprint,
)
from services.matching.domain.rules import (
    header_ok as header_ok,
)
from services.matching.domain.rules import (
    next_run_cutoff as next_run_cutoff,
)
from services.matching.domain.rules import (
    overridable as overridable,
)
from services.matching.domain.rules import (
    price_ok as price_ok,
)
from services.matching.domain.rules import (
    quantity_ok as quantity_ok,
)
from services.matching.domain.rules import (
    reconcile as reconcile,
)
from services.matching.domain.rules import (
    superseded_by as superseded_by,
)
from services.matching.domain.rules import (
    tax_needs_review as tax_needs_review,
)
