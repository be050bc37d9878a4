"""What intake made of a record: the closed set stored in the inbox and used as a metric label."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"  # the same document again under a new event id: acknowledged, nothing emitted
    IN_FORCE = "in_force"
    WAITING = "waiting"
    PENDING = "pending"
    WAITING_FOR_PREDECESSOR = "waiting_for_predecessor"
    APPROVAL_WAITING_FOR_AMENDMENT = "approval_waiting_for_amendment"
