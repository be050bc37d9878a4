"""The chaos workload: generated deterministically from a seed, published in phases.

Every invoice belongs to one "flow" whose kind decides what upstream systems publish around it
(PO, amendments, receipts, reversals, duplicates, late documents). The phases exist only to pin
the few cross-topic orders that SPEC lets a final state depend on (a receipt reversed *before*
the invoice arrives leaves a different state than one reversed after the invoice was paid);
inside a phase any arrival order must converge.

- phase A: payees (first profile), funding, POs, amendments, receipts, reversals;
- phase B: invoices (some before their PO), a few deliberately bad records;
- phase C: late receipts, receipts after a reversal, amendment approvals, late POs,
  exact duplicates of phase-B invoices, payee profile updates (ineligible → eligible).
- phase D (SPEC §13.4): PO amendments that lower the price an accepted override approved, so the
  override lapses; sent only once matching approved those invoices on the override (the run
  waits for it), and their payee is one whose new payout account is still unconfirmed, so
  nothing can be paid between the override and the lapse whatever the timing.
- phase E (SPEC §13.3): the confirmations of changed payout accounts (a refused self-confirmation
  and one of an account the payee doesn't have among them). The account changes go with the
  first profiles in phase A; the run waits until compliance_gate has made every changed payee
  ineligible (`payout_account_unconfirmed`) before any invoice is sent, so no invoice of theirs
  can be paid before its confirmation or to the old account.

Nothing in it depends on the clock beyond "today": PO validity spans a year, AML screenings
and tax forms are fresh, so no expiry or escalation can change an outcome during a run.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.envelope import SCHEMA_VERSION, Envelope, derived_event_id
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.topics import (
    IN_COMMANDS,
    IN_FUNDING,
    IN_INVOICES,
    IN_PAYEES,
    IN_PURCHASE_ORDERS,
    IN_RAIL_EVENTS,
    IN_RECEIPTS,
    Topic,
)
from testkit import documents as doc

PHASES = ("A", "B", "C", "D", "E")
FORGED_SECRET = "not-the-rail-secret"

# Flow kinds and their weights: "normal" dominates, every other kind shows up in an 80-invoice run.
FLOW_WEIGHTS: dict[str, int] = {
    "normal": 30,
    "two_way": 6,
    "partial_receipt": 5,
    "late_receipt": 6,
    "reversed_receipt": 4,
    "reversed_then_received": 4,
    "price_mismatch": 5,
    "amended": 5,
    "amended_pending": 5,
    "duplicate": 6,
    "invoice_before_po": 6,
    "bad_arithmetic": 3,
    "override": 4,
    "override_refused": 2,
    "corrected": 4,
    "hostile": 3,  # SPEC §15: look-alike and overpaying siblings of a normal invoice
    # SPEC §13.5: `corporate` invoices on 2/10 NET30 (pay on due date, take discounts). Issued 8
    # days ago: inside the window and past its last day − lead days, paid at once less 2 %;
    # issued today: not due for days, never paid in a run. Both hold for a day either way, so a
    # run that crosses midnight decides them the same.
    "terms_discount": 3,
    "terms_not_due": 2,
    # SPEC §13.4: a price hold released by an accepted override, then the PO amended to a lower
    # price (phase D): the override lapses, the hold reopens, the approval is revoked, no payout.
    "override_lapsed": 3,
}
ON_TERMS = ("terms_discount", "terms_not_due")
PRICE_HELD = ("price_mismatch", "override", "override_refused", "corrected", "override_lapsed")
OVERRIDDEN = ("override", "override_refused", "override_lapsed")
# SPEC §13.3: who changes a payout account, who confirms it (never the same person).
ACCOUNT_UPDATER = "vendor.master@example.com"
ACCOUNT_CONFIRMER = "ap.controller@example.com"


@dataclass(frozen=True)
class Record:
    """One inbound record. `value` is built once so every re-publication is byte-identical."""

    topic: Topic
    key: str
    event_type: str
    event_id: str
    value: bytes
    headers: tuple[tuple[str, str], ...] = ()
    bad: bool = False  # deliberately bad: must end on the deadletter topic, nothing applied
    note: str = ""

    @property
    def intake_input(self) -> bool:
        return self.topic in (IN_PURCHASE_ORDERS, IN_RECEIPTS, IN_INVOICES) and not self.bad


@dataclass(frozen=True)
class Expected:
    """What the generator means to happen to an invoice (a sanity check of the fault-free run)."""

    intake: str  # "accepted" or "rejected:<code>"
    matching: str | None  # "approved", "held:<reason>", or None when rejected
    paid: bool


@dataclass
class Workload:
    seed: int
    tag: str
    today: date
    phases: dict[str, list[Record]] = field(default_factory=dict)
    invoice_event_ids: dict[str, str] = field(default_factory=dict)  # event_id → invoice_id
    expected: dict[str, Expected] = field(default_factory=dict)
    fail_first: set[str] = field(default_factory=set)  # invoices whose first payout the rail fails
    kinds: dict[str, str] = field(default_factory=dict)  # invoice_id → flow kind
    po_of: dict[str, str] = field(default_factory=dict)  # invoice_id → po_number
    # SPEC §13.3: payee → (first account, changed account); SPEC §13.4: invoice → lapsing override
    account_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    lapsing: dict[str, str] = field(default_factory=dict)
    payee_of: dict[str, str] = field(default_factory=dict)  # invoice_id → payee_id (first-level invoices)
    refused_confirmations: dict[str, str] = field(default_factory=dict)  # event_id → refusal code

    @property
    def records(self) -> list[Record]:
        return [r for p in PHASES for r in self.phases.get(p, [])]

    @property
    def bad_values(self) -> set[bytes]:
        return {r.value for r in self.records if r.bad}

    @property
    def invoice_ids(self) -> list[str]:
        return sorted(self.expected)


_ts = doc.ts
_money = doc.money


class _Builder:
    def __init__(self, seed: int, tag: str, today: date) -> None:
        self.rng = random.Random(seed)
        self.w = Workload(seed=seed, tag=tag, today=today, phases={p: [] for p in PHASES})
        self.tag = tag
        self.today = today
        # Fixed instant for every envelope: both runs publish byte-identical records.
        self.occurred_at = datetime(today.year, today.month, today.day, 8, tzinfo=UTC)
        self.totals_seen: set[tuple[str, str, str, str]] = set()

    def add(
        self,
        phase: str,
        topic: Topic,
        key: str,
        event_type: str,
        data: dict[str, Any],
        occurred_at: datetime | None = None,
    ) -> Record:
        event_id = derived_event_id("chaos", self.tag, event_type, key, str(len(self.w.records)))
        env = Envelope(
            event_id=event_id,
            event_type=event_type,
            schema_version=SCHEMA_VERSION,
            occurred_at=occurred_at or self.occurred_at,
            source="chaos-upstream",
            correlation_id=None,
            causation_id=None,
            data=data,
        )
        value = env.model_dump_json().encode()
        headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
        rec = Record(topic, key, event_type, event_id, value, headers)
        self.w.phases[phase].append(rec)
        return rec

    def add_signed(self, phase: str, topic: Topic, key: str, event_type: str, data: dict[str, Any]) -> Record:
        """A command, signed with the configured ops secret (the same for both runs)."""
        rec = self.add(phase, topic, key, event_type, data)
        signed = Record(
            rec.topic,
            rec.key,
            rec.event_type,
            rec.event_id,
            rec.value,
            (*rec.headers, (SIGNATURE_HEADER, sign(Settings().ops_secret, rec.value))),
        )
        self.w.phases[phase][-1] = signed
        return signed

    def add_bad(
        self, phase: str, topic: Topic, key: str, value: bytes, note: str, signature: str | None = None
    ) -> None:
        headers: list[tuple[str, str]] = [("content-type", "application/json")]
        if signature is not None:
            headers.append((SIGNATURE_HEADER, signature))
        event_id = "bad-" + hashlib.sha256(value).hexdigest()[:16]
        self.w.phases[phase].append(
            Record(topic, key, "(bad)", event_id, value, tuple(headers), bad=True, note=note)
        )


def build(seed: int, invoices: int, tag: str | None = None, today: date | None = None) -> Workload:
    """The same (seed, invoices, tag, today) always yields byte-identical records."""
    today = today or datetime.now(UTC).date()
    tag = tag or f"s{seed}"
    b = _Builder(seed, tag, today)
    rng = b.rng
    w = b.w

    # --- payees: most eligible; some ineligible first and eligible later; a few never ---------
    n_payees = max(6, invoices // 12)
    screened = _ts(today - timedelta(days=30))
    payees: list[tuple[str, str, str, str]] = []  # (payee_id, currency, legal_entity, standing)
    for p in range(n_payees):
        us = p % 3 == 0
        payee = f"cp-{tag}-{p}"
        standing = "late_eligible" if p % 7 == 3 else "never_eligible" if p % 11 == 5 else "eligible"
        payees.append((payee, "USD" if us else "EUR", "acme-us" if us else "acme-eu", standing))

        def profile(
            version: int, eligible: bool, payee: str = payee, us: bool = us, account: str = f"tok_{payee}"
        ) -> dict[str, Any]:
            return doc.payee_profile(
                payee,
                version=version,
                country="US" if us else "DE",
                screened_at=screened,
                tax=doc.tax_form(
                    "W-9" if us else "W-8BEN-E",
                    str(today - timedelta(days=60)),
                    status="valid" if eligible else "missing",
                ),
                payout_account_ref=account,
                updated_by=ACCOUNT_UPDATER if version > 1 else None,
            )

        b.add("A", IN_PAYEES, payee, "payee.profile_updated", profile(1, standing == "eligible"))
        if standing == "late_eligible":
            b.add("C", IN_PAYEES, payee, "payee.profile_updated", profile(2, True))
        if standing == "eligible" and p % 4 == 1:
            # SPEC §13.3: the bank account changed after the first profile (a day before the run,
            # so the cooling-off, short in chaos, is over): ineligible until confirmed in phase E.
            new = f"tok2_{payee}"
            w.account_changes[payee] = (f"tok_{payee}", new)
            b.add(
                "A",
                IN_PAYEES,
                payee,
                "payee.profile_updated",
                profile(2, True, account=new),
                occurred_at=b.occurred_at - timedelta(days=1),
            )
        if standing == "never_eligible" and p % 2:
            # A newer profile that is still not compliant: eligibility must not flip.
            b.add("C", IN_PAYEES, payee, "payee.profile_updated", profile(2, False))

    # Funding: ample, so insufficient funds never depends on payout timing; topped up in phase C.
    for currency, entity in (("EUR", "acme-eu"), ("USD", "acme-us")):
        account = f"va-{currency.lower()}-{tag}"
        for i, phase in enumerate(("A", "C")):
            b.add(
                phase,
                IN_FUNDING,
                account,
                "funding.received",
                doc.funding(
                    f"fund-{currency.lower()}-{tag}-{i}",
                    account_id=account,
                    legal_entity=entity,
                    currency=currency,
                    amount="900000000.00",
                    received_at=_ts(today, 7),
                ),
            )

    kinds = list(FLOW_WEIGHTS)
    weights = [FLOW_WEIGHTS[k] for k in kinds]
    for i in range(invoices):
        # The first flows cycle through every kind, so even a tiny run covers them all.
        kind = kinds[i] if i < len(kinds) else rng.choices(kinds, weights)[0]
        payee, currency, entity, standing = payees[rng.randrange(n_payees)]
        if kind == "override_lapsed" and w.account_changes:
            # Its payee is one whose changed account is confirmed only in phase E: the approval on
            # the override cannot be paid before the phase-D amendment makes the override lapse.
            payee, currency, entity, standing = next(
                p for p in payees if p[0] == sorted(w.account_changes)[i % len(w.account_changes)]
            )
        _flow(b, i, kind, payee, currency, entity, standing)

    # SPEC §13.3: the confirmations, last. Every third changed payee first gets a confirmation by
    # the person who changed the account (refused: sod_violation) and one naming an account the
    # payee doesn't have (does nothing); neither may make it eligible.
    for n, (payee, (_old, new)) in enumerate(sorted(w.account_changes.items())):
        if n % 3 == 0:
            own = b.add_signed(
                "E",
                IN_COMMANDS,
                payee,
                "payee.payout_account_confirmed",
                doc.payout_account_confirmation(payee, new, confirmed_by=ACCOUNT_UPDATER.upper()),
            )
            w.refused_confirmations[own.event_id] = "sod_violation"
            other = b.add_signed(
                "E",
                IN_COMMANDS,
                payee,
                "payee.payout_account_confirmed",
                doc.payout_account_confirmation(payee, f"tok_other_{payee}", confirmed_by=ACCOUNT_CONFIRMER),
            )
            w.refused_confirmations[other.event_id] = "payout_account_not_current"
        b.add_signed(
            "E",
            IN_COMMANDS,
            payee,
            "payee.payout_account_confirmed",
            doc.payout_account_confirmation(payee, new, confirmed_by=ACCOUNT_CONFIRMER),
        )

    # A rail failure first for ~1 in 8 of the invoices that will be paid (chosen by seed).
    paid = sorted(i for i, e in w.expected.items() if e.paid)
    w.fail_first = {i for i in paid if rng.random() < 0.125}

    _bad_records(b)
    return w


def _unit(drawn: str, kind: str) -> str:
    """The PO's business unit: `corporate` for a flow on payment terms (the draw is still made,
    so the random sequence of every other flow stays as it was)."""
    return "corporate" if kind in ON_TERMS else drawn


def _flow(b: _Builder, i: int, kind: str, payee: str, currency: str, entity: str, standing: str) -> None:
    rng, tag, today = b.rng, b.tag, b.today
    po = f"CPO-{tag}-{i}"
    invoice_id = f"cinv-{tag}-{i}"
    n_lines = 1 + (rng.random() < 0.3)
    lines = []
    for ln in range(1, n_lines + 1):
        qty = Decimal(rng.randint(1, 20))
        price = Decimal(rng.randint(500, 50000)) / 100
        lines.append((str(ln), qty, price))
    if kind == "partial_receipt" and lines[0][1] < 2:
        lines[0] = (lines[0][0], lines[0][1] + 2, lines[0][2])  # room for a partial receipt
    two_way = kind == "two_way"
    po_data = doc.purchase_order(
        po,
        legal_entity=entity,
        business_unit=_unit(rng.choice(["it", "ops", "marketing"]), kind),
        payee_id=payee,
        currency=currency,
        payment_terms="2/10 NET30" if kind in ON_TERMS else "NET30",
        effective_from=str(today - timedelta(days=30)),
        effective_to=str(today + timedelta(days=335)),
        created_by="buyer@example.com",
        approved_by="procurement.lead@example.com",
        approved_at=_ts(today - timedelta(days=29)),
        lines=[
            doc.po_line(lid, f"SKU-{i}-{lid}", "hardware", str(qty), str(price), "EA")
            for lid, qty, price in lines
        ],
        match_mode="two_way" if two_way else None,
    )

    # Invoice prices: the PO's, or an amended one, or a mismatching one.
    inv_prices = {lid: price for lid, _, price in lines}
    amended = kind in ("amended", "amended_pending")
    if amended:
        inv_prices = {lid: price + Decimal("1.25") for lid, price in inv_prices.items()}
    if kind in PRICE_HELD:
        inv_prices["1"] = inv_prices["1"] + Decimal("0.50")

    # --- the PO (late POs go to phase C) -------------------------------------------------
    po_phase = "C" if kind == "invoice_before_po" else "A"
    b.add(po_phase, IN_PURCHASE_ORDERS, po, "purchase_order.issued", po_data)
    if amended:
        # "amended": approved on the amendment itself by someone other than the amender, in force
        # at once; "amended_pending": self-approved, pending until an independent approval
        # arrives in phase C.
        v2 = doc.po_amendment(
            po_data,
            version=2,
            modification_id=f"mod-{tag}-{i}",
            amended_by="buyer@example.com",
            reason="supplier price increase agreed",
            lines=[dict(line, unit_price=str(inv_prices[line["line_id"]])) for line in po_data["lines"]],
            approved_by="procurement.lead@example.com" if kind == "amended" else "buyer@example.com",
            approved_at=_ts(today - timedelta(days=2)),
        )
        b.add("A", IN_PURCHASE_ORDERS, po, "purchase_order.amended", v2)
        if kind == "amended_pending":
            b.add(
                "C",
                IN_PURCHASE_ORDERS,
                po,
                "purchase_order.amendment_approved",
                doc.amendment_approval(
                    po, 2, approved_by="controller@example.com", approved_at=_ts(today - timedelta(days=1))
                ),
            )

    # --- receipts --------------------------------------------------------------------------
    def receipt(phase: str, rid: str, fraction: Decimal = Decimal(1)) -> None:
        b.add(
            phase,
            IN_RECEIPTS,
            po,
            "receipt.recorded",
            doc.receipt(
                rid,
                po,
                [
                    doc.receipt_line(
                        f"{rid}-{lid}", lid, str(max(Decimal(0), (qty * fraction).to_integral_value()) or 1)
                    )
                    for lid, qty, _ in lines
                ],
                received_at=_ts(today - timedelta(days=3)),
                recorded_by="warehouse@example.com",
            ),
        )

    partial = kind == "partial_receipt"
    if two_way:
        pass
    elif kind in ("late_receipt", "invoice_before_po"):
        receipt("C", f"GRN-{tag}-{i}")
    elif kind in ("reversed_receipt", "reversed_then_received"):
        rid = f"GRN-{tag}-{i}"
        receipt("A", rid)
        b.add(
            "A",
            IN_RECEIPTS,
            po,
            "receipt.reversed",
            doc.receipt_reversal(rid, po, reversed_by="warehouse@example.com", reason="returned"),
        )
        if kind == "reversed_then_received":
            receipt("C", f"GRN2-{tag}-{i}")
    elif partial:
        receipt("A", f"GRN-{tag}-{i}", Decimal("0.5"))
    else:
        receipt("A", f"GRN-{tag}-{i}")

    # --- the invoice -----------------------------------------------------------------------
    inv_lines = []
    subtotal = Decimal(0)
    for lid, qty, _ in lines:
        amount = (qty * inv_prices[lid]).quantize(Decimal("0.01"))
        subtotal += amount
        inv_lines.append(doc.invoice_line(lid, lid, str(qty), str(inv_prices[lid]), _money(amount)))
    if kind == "bad_arithmetic":
        inv_lines[0]["line_amount"] = _money(Decimal(inv_lines[0]["line_amount"]) + 1)
    issue = str(today - timedelta(days=i % 5))
    if kind in ON_TERMS:
        issue = str(today - timedelta(days=8 if kind == "terms_discount" else 0))
    tax = (subtotal * Decimal("0.19")).quantize(Decimal("0.01"))
    # Two invoices of one payee with the same total and issue date are a *suspected* duplicate
    # (SPEC §5); the workload wants only deliberate duplicates, so nudge the tax until unique.
    while (payee, currency, _money(subtotal + tax), issue) in b.totals_seen:
        tax += Decimal("0.01")
    b.totals_seen.add((payee, currency, _money(subtotal + tax), issue))
    # Digits first, then letters: separators are removed before leading zeros are, so a tag
    # ending in digits would merge with the number's digit run ("S7-00009" → "S700009").
    number = f"INV-{i:05d}-X{tag.upper()}"
    invoice = doc.invoice(
        invoice_id,
        number=number,
        payee_id=payee,
        legal_entity=entity,
        currency=currency,
        issue_date=issue,
        po_number=po,
        lines=inv_lines,
        tax_total=_money(tax),
        total_amount=_money(subtotal + tax),
    )
    rec = b.add("B", IN_INVOICES, payee, "invoice.submitted", invoice)
    b.w.invoice_event_ids[rec.event_id] = invoice_id
    b.w.kinds[invoice_id] = kind
    b.w.po_of[invoice_id] = po
    b.w.payee_of[invoice_id] = payee

    eligible_at_end = standing != "never_eligible"
    matching = {
        "partial_receipt": "held:qty_over_received",
        "reversed_receipt": "held:missing_receipt",
        "price_mismatch": "held:price_mismatch",
        "override_refused": "held:price_mismatch",
        "override_lapsed": "held:price_mismatch",
        "corrected": "superseded",
        "bad_arithmetic": None,
    }.get(kind, "approved")
    if kind == "bad_arithmetic":
        b.w.expected[invoice_id] = Expected("rejected:line_amount_mismatch", None, False)
    else:
        due = kind != "terms_not_due"
        b.w.expected[invoice_id] = Expected(
            "accepted", matching, matching == "approved" and eligible_at_end and due
        )

    if kind in OVERRIDDEN:
        # An AP clerk asks, an approver with the ap role releases the price hold with evidence;
        # the refused one is "approved" by the requester himself (segregation of duties).
        approver = "ap.clerk@example.com" if kind == "override_refused" else "ap.lead@example.com"
        b.add_signed(
            "C",
            IN_COMMANDS,
            invoice_id,
            "hold.override_requested",
            doc.hold_override(
                f"ovr-{tag}-{i}",
                invoice_id,
                hold_reasons=["price_mismatch"],
                reason_code="price_agreed",
                justification="supplier raised the price after a spec change; agreed by mail",
                requested_by="ap.clerk@example.com",
                approved_by=approver,
                evidence=[f"mail://procurement/{tag}/{i}"],
            ),
        )
    if kind == "override_lapsed":
        # SPEC §13.4: procurement then lowers the PO price of line 1 (approved by someone other
        # than the amender, in force at once): the price check fails on other facts than the
        # override approved, so it lapses.
        b.w.lapsing[invoice_id] = f"ovr-{tag}-{i}"
        lowered = {lid: price - Decimal("0.25") if lid == "1" else price for lid, _, price in lines}
        b.add(
            "D",
            IN_PURCHASE_ORDERS,
            po,
            "purchase_order.amended",
            doc.po_amendment(
                po_data,
                version=2,
                modification_id=f"mod-lapse-{tag}-{i}",
                amended_by="buyer@example.com",
                reason="supplier credit agreed on line 1",
                lines=[dict(line, unit_price=str(lowered[line["line_id"]])) for line in po_data["lines"]],
                approved_by="procurement.lead@example.com",
                approved_at=_ts(today - timedelta(days=1)),
            ),
        )

    if kind == "corrected":
        # The supplier sends a corrected invoice at the PO price: it supersedes the held one.
        fixed_lines = [dict(line) for line in inv_lines]
        fixed_lines[0]["unit_price"] = str(lines[0][2])
        fixed_lines[0]["line_amount"] = _money(lines[0][1] * lines[0][2])
        fixed_sub = sum((Decimal(line["line_amount"]) for line in fixed_lines), Decimal(0))
        fixed_tax = (fixed_sub * Decimal("0.19")).quantize(Decimal("0.01"))
        while (payee, currency, _money(fixed_sub + fixed_tax), issue) in b.totals_seen:
            fixed_tax += Decimal("0.01")
        b.totals_seen.add((payee, currency, _money(fixed_sub + fixed_tax), issue))
        fix_id = f"cinv-{tag}-{i}-fix"
        fixed = dict(
            invoice,
            invoice_id=fix_id,
            replaces_invoice_id=invoice_id,
            lines=fixed_lines,
            tax_total=_money(fixed_tax),
            total_amount=_money(fixed_sub + fixed_tax),
        )
        rec = b.add("C", IN_INVOICES, payee, "invoice.submitted", fixed)
        b.w.invoice_event_ids[rec.event_id] = fix_id
        b.w.kinds[fix_id] = "correction"
        b.w.po_of[fix_id] = po
        b.w.expected[fix_id] = Expected("accepted", "approved", eligible_at_end)

    if kind == "hostile":
        # SPEC §15: siblings that v1 paid. Each must end as a rejection, never as a payment.
        hostile = (
            # the same number with a Unicode hyphen and a zero-width space: a look-alike duplicate
            (
                "lookalike",
                {"supplier_invoice_number": number.replace("-", "\u2010", 1) + "\u200b"},
                "duplicate_invoice",
            ),
            # a negative prepaid amount would raise the payable above the total
            (
                "prepaid",
                {"supplier_invoice_number": f"{number}-P", "prepaid_amount": "-990.00"},
                "invalid_prepaid_amount",
            ),
            # a rounding of 990.00 on an invoice of a few thousand
            (
                "rounding",
                {"supplier_invoice_number": f"{number}-R", "rounding_amount": "990.00"},
                "invalid_rounding_amount",
            ),
        )
        for suffix, change, code in hostile:
            hid = f"cinv-{tag}-{i}-{suffix}"
            rec = b.add("C", IN_INVOICES, payee, "invoice.submitted", dict(invoice, invoice_id=hid, **change))
            b.w.invoice_event_ids[rec.event_id] = hid
            b.w.kinds[hid] = f"hostile_{suffix}"
            b.w.po_of[hid] = po
            b.w.expected[hid] = Expected(f"rejected:{code}", None, False)

    if kind == "duplicate":
        # The same supplier invoice typed differently upstream ("inv 42 xs7" = "INV-00042-XS7"),
        # under a new invoice id: not a re-send of the same record, a second submission.
        dup_id = f"cinv-{tag}-{i}-dup"
        dup = dict(invoice, invoice_id=dup_id, supplier_invoice_number=f"inv {i} x{tag}".lower())
        rec = b.add("C", IN_INVOICES, payee, "invoice.submitted", dup)
        b.w.invoice_event_ids[rec.event_id] = dup_id
        b.w.kinds[dup_id] = "duplicate_copy"
        b.w.expected[dup_id] = Expected("rejected:duplicate_invoice", None, False)


def _hostile_records(b: _Builder) -> None:
    """SPEC §15 "Records": JSON that says two things at once, a record under another subject's key."""
    tag = b.tag
    receipt = Envelope(
        event_id=f"bad-key-{tag}",
        event_type="receipt.recorded",
        schema_version=SCHEMA_VERSION,
        occurred_at=b.occurred_at,
        source="chaos-upstream",
        data=doc.receipt(
            f"r-hostile-{tag}",
            f"po-hostile-{tag}",
            [doc.receipt_line("1", "1", "1")],
            received_at=_ts(b.today, 8),
            recorded_by="dock@example.com",
        ),
    )
    b.add_bad(
        "B",
        IN_RECEIPTS,
        f"po-other-{tag}",
        receipt.model_dump_json().encode(),
        "receipt under another PO's key",
    )
    twice = receipt.model_copy(update={"event_id": f"bad-dup-{tag}"}).model_dump_json().encode()
    twice = twice.replace(b'"data":{', b'"data":{"po_number":"po-decoy",', 1)
    b.add_bad("B", IN_RECEIPTS, f"po-hostile-{tag}", twice, "a JSON key written twice")


def _bad_records(b: _Builder) -> None:
    """Deliberately bad input: each must reach the deadletter topic and change nothing."""
    tag = b.tag
    b.add_bad("B", IN_INVOICES, f"garbage-{tag}", b"\x00\xff\xfe not json {{{", "garbage bytes")
    b.add_bad("B", IN_PURCHASE_ORDERS, f"garbage-po-{tag}", b"[1, 2, 3", "truncated JSON")
    b.add_bad(
        "B",
        IN_RECEIPTS,
        f"b64-{tag}",
        base64.b64encode(b"receipt.recorded but base64 encoded"),
        "base64 text, not JSON",
    )
    _hostile_records(b)
    for n, (topic, event_type) in enumerate(
        ((IN_INVOICES, "invoice.teleported"), (IN_PURCHASE_ORDERS, "purchase_order.vaporised"))
    ):
        env = Envelope(
            event_id=f"bad-unknown-{tag}-{n}",
            event_type=event_type,
            schema_version=SCHEMA_VERSION,
            occurred_at=b.occurred_at,
            source="chaos-upstream",
            data={"invoice_id": f"ghost-{n}"},
        )
        b.add_bad(
            "B",
            topic,
            f"unknown-{tag}-{n}",
            env.model_dump_json().encode(),
            f"unknown event type {event_type}",
        )
    # Forged rail signatures: a settlement and a failure signed with the wrong secret; and a
    # payout run command signed with the rail's secret instead of the ops secret.
    for n, (event_type, data) in enumerate(
        (
            (
                "payout.settled",
                doc.payout_settled(
                    f"payout_forged_{tag}",
                    rail_event_id=f"rail-forged-{tag}-0",
                    amount="1000000.00",
                    currency="EUR",
                    settled_at=_ts(b.today, 10),
                ),
            ),
            (
                "payout.failed",
                doc.payout_failed(
                    f"payout_forged_{tag}", rail_event_id=f"rail-forged-{tag}-1", failure_code="R01"
                ),
            ),
        )
    ):
        env = Envelope(
            event_id=f"bad-forged-{tag}-{n}",
            event_type=event_type,
            schema_version=SCHEMA_VERSION,
            occurred_at=b.occurred_at,
            source="forged-rail",
            data=data,
        )
        value = env.model_dump_json().encode()
        b.add_bad(
            "B",
            IN_RAIL_EVENTS,
            data["payout_id"],
            value,
            f"forged {event_type} signature",
            sign(FORGED_SECRET, value),
        )
    unsigned = Envelope(
        event_id=f"bad-unsigned-{tag}",
        event_type="payout.settled",
        schema_version=SCHEMA_VERSION,
        occurred_at=b.occurred_at,
        source="forged-rail",
        data=doc.payout_settled(
            f"payout_unsigned_{tag}",
            rail_event_id=f"rail-unsigned-{tag}",
            amount="5.00",
            currency="EUR",
            settled_at=_ts(b.today, 10),
        ),
    )
    b.add_bad(
        "B",
        IN_RAIL_EVENTS,
        f"payout_unsigned_{tag}",
        unsigned.model_dump_json().encode(),
        "unsigned rail event",
    )
    cmd = Envelope(
        event_id=f"bad-cmd-{tag}",
        event_type="payout_run.requested",
        schema_version=SCHEMA_VERSION,
        occurred_at=b.occurred_at,
        source="forged-ops",
        data=doc.payout_run(f"forged-run-{tag}", requested_by="mallory@example.com"),
    )
    value = cmd.model_dump_json().encode()
    b.add_bad(
        "B",
        IN_COMMANDS,
        f"forged-run-{tag}",
        value,
        "command signed with the wrong secret",
        sign(FORGED_SECRET, value),
    )
