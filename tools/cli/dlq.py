"""The deadletter topic, read and replayed by an operator (SPEC §11: no back door).

A record whose origin is an inbound topic (`concord.in.*`) is published again by the CLI, which
may write every inbound topic as `ops`. A record of an internal topic (intake.documents,
matching.decisions, …) is never written back by anyone but its owner: the CLI sends a signed
`deadletter.replay_requested` and the service that deadlettered it runs the original bytes
through the same handler; the inbox keeps it exactly-once.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from shared.publish import Publisher
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.topics import BY_NAME, DEADLETTER, IN_COMMANDS, Topic
from testkit.watch import TopicWatcher

REPLAY_REQUESTED = "deadletter.replay_requested"


@dataclass(frozen=True)
class DeadLetterEntry:
    event_id: str
    occurred_at: str
    origin: dict[str, Any]
    error: str
    value: bytes
    headers: dict[str, str]
    offset: int = -1  # on concord.deadletter: what a replay request names
    source: str = ""  # the service that deadlettered it
    reason: str = ""


class ReplayRefused(Exception):
    pass


async def read_deadletters(settings: Settings, *, wait_s: float = 1.5) -> list[DeadLetterEntry]:
    watcher = TopicWatcher(settings, (DEADLETTER,), from_beginning=True, dedupe=False)
    await watcher.start()
    try:
        await watcher.collect_for(wait_s)  # read whatever is there
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
            offset=s.offset,
            source=str(s.envelope.get("source") or ""),
            reason=str(s.data.get("reason") or ""),
        )
        for s in watcher.of("deadletter.recorded")
    ]


def is_inbound(topic: Topic) -> bool:
    return topic.name.startswith("concord.in.")


async def replay(
    settings: Settings,
    entry: DeadLetterEntry,
    fixed_value: bytes | None = None,
    *,
    requested_by: str = "concord-cli",
) -> str:
    """Replay one deadletter entry; returns where it went.

    Inbound origin: published again to its topic, as it was or with a fixed value (keyed by the
    fixed payload's key field, so a fix of that field is not refused as `key_mismatch`). A fixed
    command is re-signed with the ops secret; a fixed rail event cannot be (only the rail holds
    the rail's word), so it is refused. Internal origin: a signed `deadletter.replay_requested`
    for the service that deadlettered it; a fixed value is refused (only the owner writes it).
    The consumers' inbox makes a replay safe: replaying twice processes a record once.
    """
    topic = BY_NAME.get(settings.unprefixed(entry.origin["topic"]))
    if topic is None:
        raise ReplayRefused(f"origin topic {entry.origin['topic']} is not a Concord topic")
    if not is_inbound(topic):
        if fixed_value is not None:
            raise ReplayRefused(
                f"{topic.name} is written by its owner alone: a record of it is replayed as it was, "
                "by the service that deadlettered it, never with a changed value"
            )
        return await request_replay(settings, entry, requested_by)
    return await republish(settings, topic, entry, fixed_value)


async def request_replay(settings: Settings, entry: DeadLetterEntry, requested_by: str) -> str:
    if entry.offset < 0:
        raise ReplayRefused("the deadletter entry's offset is unknown")
    replay_id = f"rpl_{uuid.uuid4().hex}"
    data = {"replay_id": replay_id, "deadletter_offset": entry.offset, "requested_by": requested_by}
    async with Publisher(settings, source="concord-cli") as pub:
        await pub.publish_event(IN_COMMANDS, replay_id, REPLAY_REQUESTED, data)
    return f"{entry.source or 'its service'} (signed {REPLAY_REQUESTED} {replay_id})"


async def republish(
    settings: Settings, topic: Topic, entry: DeadLetterEntry, fixed_value: bytes | None
) -> str:
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
    key = _key_of(topic, value) if fixed_value is not None else None
    async with Publisher(settings, source="concord-cli") as pub:
        await pub.publish_raw(topic, key or entry.origin.get("key") or "", value, headers)
    return settings.topic(topic)


def _key_of(topic: Topic, value: bytes) -> str | None:
    try:
        data = json.loads(value).get("data")
    except (ValueError, AttributeError):
        return None
    allowed = topic.allowed_keys(data) if isinstance(data, dict) else None
    return allowed[0] if allowed else None
