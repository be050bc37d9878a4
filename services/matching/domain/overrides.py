"""Overrides (SPEC §6): who may release which queue (`Roles`) and the decision on a request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.matching.domain.documents import HoldKey
from services.matching.domain.holds import StoredHold
from services.matching.domain.policy import overridable
from shared.text import same_person

# --- overrides (SPEC §6) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """person → queues they may release; "*" grants every matching queue."""

    grants: Mapping[str, frozenset[str]]

    def may_release(self, person: str, queue: str) -> bool:
        # The roles file and the override may spell one person differently (SPEC §15).
        queues = next((q for p, q in self.grants.items() if same_person(p, person)), frozenset())
        return "*" in queues or queue in queues


@dataclass(frozen=True)
class OverrideRequest:
    override_id: str
    invoice_id: str
    hold_reasons: tuple[str, ...] | None  # None: "all"
    reason_code: str
    requested_by: str
    approved_by: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class OverrideDecision:
    accepted: bool
    reasons: tuple[str, ...] = ()  # why it was refused
    scope: frozenset[HoldKey] = frozenset()


def decide_override(
    req: OverrideRequest, open_holds: list[StoredHold] | None, superseded: bool, roles: Roles
) -> OverrideDecision:
    """Accepted only when approver ≠ requester, the approver holds a role for every named hold's
    queue, evidence is given and every named hold is open and overridable; otherwise refused with
    every reason, releasing nothing. `open_holds` is None when the invoice is unknown."""
    reasons: list[str] = []
    if open_holds is None:
        return OverrideDecision(False, ("invoice_unknown",))
    if superseded:
        reasons.append("invoice_superseded")
    if same_person(req.approved_by, req.requested_by):
        reasons.append("approver_is_requester")
    if not any(e.strip() for e in req.evidence):
        reasons.append("evidence_missing")
    if req.hold_reasons == ():
        # SPEC §15: an override that names no hold releases nothing; say so rather than accept it.
        return OverrideDecision(False, ("no_hold_reasons",))
    if req.hold_reasons is None:
        named = list(open_holds)
        if not named:
            reasons.append("no_open_holds")
    else:
        named = [h for h in open_holds if h.reason in req.hold_reasons]
        open_reasons = {h.reason for h in open_holds}
        reasons += [f"hold_not_open:{r}" for r in sorted(set(req.hold_reasons) - open_reasons)]
    for h in sorted(named, key=lambda h: (h.reason, h.line_id or "")):
        if not overridable(h.reason, h.action):
            reasons.append(f"not_overridable:{h.reason}")
    for queue in sorted({h.queue for h in named}):
        if not roles.may_release(req.approved_by, queue):
            reasons.append(f"approver_lacks_role:{queue}")
    if reasons:
        return OverrideDecision(False, tuple(dict.fromkeys(reasons)))
    return OverrideDecision(True, (), frozenset(h.key for h in named))
