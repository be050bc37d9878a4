"""Watching topics as an outsider would: what the CLI, the demo, the end-to-end tests, the chaos
run and the benchmark see. From "now" on by default, or from the beginning."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.admin import admin_settings
from shared.db import loads_jsonb
from shared.envelope import event_type_hints
from shared.kafka_auth import client_options
from shared.settings import Settings
from shared.topics import Topic


def reader_settings(settings: Settings) -> Settings:
    """Who watches (SPEC §11): the settings' principal (the CLI reads as `ops`: out.* and the
    deadletter). Without one — the demo and the end-to-end tests on the local stack, which narrate
    internal topics too — as admin."""
    return settings if settings.kafka_username else admin_settings(settings)


class WaitTimedOut(TimeoutError):
    """A watcher's wait was not met in time; the message says what it waited for and what it saw."""


@dataclass
class Seen:
    topic: str
    key: str | None
    envelope: dict[str, Any]
    partition: int = 0
    offset: int = -1
    timestamp_ms: int = -1  # the record's Kafka timestamp (its producer's clock when it was sent)

    @property
    def event_type(self) -> str:
        return str(self.envelope.get("event_type"))

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.envelope.get("data") or {})


@dataclass
class TopicWatcher:
    """Collects every record published on some topics after `start()` (or all of them,
    `from_beginning`); dedupes by event_id like a consumer. `on_seen` is called for each new one.
    With `survive_errors` a failed poll is counted (`errors`) and retried, never fatal: a watcher
    that must outlive broker restarts (the chaos run's)."""

    settings: Settings
    topics: tuple[Topic, ...]
    from_beginning: bool = False
    # Like a consumer, one record per event_id; the deadletter listing wants every record, as one
    # bad record read by several services is one entry id written by each of them.
    dedupe: bool = True
    survive_errors: bool = False
    max_poll_records: int | None = None
    # More AIOKafkaConsumer options (e.g. fetch_min_bytes / fetch_max_wait_ms for a reader that
    # may wait for fuller fetches).
    consumer_options: dict[str, Any] = field(default_factory=dict)
    # Only these event types (None: all). A record whose `concord-event-type` header names another
    # type is passed over without decoding its value; one without the header is decoded and kept
    # or passed over by its envelope's event_type.
    event_types: frozenset[str] | None = None
    seen: list[Seen] = field(default_factory=list)
    errors: int = 0
    _ids: set[str] = field(default_factory=set)

    async def start(self) -> None:
        options: dict[str, Any] = dict(self.consumer_options)
        if self.max_poll_records is not None:
            options["max_poll_records"] = self.max_poll_records
        self._consumer = AIOKafkaConsumer(
            **client_options(reader_settings(self.settings)),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
            **options,
        )
        await self._consumer.start()
        partitions: list[TopicPartition] = []
        for topic in self.topics:
            name = self.settings.topic(topic)
            reported = self._consumer.partitions_for_topic(name) or await self._partitions(name)
            # From the beginning, the topic's declared partitions too: the metadata of a topic
            # created a moment ago may not list them all yet (the chaos run starts so).
            declared = set(range(topic.partitions)) if self.from_beginning else set()
            partitions.extend(TopicPartition(name, p) for p in sorted(set(reported) | declared))
        self._consumer.assign(partitions)
        if self.from_beginning:
            await self._consumer.seek_to_beginning(*partitions)
        else:
            await self._consumer.seek_to_end(*partitions)
            for tp in partitions:  # resolve the positions now, before anything is published
                await self._consumer.position(tp)
        self._task = asyncio.create_task(self._poll())

    async def _partitions(self, name: str) -> set[int]:
        await self._consumer._client.force_metadata_update()
        return self._consumer.partitions_for_topic(name) or set()

    def on_seen(self, seen: Seen) -> None:
        """Called for each new record, in arrival order; for subclasses."""

    async def _poll(self) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=200)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not self.survive_errors:
                    raise
                self.errors += 1
                await asyncio.sleep(1)
                continue
            for records in batch.values():
                for r in records:
                    self.take(r)

    def take(self, r: Any) -> None:
        """One fetched record (an aiokafka ConsumerRecord): kept and passed to `on_seen` if it is
        a JSON object not seen before; a tombstone, a value that is not JSON or not an object, or
        (with `dedupe`) an event_id already seen is passed over, and so is a record of a type
        not in `event_types`."""
        wanted = self.event_types
        if wanted is not None and any(t not in wanted for t in event_type_hints(r.headers or ())):
            return
        try:  # json.loads' values at C speed (json.loads was a fifth of the bench driver's CPU)
            env = loads_jsonb(r.value)
        except ValueError:
            return
        if not isinstance(env, dict):  # a tombstone (None) included
            return
        if wanted is not None and env.get("event_type") not in wanted:
            return
        event_id = str(env.get("event_id"))
        if self.dedupe and event_id in self._ids:
            return
        self._ids.add(event_id)
        key = r.key.decode("utf-8", "replace") if r.key else None
        seen = Seen(r.topic, key, env, r.partition, r.offset, r.timestamp)
        self.seen.append(seen)
        self.on_seen(seen)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        # A broker that went away mid-watch must not turn what was seen into a crash.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self._consumer.stop()

    def of(self, event_type: str, where: Callable[[dict[str, Any]], bool] | None = None) -> list[Seen]:
        return [s for s in self.seen if s.event_type == event_type and (where is None or where(s.data))]

    def of_many(self, event_types: tuple[str, ...]) -> list[Seen]:
        return [s for s in self.seen if s.event_type in event_types]

    async def wait_until(
        self, condition: Callable[[], bool], timeout_s: float, what: str, *, settle_s: float = 0.0
    ) -> None:
        """Wait until `condition()` holds, then `settle_s` more for what follows it to arrive.
        Raises WaitTimedOut (a TimeoutError) naming `what` (e.g. "every invoice decided") and what
        was seen meanwhile when it does not hold within `timeout_s`: a wait that was not met never
        passes for one that was."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() >= deadline:
                raise WaitTimedOut(f"waited {timeout_s:g}s for {what}; saw {self.summary()}")
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle_s)

    async def collect_for(self, seconds: float) -> None:
        """Keep collecting for `seconds`, waiting for nothing in particular: whatever is there (or
        arrives meanwhile) is in `seen` afterwards."""
        await asyncio.sleep(seconds)

    def summary(self) -> str:
        """What was seen so far, by event type (and the failed polls, if any)."""
        counts = Counter(s.event_type for s in self.seen)
        seen = ", ".join(f"{event_type} ×{n}" for event_type, n in sorted(counts.items())) or "nothing"
        return seen + (f" ({self.errors} failed polls)" if self.errors else "")
