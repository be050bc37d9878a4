"""The v1 envelope (SPEC §2): every record on every concord.* topic is one of these."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Envelope(BaseModel):
    """Unknown extra fields are ignored (SPEC §3), so upstream can add fields safely."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(min_length=1, max_length=128)
    event_type: str = Field(min_length=1, max_length=128)
    schema_version: int
    occurred_at: AwareDatetime
    source: str = Field(min_length=1, max_length=256)
    correlation_id: str | None = Field(default=None, max_length=256)
    causation_id: str | None = Field(default=None, max_length=256)
    data: dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def derived_event_id(*parts: str) -> str:
    """A deterministic id: re-running the same step after a crash yields the same event id,
    so downstream dedupe recognises it even if the first attempt reached the outbox."""
    return "evt_" + uuid.uuid5(uuid.NAMESPACE_URL, "concord:" + "|".join(parts)).hex


def new_envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    source: str,
    cause: Envelope | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """An outgoing envelope; keeps the upstream correlation id and names its cause (SPEC §2)."""
    return Envelope(
        event_id=event_id or new_event_id(),
        event_type=event_type,
        schema_version=SCHEMA_VERSION,
        occurred_at=occurred_at or utcnow(),
        source=source,
        correlation_id=(cause.correlation_id or cause.event_id) if cause else None,
        causation_id=cause.event_id if cause else None,
        data=data,
    )
