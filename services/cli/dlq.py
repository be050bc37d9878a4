"""The deadletter topic, read and replayed by an operator."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from services.cli.watch import TopicWatcher
from shared.publish import Publisher
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.topics import BY_NAME, DEADLETTER


@dataclass(frozen=True)
class DeadLetterEntry:
    event_id: str
    occurred_at: str
    origin: dict[str, Any]
    error: str
    value: bytes
    headers: dict[str, str]


class ReplayRefused(Exception):
    pass


async def read_deadletters(settings: Settings, *, wait_s: float = 1.5) -> list[DeadLetterEntry]:
    watcher = TopicWatcher(settings, (DEADLETTER,), from_beginning=True)
    await watcher.start()
    try:
        await watcher.wait_until(lambda: False, wait_s)  # read whatever is there
    finally:
        await watcher.stop()
    return [
        DeadLetterEntry(
            event_id=s.envelope["event_id"],
            occurred_at=s.envelope.get("occurred_at", ""),
            origin=s.data["origin"],
            error=s.data["error"],
            value=base64.b64decode(s.data.get("value_base64") or ""),
            headers=dict(s.data.get("headers") or {}),
        )
        for s in watcher.of("deadletter.recorded")
    ]


async def replay(settings: Settings, entry: DeadLetterEntry, fixed_value: bytes | None = None) -> str:
    """Publish the record again to its origin topic, as it was or with a fixed value.

    The consumer's inbox makes a replay safe: an event already processed is skipped, so replaying
    twice processes a record once. A fixed command is re-signed with the ops secret; a fixed rail
    event cannot be (only the rail holds the rail's word), so it is refused.
    """
    origin_topic = settings.unprefixed(entry.origin["topic"])
    topic = BY_NAME.get(origin_topic)
    if topic is None:
        raise ReplayRefused(f"origin topic {entry.origin['topic']} is not a Concord topic")
    value = fixed_value if fixed_value is not None else entry.value
    headers = {k: v for k, v in entry.headers.items() if k != SIGNATURE_HEADER}
    if topic.signed_by is not None:
        if fixed_value is not None and topic.signed_by == "rail":
            raise ReplayRefused(
                "a changed rail event must be sent again by the rail; it cannot be re-signed here"
            )
        if fixed_value is not None:
            headers[SIGNATURE_HEADER] = sign(settings.ops_secret, value)
        elif SIGNATURE_HEADER in entry.headers:
            headers[SIGNATURE_HEADER] = entry.headers[SIGNATURE_HEADER]
    async with Publisher(settings, source="concord-cli") as pub:
        await pub.publish_raw(topic, entry.origin.get("key") or "", value, headers)
    return settings.topic(topic)
