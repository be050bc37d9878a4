"""A unit of work: one transaction that holds the state change and every event it emits (outbox)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from shared.contracts.registry import spec_of
from shared.envelope import EVENT_TYPE_HEADER, Envelope, new_envelope, utcnow
from shared.outbox import OutboxMessage
from shared.settings import Settings
from shared.telemetry import current_trace_headers
from shared.topics import INTERNAL_TOPICS, Topic


@dataclass
class UnitOfWork:
    conn: asyncpg.Connection
    settings: Settings
    service: str
    cause: Envelope | None = None
    outbox: list[OutboxMessage] = field(default_factory=list)
    # The service's configuration object, loaded once at start (Service(config=…)).
    config: Any = None
    # The trace context emitted events carry; None: the current span's.
    trace_headers: dict[str, str] | None = None

    def caused_by(self, cause: Envelope, trace_headers: dict[str, str] | None = None) -> UnitOfWork:
        """The same transaction and outbox, with another cause: a batch follow-up acting for one of
        its items emits as if that item's last record had asked alone."""
        return UnitOfWork(
            self.conn,
            self.settings,
            self.service,
            cause=cause,
            outbox=self.outbox,
            config=self.config,
            trace_headers=trace_headers,
        )

    @property
    def now(self) -> datetime:
        return utcnow()

    def emit(
        self,
        topic: Topic,
        key: str,
        event_type: str,
        data: BaseModel | dict[str, Any],
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        """Queue an outgoing event; it is written to the outbox in this unit of work's transaction.

        Pass a deterministic event_id (shared.envelope.derived_event_id) when the same business
        step could run twice (a periodic task after a crash): the outbox's unique event_id and
        downstream dedupe then make the second run a no-op.
        """
        payload = data.model_dump(mode="json", exclude_none=True) if isinstance(data, BaseModel) else data
        out = new_envelope(
            event_type,
            payload,
            source=self.service,
            cause=self.cause,
            event_id=event_id,
            occurred_at=occurred_at,
        )
        headers = self.trace_headers if self.trace_headers is not None else current_trace_headers()
        if topic.name in INTERNAL_TOPICS:  # a reader that does not handle the type skips the record
            headers = {**headers, EVENT_TYPE_HEADER: event_type}
        self.outbox.append(OutboxMessage(self.settings.topic(topic), key, out, headers))
        return out

    def emit_event(
        self,
        event: BaseModel,
        *,
        key: str,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        """Queue a typed event: its class names its event type and topic (shared.contracts)."""
        spec = spec_of(event)
        return self.emit(spec.topic, key, spec.type, event, event_id=event_id, occurred_at=occurred_at)
