"""Who may write and read each topic (SPEC §11): the one ACL matrix, and how it is put on the broker.

The deploy scripts apply it for the real topic names (`python -m shared.admin ensure-security`); the
tests apply the same matrix to their own prefixed topic sets. Kafka's StandardAuthorizer enforces it
(`allow.everyone.if.no.acl.found=false`, `admin` the only super user): a forged internal event is
refused by the broker before any service sees it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from shared import topics as t
from shared.services import SERVICES
from shared.settings import RUNS_AS
from shared.topics import ALL_TOPICS, Topic

EXTERNAL = ("upstream", "rail", "ops", "observer")
ADMIN = "admin"
PRINCIPALS = (*SERVICES, *EXTERNAL, ADMIN)

INBOUND = tuple(x for x in ALL_TOPICS if x.name.startswith("concord.in."))
OUTBOUND = (*(x for x in ALL_TOPICS if x.name.startswith("concord.out.")), t.OUT_INVOICE_RESPONSES)

# principal → (may write, may read); every service may also write and read the deadletter topic.
MATRIX: dict[str, tuple[tuple[Topic, ...], tuple[Topic, ...]]] = {
    "intake": (
        (t.INTAKE_DOCUMENTS, t.OUT_REJECTIONS, t.OUT_INVOICE_RESPONSES),
        (t.IN_REQUISITIONS, t.IN_PURCHASE_ORDERS, t.IN_RECEIPTS, t.IN_INVOICES, t.IN_COMMANDS),
    ),
    "matching": (
        (t.MATCHING_DECISIONS, t.OUT_EXCEPTIONS, t.OUT_INVOICE_RESPONSES),
        (t.INTAKE_DOCUMENTS, t.IN_COMMANDS),
    ),
    # out.rejections: a refused payee.payout_account_confirmed (SPEC §13.3) is document.rejected.
    "compliance_gate": ((t.COMPLIANCE_ELIGIBILITY, t.OUT_REJECTIONS), (t.IN_PAYEES, t.IN_COMMANDS)),
    "payout_release": (
        (t.OUT_PAYOUTS, t.PAYOUTS_EVENTS, t.OUT_EXCEPTIONS, t.OUT_INVOICE_RESPONSES),
        (
            t.MATCHING_DECISIONS,
            t.COMPLIANCE_ELIGIBILITY,
            t.INTAKE_DOCUMENTS,
            t.IN_FUNDING,
            t.IN_RAIL_EVENTS,
            t.IN_COMMANDS,
        ),
    ),
    "ledger": (
        (t.OUT_JOURNAL,),
        (
            t.INTAKE_DOCUMENTS,
            t.MATCHING_DECISIONS,
            t.OUT_PAYOUTS,
            t.PAYOUTS_EVENTS,
            t.IN_FUNDING,
            t.COMPLIANCE_ELIGIBILITY,
            t.IN_COMMANDS,
        ),
    ),
    "upstream": (
        (t.IN_REQUISITIONS, t.IN_PURCHASE_ORDERS, t.IN_RECEIPTS, t.IN_INVOICES, t.IN_PAYEES, t.IN_FUNDING),
        (t.OUT_REJECTIONS, t.OUT_EXCEPTIONS, t.OUT_INVOICE_RESPONSES),
    ),
    "rail": ((t.IN_RAIL_EVENTS,), (t.OUT_PAYOUTS,)),
    # ops writes commands, and every other in.* topic for deadletter replay.
    "ops": (INBOUND, (*OUTBOUND, t.DEADLETTER)),
    "observer": ((), (*OUTBOUND, t.DEADLETTER)),
}
for _service in SERVICES:
    _w, _r = MATRIX[_service]
    MATRIX[_service] = ((*_w, t.DEADLETTER), (*_r, t.DEADLETTER))


# The bank gateway (SPEC §12.4) runs on the shared consumer as principal `rail`: like every Concord
# process it deadletters what it cannot process, so `rail` may write the deadletter topic too (it
# reads nothing more: a rail event's origin is the rail, never replayed by a service).
MATRIX["rail"] = ((*MATRIX["rail"][0], t.DEADLETTER), MATRIX["rail"][1])


def may_write(principal: str, topic: Topic) -> bool:
    return principal == ADMIN or topic in MATRIX.get(principal, ((), ()))[0]


def may_read(principal: str, topic: Topic) -> bool:
    return principal == ADMIN or topic in MATRIX.get(principal, ((), ()))[1]


def writer_of(topic: Topic) -> str:
    """The principal that publishes onto a topic in normal operation: the external system for an
    inbound topic, else the first service that owns it."""
    if topic == t.IN_COMMANDS:
        return "ops"
    if topic == t.IN_RAIL_EVENTS:
        return "rail"
    if topic in INBOUND:
        return "upstream"
    for service in SERVICES:
        if topic in MATRIX[service][0]:
            return service
    raise ValueError(f"no principal writes {topic.name}")


def consumer_group(service: str, prefix: str = "") -> str:
    # A Concord process that runs as an external principal (the bank gateway as `rail`) consumes in a
    # group under that principal's `<principal>.` prefix, which its ACLs already allow.
    if service in RUNS_AS:
        return f"{prefix}{RUNS_AS[service]}.concord-{service}"
    return f"{prefix}concord-{service}"


Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["WRITE", "READ"]


@dataclass(frozen=True, order=True)
class Grant:
    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def __str__(self) -> str:
        star = "*" if self.pattern == "prefixed" else ""
        return f"User:{self.principal} {self.operation} {self.resource}:{self.name}{star}"


def grants(prefix: str = "") -> list[Grant]:
    """Every ALLOW binding of the matrix for a topic set (WRITE and READ imply DESCRIBE in Kafka)."""
    out: set[Grant] = set()
    for principal, (writes, reads) in MATRIX.items():
        for topic in writes:
            out.add(Grant(principal, "topic", prefix + topic.name, "literal", "WRITE"))
        for topic in reads:
            out.add(Grant(principal, "topic", prefix + topic.name, "literal", "READ"))
        if principal in SERVICES:
            out.add(Grant(principal, "group", consumer_group(principal, prefix), "literal", "READ"))
        elif reads:
            out.add(Grant(principal, "group", f"{prefix}{principal}.", "prefixed", "READ"))
    return sorted(out)


def local_password(principal: str) -> str:
    """Local stack only (the production guard refuses these): `local-dev-<name>`, unless
    CONCORD_KAFKA_PASSWORD_<NAME> says otherwise."""
    return os.environ.get(f"CONCORD_KAFKA_PASSWORD_{principal.upper()}", f"local-dev-{principal}")


def describe(items: Iterable[Grant]) -> str:
    return "\n".join(str(g) for g in items)
