"""A PO's versions: the rules, and decided in memory (SPEC §5): issue, amend, approve, close.

A batch's POs are loaded once (`PoBook`), every record is decided against the book in offset
order — so a batch that issues, amends and approves one PO gives what one record at a time
gives — and what changed is written once at the end (the book remembers what it changed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from services.intake.domain.common import (
    DEFAULT_MAX_AMOUNT,
    Charge,
    Reason,
    amount_range_reasons,
    amount_scale_reasons,
    currency_reasons,
)
from services.intake.domain.outcome import Outcome
from shared.authority import Authority, po_total
from shared.text import same_person

# --- PO versions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PoLineTerms:
    line_id: str
    quantity: Decimal
    unit_price: Decimal


@dataclass(frozen=True)
class PoTerms:
    """The parts of a PO version the rules look at."""

    po_number: str
    version: int
    currency: str
    effective_from: date
    effective_to: date
    created_by: str
    lines: tuple[PoLineTerms, ...]
    charges: tuple[Charge, ...] = ()
    business_unit: str = ""

    @property
    def total(self) -> Decimal:
        return po_total(((ln.quantity, ln.unit_price) for ln in self.lines), (c.amount for c in self.charges))


def state_total(state: Mapping[str, Any]) -> Decimal:
    """The total of a stored PO state (SPEC §13.1: Σ quantity × unit_price + allowed charges)."""
    return po_total(
        ((Decimal(str(ln["quantity"])), Decimal(str(ln["unit_price"]))) for ln in state.get("lines", [])),
        (Decimal(str(c["amount"])) for c in state.get("charges", [])),
    )


def authority_reason(
    approver: str | None, total: Decimal, currency: str, business_unit: str, kind: str
) -> Reason:
    what = "a PO version" if kind == "purchase_order" else "a requisition"
    return Reason(
        "approval_authority_exceeded",
        "approved_by",
        f"{approver or 'nobody'} has no approval limit covering {what} of {total} {currency} "
        f"for business unit {business_unit}",
    )


def sod_reasons_for_issue(created_by: str, approved_by: str | None) -> list[Reason]:
    """SPEC §5: a PO approved by nobody, or by its own creator, is rejected. People compare
    case-insensitively (SPEC §15): `Buyer.Case@x` approving for `buyer.case@x` is self-approval."""
    if not approved_by or not approved_by.strip():
        return [Reason("sod_violation", "approved_by", "a PO must be approved")]
    if same_person(approved_by, created_by):
        return [
            Reason("sod_violation", "approved_by", "a PO cannot be approved by the person who created it")
        ]
    return []


def is_independent_approval(amended_by: str, approved_by: str | None) -> bool:
    """An amendment is in force only once approved by someone other than `amended_by`."""
    return bool(approved_by and approved_by.strip()) and not same_person(approved_by, amended_by)


def po_terms_reasons(po: PoTerms, max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> list[Reason]:
    out = currency_reasons(po.currency)
    out += amount_range_reasons(
        [(f"lines[{i}].unit_price", ln.quantity * ln.unit_price) for i, ln in enumerate(po.lines)]
        + [(f"charges[{i}].amount", c.amount) for i, c in enumerate(po.charges)],
        max_amount,
        po.currency,
    )
    if po.effective_from > po.effective_to:
        out.append(Reason("invalid_effective_dates", "effective_to", "effective_to is before effective_from"))
    seen: set[str] = set()
    for i, line in enumerate(po.lines):
        where = f"lines[{i}]"
        if line.line_id in seen:
            out.append(Reason("duplicate_line_id", f"{where}.line_id", f"line_id {line.line_id} repeated"))
        seen.add(line.line_id)
        if line.quantity <= 0:
            code = "zero_quantity" if line.quantity == 0 else "negative_quantity"
            out.append(
                Reason(code, f"{where}.quantity", f"line {line.line_id}: ordered quantity must be > 0")
            )
        if line.unit_price < 0:
            out.append(
                Reason("negative_unit_price", f"{where}.unit_price", f"line {line.line_id}: unit price < 0")
            )
    for i, c in enumerate(po.charges):
        if c.amount < 0:
            out.append(
                Reason("negative_amount", f"charges[{i}].amount", "an allowed charge cannot be negative")
            )
    out += amount_scale_reasons(
        po.currency, [(f"charges[{i}].amount", c.amount) for i, c in enumerate(po.charges)]
    )
    return out


_IGNORED_KEYS = frozenset(
    {"version", "modification_id", "amended_by", "reason", "approved_by", "approved_at", "created_by"}
)


def _index(items: Sequence[Mapping[str, Any]], key: str) -> dict[str, Mapping[str, Any]]:
    return {str(item.get(key)): item for item in items}


def po_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Field paths that differ between two PO states, e.g. `lines[L1].unit_price`, `sow_ref`,
    `lines[L3]` (added or removed), `charges[freight]`. Lines are compared by line_id."""
    changes: list[str] = []
    for key in sorted((set(old) | set(new)) - _IGNORED_KEYS - {"lines", "charges"}):
        if _canon(old.get(key)) != _canon(new.get(key)):
            changes.append(key)
    old_lines, new_lines = _index(old.get("lines", []), "line_id"), _index(new.get("lines", []), "line_id")
    for line_id in sorted(set(old_lines) | set(new_lines)):
        a, b = old_lines.get(line_id), new_lines.get(line_id)
        if a is None or b is None:
            changes.append(f"lines[{line_id}]")
            continue
        for key in sorted(set(a) | set(b)):
            if _canon(a.get(key)) != _canon(b.get(key)):
                changes.append(f"lines[{line_id}].{key}")
    old_charges, new_charges = _index(old.get("charges", []), "type"), _index(new.get("charges", []), "type")
    for ctype in sorted(set(old_charges) | set(new_charges)):
        if _canon(old_charges.get(ctype)) != _canon(new_charges.get(ctype)):
            changes.append(f"charges[{ctype}]")
    return changes


def _canon(value: Any) -> Any:
    """Compare decimals by value ("10.0" = "10"), everything else as given."""
    if isinstance(value, Mapping):
        return {k: _canon(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return Decimal(value).normalize()
    if isinstance(value, Decimal):
        return value.normalize()
    return value


@dataclass(frozen=True)
class VersionSlot:
    """One received version of a PO. Version 1 is approved on issue (or rejected); every
    amendment waits for an approval by someone other than its author (SPEC §5)."""

    version: int
    amended_by: str | None = None
    approved_by: str | None = None

    @property
    def approved(self) -> bool:
        if self.amended_by is None:
            return True
        return is_independent_approval(self.amended_by, self.approved_by)


def versions_coming_into_force(in_force: int | None, received: Mapping[int, VersionSlot]) -> list[int]:
    """SPEC §5: versions are applied strictly in order. Starting after the version in force,
    each next version comes into force if it has been received and approved; the first gap
    (not yet received) or pending approval stops the walk — later versions wait."""
    out: list[int] = []
    current = in_force
    while True:
        nxt = 1 if current is None else current + 1
        slot = received.get(nxt)
        if slot is None or not slot.approved:
            return out
        out.append(nxt)
        current = nxt


# --- decided in memory, a batch at a time ---------------------------------------------------


@dataclass(frozen=True)
class PoVersion:
    """One received version of a PO, as stored (a po_versions row)."""

    po_number: str
    version: int
    kind: str  # issued | amended
    status: str  # pending | approved | in_force | superseded
    state: dict[str, Any]
    content_hash: str
    created_by: str
    amended_by: str | None
    modification_id: str | None
    reason: str | None
    approved_by: str | None
    approved_at: datetime | None
    received_at: datetime
    source_event_id: str
    previous_version: int | None = None
    changes: list[str] | None = None
    previous_sow_ref: Any = None
    in_force_since: datetime | None = None
    superseded_at: datetime | None = None
    # SPEC §13.1: the roles-file entry that allowed the approval (shared/authority.ApprovalLimit.as_dict)
    approval_limit: dict[str, Any] | None = None


@dataclass(frozen=True)
class EarlyApproval:
    """An amendment_approved that arrived before its amendment (kept until it does)."""

    po_number: str
    version: int
    approved_by: str
    approved_at: datetime
    source_event_id: str


@dataclass(frozen=True)
class ReceivedVersion:
    """An issued or amended version as upstream sent it (contract.py builds it)."""

    terms: PoTerms
    state: dict[str, Any]  # the full new state, without approval fields
    content_hash: str
    created_by: str
    amended_by: str | None
    modification_id: str | None
    reason: str | None
    approved_by: str | None
    approved_at: datetime | None


@dataclass(frozen=True)
class VersionInForce:
    """A version that came into force: what purchase_order.version_in_force says."""

    version: PoVersion
    previous: PoVersion | None


@dataclass
class PoDecision:
    outcome: Outcome
    reasons: list[Reason] = field(default_factory=list)
    in_force: list[VersionInForce] = field(default_factory=list)
    pending: bool = False  # an amendment waiting for an independent approval
    closed: bool = False  # the closure was accepted


@dataclass
class Po:
    """A PO header with every version received and every approval parked for it."""

    po_number: str
    in_force_version: int | None = None
    closed_by: str | None = None
    closed_reason: str | None = None
    closed_at: datetime | None = None
    versions: dict[int, PoVersion] = field(default_factory=dict)
    early_approvals: list[EarlyApproval] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.closed_at is not None


@dataclass
class PoBook:
    """The POs one batch touches, and what deciding on them changed."""

    pos: dict[str, Po]
    now: datetime
    new_versions: dict[tuple[str, int], PoVersion] = field(default_factory=dict)
    changed_versions: dict[tuple[str, int], PoVersion] = field(default_factory=dict)
    changed_headers: set[str] = field(default_factory=set)
    new_early_approvals: list[EarlyApproval] = field(default_factory=list)
    # requisition_id → po_number: a PO naming a requisition converts it (first PO wins)
    conversions: dict[str, str] = field(default_factory=dict)

    def po(self, po_number: str) -> Po:
        return self.pos.setdefault(po_number, Po(po_number))

    def _put(self, v: PoVersion, *, new: bool = False) -> None:
        key = (v.po_number, v.version)
        self.po(v.po_number).versions[v.version] = v
        if new or key in self.new_versions:
            self.new_versions[key] = v
        else:
            self.changed_versions[key] = v

    # -- the rules ------------------------------------------------------------------------

    def issue(
        self, r: ReceivedVersion, max_amount: Decimal, event_id: str, authority: Authority
    ) -> PoDecision:
        t = r.terms
        reasons = sod_reasons_for_issue(r.created_by, r.approved_by)
        reasons += po_terms_reasons(t, max_amount)
        limit = authority.covering_limit(
            r.approved_by, "purchase_order", t.currency, t.business_unit, t.total
        )
        if limit is None and not reasons:
            reasons.append(
                authority_reason(r.approved_by, t.total, t.currency, t.business_unit, "purchase_order")
            )
        if t.version != 1:
            reasons.append(
                Reason("invalid_version", "version", "an issued PO is version 1; later ones are amendments")
            )
        po = self.po(t.po_number)
        if po.closed:
            reasons.append(Reason("po_closed", "po_number", f"PO {t.po_number} is closed"))
        if (again := _same_version_again(po, t.version, r.content_hash)) is not None:
            return again
        if reasons:
            return PoDecision(Outcome.REJECTED, reasons)
        at = utc(r.approved_at) if r.approved_at is not None else None
        received = self._received(r, "issued", "approved", r.approved_by, at, event_id)
        self._put(replace(received, approval_limit=limit.as_dict() if limit else None), new=True)
        newly = self._bring_into_force(po)
        return PoDecision(Outcome.IN_FORCE if newly else Outcome.WAITING, in_force=newly)

    def amend(
        self, r: ReceivedVersion, max_amount: Decimal, event_id: str, authority: Authority
    ) -> PoDecision:
        t = r.terms
        reasons = po_terms_reasons(t, max_amount)
        po = self.po(t.po_number)
        if po.closed:
            reasons.append(Reason("po_closed", "po_number", f"PO {t.po_number} is closed"))
        if (again := _same_version_again(po, t.version, r.content_hash)) is not None:
            if again.outcome is Outcome.DUPLICATE and is_independent_approval(
                r.amended_by or "", r.approved_by
            ):
                assert r.approved_by is not None
                # The same amendment re-sent with its approval: treat it as the approval.
                return self.approve(
                    t.po_number, t.version, r.approved_by, r.approved_at or self.now, event_id, authority
                )
            return again
        if po.in_force_version is not None and t.version <= po.in_force_version:
            reasons.append(
                Reason("version_conflict", "version", f"version {po.in_force_version} is in force")
            )
        if reasons:
            return PoDecision(Outcome.REJECTED, reasons)

        # SPEC §5 + §13.1: approved by someone other than the amender who has the authority for
        # the new version's total; else pending (an approval parked earlier may be the one).
        def authorised(approver: str | None) -> dict[str, Any] | None:
            if not is_independent_approval(r.amended_by or "", approver):
                return None
            limit = authority.covering_limit(approver, "purchase_order", t.currency, t.business_unit, t.total)
            return limit.as_dict() if limit is not None else None

        approved_by, approved_at = r.approved_by, r.approved_at
        limit = authorised(approved_by)
        if limit is None:
            approved_by, approved_at = None, None
            parked = sorted(
                (e for e in po.early_approvals if e.version == t.version), key=lambda e: e.approved_at
            )
            for early in parked:
                if (limit := authorised(early.approved_by)) is not None:
                    approved_by, approved_at = early.approved_by, early.approved_at
                    break
        independent = approved_by is not None
        status = "approved" if independent else "pending"
        at = utc(approved_at or self.now) if independent else None
        received = self._received(r, "amended", status, approved_by, at, event_id)
        self._put(replace(received, approval_limit=limit), new=True)
        newly = self._bring_into_force(po)
        if any(v.version.version == t.version for v in newly):
            outcome = Outcome.IN_FORCE
        else:
            outcome = Outcome.PENDING if not independent else Outcome.WAITING_FOR_PREDECESSOR
        return PoDecision(outcome, in_force=newly, pending=not independent)

    def approve(
        self,
        po_number: str,
        version: int,
        approved_by: str,
        approved_at: datetime,
        event_id: str,
        authority: Authority,
    ) -> PoDecision:
        po = self.po(po_number)
        row = po.versions.get(version)
        if row is None:
            # The approval overtook its amendment: keep it until the amendment arrives.
            early = EarlyApproval(po_number, version, approved_by, approved_at, event_id)
            if not any((e.version, e.approved_by) == (version, approved_by) for e in po.early_approvals):
                po.early_approvals.append(early)
                self.new_early_approvals.append(early)
            return PoDecision(Outcome.APPROVAL_WAITING_FOR_AMENDMENT)
        if row.kind != "amended":
            return PoDecision(
                Outcome.REJECTED, [Reason("invalid_version", "version", "version 1 is approved on issue")]
            )
        if row.status in ("in_force", "superseded", "approved"):
            return PoDecision(Outcome.DUPLICATE)
        if not is_independent_approval(row.amended_by or "", approved_by):
            reason = Reason(
                "sod_violation", "approved_by", "an amendment cannot be approved by its own author"
            )
            return PoDecision(Outcome.REJECTED, [reason])
        currency, unit, total = row.state["currency"], row.state["business_unit"], state_total(row.state)
        limit = authority.covering_limit(approved_by, "purchase_order", currency, unit, total)
        if limit is None:
            # SPEC §13.1: the amendment stays pending until someone with enough authority approves.
            reason = authority_reason(approved_by, total, currency, unit, "purchase_order")
            return PoDecision(Outcome.REJECTED, [reason])
        self._put(
            replace(
                row,
                approved_by=approved_by,
                approved_at=utc(approved_at),
                status="approved",
                approval_limit=limit.as_dict(),
            )
        )
        newly = self._bring_into_force(po)
        in_force = any(v.version.version == version for v in newly)
        return PoDecision(Outcome.IN_FORCE if in_force else Outcome.WAITING_FOR_PREDECESSOR, in_force=newly)

    def approve_amendment(
        self,
        po_number: str,
        version: int,
        approved_by: str,
        approved_at: datetime,
        event_id: str,
        authority: Authority,
    ) -> PoDecision:
        if self.po(po_number).closed:
            return PoDecision(
                Outcome.REJECTED, [Reason("po_closed", "po_number", f"PO {po_number} is closed")]
            )
        return self.approve(po_number, version, approved_by, approved_at, event_id, authority)

    def close(self, po_number: str, closed_by: str, reason: str) -> PoDecision:
        # Closing a PO intake has no version of yet is recorded too: a late issue is then
        # refused and matching never matches against it.
        po = self.po(po_number)
        if po.closed:
            return PoDecision(Outcome.DUPLICATE)
        po.closed_by, po.closed_reason, po.closed_at = closed_by, reason, self.now
        self.changed_headers.add(po_number)
        return PoDecision(Outcome.ACCEPTED, closed=True)

    # -- helpers ----------------------------------------------------------------------------

    def _received(
        self,
        r: ReceivedVersion,
        kind: str,
        status: str,
        approved_by: str | None,
        approved_at: datetime | None,
        event_id: str,
    ) -> PoVersion:
        return PoVersion(
            po_number=r.terms.po_number,
            version=r.terms.version,
            kind=kind,
            status=status,
            state=r.state,
            content_hash=r.content_hash,
            created_by=r.created_by,
            amended_by=r.amended_by,
            modification_id=r.modification_id,
            reason=r.reason,
            approved_by=approved_by,
            approved_at=approved_at,
            received_at=self.now,
            source_event_id=event_id,
        )

    def _bring_into_force(self, po: Po) -> list[VersionInForce]:
        """Put every version that may now be in force into force, strictly in order (SPEC §5)."""
        slots = {
            v: VersionSlot(v, row.amended_by if row.kind == "amended" else None, row.approved_by)
            for v, row in po.versions.items()
            if row.status in ("pending", "approved")
        }
        out: list[VersionInForce] = []
        for version in versions_coming_into_force(po.in_force_version, slots):
            row = po.versions[version]
            previous = po.versions.get(version - 1)
            if previous is not None and previous.status == "in_force":
                self._put(replace(previous, status="superseded", superseded_at=self.now))
            in_force = replace(
                row,
                status="in_force",
                in_force_since=self.now,
                previous_version=version - 1 if version > 1 else None,
                changes=po_changes(previous.state, row.state) if previous is not None else [],
                previous_sow_ref=previous.state.get("sow_ref") if previous is not None else None,
            )
            self._put(in_force)
            out.append(VersionInForce(in_force, previous))
            po.in_force_version = version
            self.changed_headers.add(po.po_number)
            if version == 1 and (requisition_id := row.state.get("requisition_id")):
                self.conversions.setdefault(requisition_id, po.po_number)
        return out


def utc(at: datetime) -> datetime:
    """A timestamp as it reads back from a timestamptz column (what is emitted must match)."""
    return at.astimezone(UTC)


def _same_version_again(po: Po, version: int, digest: str) -> PoDecision | None:
    """A version already received: the same content is a redelivery; different content a conflict."""
    row = po.versions.get(version)
    if row is None:
        return None
    if row.content_hash == digest:
        return PoDecision(Outcome.DUPLICATE)
    reason = Reason(
        "version_conflict", "version", f"PO {po.po_number} version {version} exists with other content"
    )
    return PoDecision(Outcome.REJECTED, [reason])
