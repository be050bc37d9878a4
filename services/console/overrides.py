"""Maker-checker for overrides (SPEC §14.2), as pure rules: who may approve or decline a request,
and what a request must carry. No I/O here; app.py loads the facts and acts on the verdict."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.matching.domain import Roles
from shared.text import same_person

REQUEST_ID = re.compile(r"^ovr-[0-9a-f]{16}$")
REASON_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_JUSTIFICATION = 2000
MAX_EVIDENCE = 10


@dataclass(frozen=True)
class OpenHold:
    reason: str
    queue: str
    overridable: bool


@dataclass(frozen=True)
class Draft:
    request_id: str
    invoice_id: str
    hold_reasons: tuple[str, ...]
    reason_code: str
    justification: str
    evidence: tuple[str, ...]


def evidence_lines(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def problems_with_request(draft: Draft, open_holds: Sequence[OpenHold] | None) -> list[str]:
    """Every reason a request cannot be stored; empty when it can. `open_holds` is None when the
    invoice is unknown to matching."""
    if not REQUEST_ID.match(draft.request_id):
        return ["The form was altered (its request id is not one the console issued); open the hold again."]
    if open_holds is None:
        return [f"No invoice with id {draft.invoice_id!r} is known to matching."]
    problems: list[str] = []
    by_reason = {h.reason: h for h in open_holds}
    if not draft.hold_reasons:
        problems.append("Choose at least one hold to release.")
    for reason in draft.hold_reasons:
        hold = by_reason.get(reason)
        if hold is None:
            problems.append(
                f"The hold {reason!r} is not open on invoice {draft.invoice_id} "
                "(already released, or never opened): nothing to override."
            )
        elif not hold.overridable:
            problems.append(f"The hold {reason!r} cannot be released by override (it needs a correction).")
    if not REASON_CODE.match(draft.reason_code):
        problems.append("The reason code must be a short code of lower-case letters, digits and _.")
    if not draft.justification.strip():
        problems.append("A justification is required.")
    elif len(draft.justification) > MAX_JUSTIFICATION:
        problems.append(f"The justification is longer than {MAX_JUSTIFICATION} characters.")
    if not draft.evidence:
        problems.append("At least one evidence link is required (one per line).")
    elif len(draft.evidence) > MAX_EVIDENCE:
        problems.append(f"At most {MAX_EVIDENCE} evidence links.")
    return problems


def problems_with_decision(
    person: str, requested_by: str, queues: Iterable[str], roles: Roles, *, verb: str
) -> list[str]:
    """Why `person` may not approve (or decline) a request; empty when they may. Approving needs
    another person than the requester, holding a role for the queue of every named hold."""
    problems: list[str] = []
    if same_person(person, requested_by):
        problems.append(f"You cannot {verb} your own request: another person with the queue's role must.")
    lacking = sorted(q for q in set(queues) if not roles.may_release(person, q))
    if lacking:
        problems.append(
            f"You cannot {verb} this request: you hold no role for the queue {', '.join(lacking)} "
            "(see the roles file)."
        )
    return problems
