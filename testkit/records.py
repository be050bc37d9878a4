"""Records as a service's consumer receives them, without Kafka: for handler tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shared.consumer import RawRecord
from shared.envelope import new_envelope
from shared.outbox import OutboxMessage
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.topics import BY_NAME, Topic

_offsets: dict[tuple[str, int], int] = {}


def record(
    topic: Topic,
    event_type: str,
    data: dict[str, Any],
    *,
    key: str | None = None,
    event_id: str | None = None,
    partition: int = 0,
    settings: Settings | None = None,
    raw_value: bytes | None = None,
    signed: bool | None = None,
    occurred_at: datetime | None = None,
) -> RawRecord:
    """A record as the consumer would receive it; signed topics are signed with the default secrets.
    Keyed as a well-behaved producer keys it (the payload key field, SPEC §3–4) unless `key` is given.
    Offsets count up per topic partition, as a broker's do."""
    s = settings or Settings()
    if key is None:
        allowed = topic.allowed_keys(data)
        key = allowed[0] if allowed else ""
    env = new_envelope(event_type, data, source="test", event_id=event_id, occurred_at=occurred_at)
    value = raw_value if raw_value is not None else env.model_dump_json().encode()
    headers: list[tuple[str, bytes]] = [("content-type", b"application/json")]
    if topic.signed_by is not None and signed is not False:
        secret = s.rail_secret if topic.signed_by == "rail" else s.ops_secret
        headers.append((SIGNATURE_HEADER, sign(secret, value).encode()))
    name = s.topic(topic)
    offset = _offsets.get((name, partition), 0)
    _offsets[(name, partition)] = offset + 1
    return RawRecord(name, partition, offset, key.encode(), value, tuple(headers))


def forwarded(
    messages: Iterable[OutboxMessage], *topics: Topic, settings: Settings | None = None
) -> list[RawRecord]:
    """What a service published on `topics` (its outbox messages), as the next service's consumer
    receives it: the same key and the same bytes (event id, causes and all)."""
    s = settings or Settings()
    wanted = {t.name for t in topics}
    return [
        # With the headers the relay sends (trace context, `concord-event-type` on internal topics).
        dataclasses.replace(rec, headers=(*rec.headers, *((k, v.encode()) for k, v in m.headers.items())))
        for m in messages
        if s.unprefixed(m.topic) in wanted
        for rec in [
            record(
                BY_NAME[s.unprefixed(m.topic)],
                m.envelope.event_type,
                m.envelope.data,
                key=m.key,
                raw_value=m.value(),
                settings=s,
            )
        ]
    ]
