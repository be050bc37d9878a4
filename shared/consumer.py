"""The idempotent consumer: one batch of records → one PostgreSQL transaction (SPEC §1 rules 1–5).

Per batch, in one transaction: already-processed event ids are skipped (inbox), each new record's
handler runs, the inbox rows and every outgoing event (outbox) are written; only after the commit
are the Kafka offsets committed. Every record is decoded here, on its own (key, headers, value):
one that cannot be read, is ambiguous or contradicts what its event_id stood for goes to the
deadletter topic with a reason code (SPEC §15) and never affects the rest of its batch. A batch
that fails is run again record by record, each in a savepoint, so a record that keeps failing is
deadlettered within milliseconds and never blocks its partition.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import asyncpg
import structlog
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from shared.contracts.inbound import DeadletterReplayRequested
from shared.contracts.outbound import DeadLetter, DeadletterReason
from shared.contracts.registry import EVENT_MODELS, TOPIC_EVENT_TYPES, spec_of
from shared.envelope import (
    EVENT_TYPE_HEADER,
    SCHEMA_VERSION,
    Envelope,
    UndecodableEnvelope,
    decode_envelope,
    derived_event_id,
    event_type_hints,
    new_envelope,
    payload_fingerprint,
)
from shared.inbox import InboxRow, write_inbox_and_outbox
from shared.metrics import DEADLETTERED, DEDUPE_HITS, EVENTS_PROCESSED, initialise_counters
from shared.outbox import OutboxMessage
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, verify
from shared.telemetry import (
    business_tags,
    context_from_headers,
    current_trace_headers,
    span_headers,
    tracer,
    unsampled_parent,
)
from shared.topics import BY_NAME, DEADLETTER, IN_COMMANDS, INTERNAL_TOPICS, OUT_REJECTIONS, Topic
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
DEADLETTER_EVENT_TYPE = "deadletter.recorded"
REPLAY_REQUESTED = "deadletter.replay_requested"
REJECTED_EVENT_TYPE = "document.rejected"
_BUSINESS_KEYS = (
    "invoice_id",
    "po_number",
    "payout_id",
    "payee_id",
    "receipt_id",
    "requisition_id",
    "override_id",
    "run_id",
    "flip_id",
    "account_id",
)


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...] = ()
    # Set when the record is a deadlettered record run again on an operator's signed
    # `deadletter.replay_requested` (SPEC §11): its own attempts, and its own deadletter entry
    # should it fail again.
    replay_id: str | None = None

    @property
    def key_text(self) -> str | None:
        """The key for logs, deadletter origins and rejections: never raises, never holds a NUL
        (PostgreSQL text cannot), whatever bytes the producer sent."""
        return _pg_text(self.key.decode("utf-8", "replace")) if self.key is not None else None

    @property
    def position(self) -> tuple[str, int, int, str]:
        return (self.topic, self.partition, self.offset, self.replay_id or "")

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace") if v is not None else None
        return None


def _pg_text(text: str) -> str:
    return text.replace("\x00", "\\u0000")


class PoisonRecord(Exception):
    """The record cannot be processed by any retry: it goes to the deadletter topic."""


@dataclass
class HandlerContext(UnitOfWork):
    """What a handler gets besides its typed payload: the transaction, the envelope, a way to emit."""

    envelope: Envelope = field(kw_only=True)
    record: RawRecord = field(kw_only=True)
    business_ref: str | None = None
    follow_ups: dict[str, FollowUp] = field(default_factory=dict, kw_only=True)

    def after_records(self, key: str, item: str, run: ItemsRun) -> None:
        """Run `run` once after every record of this batch, in the same transaction, for every
        item asked for under `key` (every PO of the batch that needs a rematch, say), so it can
        load what it needs for all of them at once.

        Records of one batch that ask for the same item (three documents of one PO) share it.
        `run` gets each item with the envelope of the last record that asked for it, in the
        order of their last ask; that envelope is the cause of what is done for the item. The
        run's span is a child of the last record that asked for anything under `key`."""
        span = trace.get_current_span().get_span_context()
        _ask(self.follow_ups, key, item, run, self.envelope, self.record, span)

    def reject(self, reasons: Sequence[dict[str, str]]) -> Envelope:
        """document.rejected on concord.out.rejections, keyed like the rejected record (SPEC §4)."""
        return _reject(self, self.record, self.envelope, reasons)


def _ask(
    follow_ups: dict[str, FollowUp],
    key: str,
    item: str,
    run: ItemsRun,
    envelope: Envelope,
    record: RawRecord,
    span: trace.SpanContext,
) -> None:
    earlier = follow_ups.pop(key, None)  # re-inserted last: follow-ups run in ask order
    items = earlier.items if earlier is not None else {}
    items.pop(item, None)
    items[item] = envelope

    async def run_all(uow: UnitOfWork) -> None:
        await run(uow, list(items.items()))

    follow_ups[key] = FollowUp(run_all, envelope, record, span, items)


def _reject(
    uow: UnitOfWork, record: RawRecord, envelope: Envelope, reasons: Sequence[dict[str, str]]
) -> Envelope:
    return uow.emit(
        OUT_REJECTIONS,
        record.key_text or envelope.event_id,
        REJECTED_EVENT_TYPE,
        {
            "rejected_event_id": envelope.event_id,
            "event_type": envelope.event_type,
            "reasons": [dict(r) for r in reasons],
        },
        event_id=derived_event_id("rejection", uow.service, envelope.event_id),
    )


def _span_of(headers: dict[str, str]) -> trace.SpanContext:
    return trace.get_current_span(context_from_headers(headers)).get_span_context()


Handler = Callable[[HandlerContext, Any], Awaitable[str | None]]
DeadletterReader = Callable[[int], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class FollowUp:
    run: Callable[[UnitOfWork], Awaitable[None]]
    cause: Envelope
    record: RawRecord
    span: trace.SpanContext
    # Each item asked for in the batch → the envelope of its last ask.
    items: dict[str, Envelope] = field(default_factory=dict)


ItemsRun = Callable[[UnitOfWork, Sequence[tuple[str, Envelope]]], Awaitable[None]]


@dataclass(frozen=True)
class Route(Generic[M]):
    model: type[M]
    handler: Handler
    batch: BatchHandler | None = None  # set: a run of the type's records arrives as one list (_runs)
    # Set: what a record of the type shares with the records it depends on in this service
    # (handles_batch's `order_keys`); None: it may depend on any record, and any on it.
    order_keys: Callable[[Any], Iterable[str]] | None = None


@dataclass
class Item(Generic[M]):
    """One record of a batch handler's run: its typed payload, where it came from, and what the
    handler made of it (`outcome`, from the service's own closed enum; stored in the inbox)."""

    data: M
    envelope: Envelope
    record: RawRecord
    trace_headers: dict[str, str]
    outcome: StrEnum | None = None
    business_ref: str | None = None


@dataclass
class BatchContext(UnitOfWork):
    """What a batch handler gets besides its items: the one transaction, the service's
    configuration (`config`), typed emission on behalf of an item, and batch follow-ups."""

    follow_ups: dict[str, FollowUp] = field(default_factory=dict, kw_only=True)

    def on_behalf_of(self, item: Item[Any]) -> UnitOfWork:
        """Emit as if `item` had been handled alone: its envelope is the cause of what is
        emitted (correlation, causation) and its trace continues in the emitted events."""
        return self.caused_by(item.envelope, item.trace_headers)

    def emit_for(
        self,
        item: Item[Any],
        event: BaseModel,
        *,
        key: str,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        return self.on_behalf_of(item).emit_event(event, key=key, event_id=event_id, occurred_at=occurred_at)

    def reject(self, item: Item[Any], reasons: Sequence[dict[str, str]]) -> Envelope:
        """document.rejected for `item` (SPEC §4); the item's outcome is up to the handler."""
        return _reject(self.on_behalf_of(item), item.record, item.envelope, reasons)

    def after_batch(self, key: str, subject: str, run: ItemsRun, *, cause: Item[Any]) -> None:
        """HandlerContext.after_records for a batch handler: `run` once after every record of the
        batch for every `subject` asked for under `key`, caused by the last item that asked."""
        _ask(self.follow_ups, key, subject, run, cause.envelope, cause.record, _span_of(cause.trace_headers))


BatchHandler = Callable[[BatchContext, list[Item[Any]]], Awaitable[None]]


class Router:
    """The event types a service handles; any other known type on its topics is acknowledged as ignored."""

    def __init__(self, service: str, topics: Sequence[Topic], *, reject_invalid_data: bool = False) -> None:
        self.service = service
        self.topics = tuple(topics)
        # Intake answers malformed documents with a rejection naming every bad field; the
        # other services only read what Concord itself wrote, so a malformed record there is poison.
        self.reject_invalid_data = reject_invalid_data
        # Called after such a rejection, in its transaction: intake answers an invalid invoice's
        # supplier with an Invoice Response `RE` too (SPEC §12.3).
        self.on_invalid_data: Callable[[UnitOfWork, Envelope, list[dict[str, str]]], None] | None = None
        self.routes: dict[str, Route[Any]] = {}
        self.emitted: dict[str, set[str]] = {}  # topic name → event types, for the AsyncAPI document
        # Every service writes what it cannot process to the deadletter topic (its reason codes
        # are part of the contract, so the AsyncAPI document shows them).
        self.emits(DEADLETTER, DEADLETTER_EVENT_TYPE)
        if IN_COMMANDS in self.topics:
            # Every service that reads commands replays its own deadletters (SPEC §11); the
            # processor runs it (it needs the processor itself), this route only declares it.
            self.routes[REPLAY_REQUESTED] = Route(DeadletterReplayRequested, _replayed_by_the_processor)

    def emits(self, topic: Topic, *event_types: str) -> None:
        """Declare what this service publishes; the AsyncAPI document is generated from it."""
        for event_type in event_types:
            EVENT_MODELS[event_type]  # fail at import on a typo
        self.emitted.setdefault(topic.name, set()).update(event_types)

    def handles_batch(
        self, model: type[M], *, order_keys: Callable[[M], Iterable[str]] | None = None
    ) -> Callable[[BatchHandler], BatchHandler]:
        """Register a batch handler by event class: every run of new records of its type in a
        batch (consecutive ones; with `order_keys`, see below, also later ones) arrives as one
        list, in offset order, so the handler can load what they need in a constant number of
        queries and write each table once. It must set every item's `outcome`; the result must
        equal handling the items one by one, in order. Registered for several classes, one
        function gets their records in one run.

        `order_keys`: the keys (say "po:" + its PO number) that a record of this type shares with
        every record of the batch it depends on in this service, or that depends on it. With it,
        the record may be handled before earlier records with none of its keys, so it can join
        an earlier run of its handler (see `_runs`); without it, records keep their order."""
        event_type = spec_of(model).type

        def register(fn: BatchHandler) -> BatchHandler:
            if event_type in self.routes:
                raise ValueError(f"{event_type} already has a handler in {self.service}")
            self.routes[event_type] = Route(model, _handled_in_batches, batch=fn, order_keys=order_keys)
            return fn

        return register

    def handles(self, event_type: str) -> Callable[[Handler], Handler]:
        model = EVENT_MODELS[event_type]

        def register(fn: Handler) -> Handler:
            if event_type in self.routes:
                raise ValueError(f"{event_type} already has a handler in {self.service}")
            self.routes[event_type] = Route(model, fn)
            return fn

        return register


def by_documents(data: Any) -> tuple[str, ...]:
    """`order_keys` for a record about one flow's documents: the PO (its `po` state's number, or
    a `po_number`), the receipt and the invoice it names ("po:…", "rcpt:…", "inv:…"; an invoice
    that replaces another names both). For a service where such a record depends only on records
    about the same documents, records of different flows may be grouped in a batch."""
    keys = []
    if (po := getattr(data, "po", None)) is not None:
        keys.append(f"po:{po.po_number}")
    for name, kind in _DOCUMENT_FIELDS:
        if isinstance(value := getattr(data, name, None), str):
            keys.append(f"{kind}:{value}")
    return tuple(keys)


_DOCUMENT_FIELDS = (
    ("po_number", "po"),
    ("receipt_id", "rcpt"),
    ("invoice_id", "inv"),
    ("replaces_invoice_id", "inv"),
)


async def _replayed_by_the_processor(ctx: HandlerContext, data: Any) -> str | None:
    raise AssertionError("deadletter.replay_requested is handled by BatchProcessor._replay")


async def _handled_in_batches(ctx: HandlerContext, data: Any) -> str | None:
    raise AssertionError("a batch route is run by BatchProcessor._handle_batch")


def pydantic_reasons(exc: ValidationError) -> list[dict[str, str]]:
    reasons = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        code = "missing_field" if err["type"] == "missing" else "invalid_field"
        reasons.append({"code": code, "field": loc, "message": err["msg"]})
    return reasons


@dataclass
class _Parsed:
    record: RawRecord
    envelope: Envelope | None = None
    fingerprint: str | None = None
    route: Route[Any] | None = None
    data: BaseModel | None = None
    invalid_data: ValidationError | None = None
    poison: str | None = None
    reason: DeadletterReason | None = None
    # The event type its `concord-event-type` header names, when that type is one of its topic's
    # that this service does not handle: acknowledged as ignored, never decoded, no inbox row.
    skipped: str | None = None

    def refuse(self, reason: DeadletterReason, message: str) -> _Parsed:
        self.reason, self.poison = reason, message
        return self


@dataclass
class BatchResult:
    handled: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0
    deadlettered: int = 0
    outbox: list[OutboxMessage] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.handled += other.handled
        self.duplicates += other.duplicates
        self.ignored += other.ignored
        self.rejected += other.rejected
        self.deadlettered += other.deadlettered
        self.outbox.extend(other.outbox)


def is_connection_failure(exc: BaseException) -> bool:
    """The database or the network is away or unwell — nothing about any record: the batch is
    rewound and redelivered later, and no record is charged an attempt for it."""
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.CannotConnectNowError
        | asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    )


def is_conflict(exc: BaseException) -> bool:
    """Two transactions collided — a deadlock, a serialization failure, a lock not granted — which
    says nothing about any record: PostgreSQL asks for the transaction to be run again. Retried in a
    fresh transaction after a pause, never charged to a record (SPEC §15: only a record that itself
    fails may be deadlettered; a valid rail answer deadlettered for a deadlock left its payout
    `released` for ever)."""
    return isinstance(exc, asyncpg.TransactionRollbackError | asyncpg.LockNotAvailableError)


def retry_later(exc: BaseException) -> bool:
    """Roll the batch back, rewind and redeliver it after a back-off, charging no record."""
    return is_connection_failure(exc) or is_conflict(exc)


def _undecodable(raw: bytes, exc: UnicodeDecodeError) -> str:
    return f"byte 0x{raw[exc.start]:02x} at {exc.start} is not UTF-8"


def _batchable(p: _Parsed) -> bool:
    return (
        p.route is not None
        and p.route.batch is not None
        and p.invalid_data is None
        and p.envelope is not None
        and p.envelope.event_type != REPLAY_REQUESTED
    )


def _same_handler(p: _Parsed, q: _Parsed) -> bool:
    assert p.route is not None and q.route is not None
    return p.route.batch is q.route.batch


def _order_keys(p: _Parsed) -> frozenset[str] | None:
    """What `p` may depend on, or what may depend on it, in its service (None: anything)."""
    if not _batchable(p):
        return None
    assert p.route is not None
    if p.route.order_keys is None:
        return None
    return frozenset(p.route.order_keys(p.data))


def _joins(p: _Parsed, run: list[_Parsed]) -> bool:
    return _batchable(run[0]) and _same_handler(p, run[0])


def _runs(parsed: list[_Parsed]) -> list[list[_Parsed]]:
    """The batch's records as runs, each run one batch handler's records (a handler registered
    for several event classes gets them together), or one record alone.

    A record whose route declares `order_keys` joins the first run of its handler that comes
    after every run holding a record it shares a key with; one whose route does not is a
    barrier: nothing moves past it either way. So for any two records that share a key (and for
    a barrier and anything) the earlier one is handled first, in an earlier run or earlier in the
    same run, and the handlers see what they would have seen one by one. Records that share no
    key are independent by the route's declaration; grouping them makes a mixed batch (a PO, a
    receipt and an invoice of each of many flows, interleaved) a few long runs instead of one run
    per record, each of which cost the handler's statements again."""
    runs: list[list[_Parsed]] = []
    last_of_key: dict[str, int] = {}  # key → the last run holding a record with it
    barrier = -1  # the last run holding a barrier
    for p in parsed:
        keys = _order_keys(p)
        last = runs[-1] if runs else None
        if keys is None:
            if last is not None and _batchable(p) and _joins(p, last):
                last.append(p)
            else:
                runs.append([p])
            barrier = len(runs) - 1
            continue
        floor = max([barrier, *(last_of_key.get(k, -1) for k in keys)])
        at = next((i for i in range(max(floor, 0), len(runs)) if _joins(p, runs[i])), None)
        if at is None:
            runs.append([p])
            at = len(runs) - 1
        else:
            runs[at].append(p)
        for k in keys:
            if last_of_key.get(k, -1) < at:
                last_of_key[k] = at
    return runs


def _in_batch_order(
    new: list[_Parsed], runs: list[list[_Parsed]], emitted: list[list[OutboxMessage]]
) -> list[OutboxMessage]:
    """What the runs emitted, in the order handling `new` one by one emits it: by the record that
    caused each message (its envelope's causation id), each record's own messages in the order
    they were emitted. A message whose cause is not a record of its run goes with the run's last
    record in the batch."""
    position = {id(p): n for n, p in enumerate(new)}
    keyed: list[tuple[int, int, OutboxMessage]] = []
    for run, messages in zip(runs, emitted, strict=True):
        by_event = {p.envelope.event_id: position[id(p)] for p in run if p.envelope is not None}
        last = max(position[id(p)] for p in run)
        for m in messages:
            keyed.append((by_event.get(m.envelope.causation_id or "", last), len(keyed), m))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [m for _, _, m in keyed]


def _header_text(rec: RawRecord) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in rec.headers if v}


# A topic as parsing sees it: its unprefixed name, whether it is internal (its records carry the
# event-type header), its declaration (None: not a concord.* topic) and the event types it carries.
_TopicOf = tuple[str, bool, Topic | None, frozenset[str] | None]


class BatchProcessor:
    def __init__(self, router: Router, settings: Settings) -> None:
        self.router = router
        self.settings = settings
        self.service = router.service
        initialise_counters(self.service)
        # In-memory attempt counts: a restart gives a failing record a fresh set of retries,
        # which is what an operator who just deployed a fix wants.
        self._attempts: dict[tuple[str, int, int, str], tuple[int, str]] = {}
        # Reads one entry of concord.deadletter by offset (the envelope as a dict, or None);
        # set by the Kafka wiring, so `deadletter.replay_requested` can be served.
        self.deadletter_reader: DeadletterReader | None = None
        # The service's typed configuration, loaded once at start (Service(config=…)).
        self.config: Any = None
        # EVENTS_PROCESSED's child per (event type, outcome): `labels()` costs 2 µs a record
        # (a lock and a tuple), the child's `inc()` a quarter of that. Bounded: known event types
        # and the handlers' closed outcome enums.
        self._processed_counters: dict[tuple[str, str], Any] = {}
        self._topics: dict[str, _TopicOf] = {}

    def _processed(self, event_type: str, outcome: str) -> Any:
        counter = self._processed_counters.get((event_type, outcome))
        if counter is None:
            counter = EVENTS_PROCESSED.labels(self.service, event_type, outcome)
            self._processed_counters[(event_type, outcome)] = counter
        return counter

    # -- parsing: pure, never touches the database ------------------------------------------
    def parse(self, record: RawRecord) -> _Parsed:
        """Decode one record — key, headers, value — on its own: whatever bytes it holds, the
        worst outcome is a deadletter entry for this record, never an exception for its batch."""
        try:
            return self._parse(record)
        except Exception as exc:  # a decoder's bug must not take the batch down with it
            return _Parsed(record).refuse(
                DeadletterReason.INVALID_ENVELOPE, f"undecodable record: {type(exc).__name__}: {exc}"[:500]
            )

    def _parse(self, record: RawRecord) -> _Parsed:
        parsed = _Parsed(record)
        if record.key is not None:
            try:
                record.key.decode("utf-8")
            except UnicodeDecodeError as exc:
                return parsed.refuse(
                    DeadletterReason.UNDECODABLE_KEY, f"key: {_undecodable(record.key, exc)}"
                )
        for name, raw_header in record.headers:
            if raw_header is None:
                continue
            try:
                raw_header.decode("utf-8")
            except UnicodeDecodeError as exc:
                return parsed.refuse(
                    DeadletterReason.UNDECODABLE_HEADER,
                    f"header {name[:100]!r}: {_undecodable(raw_header, exc)}",
                )
        topic_name, internal, topic, allowed = self._topic_of(record.topic)
        hints = event_type_hints(record.headers) if internal else ()
        if len(hints) == 1 and record.replay_id is None and self._skips(topic_name, hints[0]):
            parsed.skipped = hints[0]
            return parsed
        if topic is not None and topic.signed_by is not None:
            secret = self.settings.rail_secret if topic.signed_by == "rail" else self.settings.ops_secret
            signature = record.header(SIGNATURE_HEADER)
            if not verify(secret, record.value, signature):
                return parsed.refuse(
                    DeadletterReason.BAD_SIGNATURE,
                    f"{SIGNATURE_HEADER} header {'missing' if not signature else 'invalid'}",
                )
        try:
            parsed.envelope = env = decode_envelope(record.value)
        except UndecodableEnvelope as exc:
            return parsed.refuse(DeadletterReason(exc.reason), str(exc))
        parsed.fingerprint = payload_fingerprint(env)
        if env.schema_version != SCHEMA_VERSION:
            return parsed.refuse(
                DeadletterReason.UNSUPPORTED_SCHEMA_VERSION,
                f"unsupported schema_version {env.schema_version} for {env.event_type}",
            )
        if env.event_type not in EVENT_MODELS or (allowed is not None and env.event_type not in allowed):
            return parsed.refuse(
                DeadletterReason.UNKNOWN_EVENT_TYPE,
                f"unknown event_type {env.event_type!r} on {record.topic}",
            )
        if any(hint != env.event_type for hint in hints):  # a header must never hide a record
            return parsed.refuse(
                DeadletterReason.EVENT_TYPE_HEADER_MISMATCH,
                f"{EVENT_TYPE_HEADER} header {next(h for h in hints if h != env.event_type)[:128]!r} "
                f"is not the envelope's event_type {env.event_type!r}",
            )
        if topic is not None and (keys := topic.allowed_keys(env.data)) is not None:
            key = record.key.decode("utf-8") if record.key is not None else None
            if key not in keys:
                return parsed.refuse(
                    DeadletterReason.KEY_MISMATCH,
                    f"record key {key!r} is not the payload's {' or '.join(repr(k) for k in keys)}"[:500],
                )
        parsed.route = self.router.routes.get(env.event_type)
        if parsed.route is None:
            return parsed  # known, not ours: acknowledged as ignored
        try:
            parsed.data = parsed.route.model.model_validate(env.data)
        except ValidationError as exc:
            if self.router.reject_invalid_data:
                parsed.invalid_data = exc
            else:
                parsed.refuse(
                    DeadletterReason.INVALID_DATA,
                    f"invalid {env.event_type} data: "
                    + "; ".join(f"{r['field']}: {r['message']}" for r in pydantic_reasons(exc)[:10]),
                )
        return parsed

    def _topic_of(self, full_name: str) -> _TopicOf:
        """What parsing needs to know of a record's topic, looked up once per topic name (every
        record asked four tables, two of them after stripping the prefix)."""
        known = self._topics.get(full_name)
        if known is None:
            name = self.settings.unprefixed(full_name)
            known = (name, name in INTERNAL_TOPICS, BY_NAME.get(name), TOPIC_EVENT_TYPES.get(name))
            self._topics[full_name] = known
        return known

    def _skips(self, topic_name: str, event_type: str) -> bool:
        """Whether a record whose header names `event_type` may be acknowledged undecoded: a type
        of its topic's (so a consumer that handles it reads it in full: every type of an internal
        topic has one) that this service does not handle. SPEC §15's `event_id_conflict` is about
        not applying a changed payload: a skipped record is never applied here, and the services
        that apply it still decode it, fingerprint it and see the conflict."""
        return event_type not in self.router.routes and event_type in TOPIC_EVENT_TYPES.get(
            topic_name, frozenset()
        )

    # -- one transaction ---------------------------------------------------------------------
    def parse_all(self, records: Sequence[RawRecord]) -> list[_Parsed]:
        return [self.parse(r) for r in records]

    @staticmethod
    def all_skipped(parsed: Sequence[_Parsed]) -> bool:
        """Nothing in the batch to look up or to write: it needs no transaction."""
        return all(p.skipped is not None for p in parsed)

    async def process(
        self,
        conn: asyncpg.Connection | None,
        records: Sequence[RawRecord],
        parsed: list[_Parsed] | None = None,
    ) -> BatchResult:
        """Run inside an open transaction; raises to roll the whole batch back. `parsed`: the
        records already parsed (parse_all); a batch all_skipped needs no connection."""
        result = BatchResult()
        kept: list[_Parsed] = []
        for p in parsed if parsed is not None else map(self.parse, records):
            if p.skipped is None:
                kept.append(p)
                continue
            result.ignored += 1  # counted as the ignored records with an inbox row are
            self._processed(p.skipped, "ignored").inc()
        if not kept:  # nothing to look up or to write
            return result
        assert conn is not None, "a batch with records to handle needs a transaction"
        parsed = kept
        for p in parsed:
            if p.poison is None and self._out_of_attempts(p.record):
                _, last_error = self._attempts[p.record.position]
                p.refuse(
                    DeadletterReason.HANDLER_FAILED,
                    f"handler failed {self.settings.handler_max_attempts} times: {last_error}",
                )
        ids = [
            p.envelope.event_id if p.poison is None and p.envelope is not None else self._poison_key(p.record)
            for p in parsed
        ]
        # A join, not `= ANY($1)`: a plan cached while the table was small stays a sequential
        # scan comparing every row with every id (pg_stat_statements under the benchmark: 27 ms a
        # batch at 9,000 rows, where the batch's other statements took 1–3 ms).
        # event_id → the fingerprint of what it stood for (None: not known, or a poison key).
        seen: dict[str, str | None] = {
            r["event_id"]: r["payload_hash"]
            for r in await conn.fetch(
                """SELECT event_id, payload_hash
                     FROM inbox JOIN unnest($1::text[]) AS batch(event_id) USING (event_id)""",
                ids,
            )
        }
        inbox_rows: list[InboxRow] = []
        follow_ups: dict[str, FollowUp] = {}
        new: list[_Parsed] = []  # records to handle, in offset order
        for p in parsed:
            rec = p.record
            env = p.envelope
            if p.poison is None and env is not None and env.event_id in seen:
                known = seen[env.event_id]
                if known is None or known == p.fingerprint:
                    result.duplicates += 1
                    DEDUPE_HITS.labels(self.service).inc()
                    continue
                p.refuse(
                    DeadletterReason.EVENT_ID_CONFLICT,
                    f"event_id {env.event_id!r} was processed before with a different payload",
                )
            if p.poison is not None:
                key = self._poison_key(rec)
                if key in seen:
                    result.duplicates += 1
                    continue
                seen[key] = None
                result.outbox.append(self._deadletter(p))
                inbox_rows.append(
                    (
                        key,
                        _pg_text(env.event_type if env else "unreadable"),
                        rec.topic,
                        rec.partition,
                        rec.offset,
                        rec.key_text,
                        "deadlettered",
                        None,
                    )
                )
                result.deadlettered += 1
                DEADLETTERED.labels(self.service).inc()
                log.warning(
                    "record_deadlettered",
                    topic=rec.topic,
                    partition=rec.partition,
                    offset=rec.offset,
                    reason=p.reason,
                    error=p.poison,
                )
                continue
            assert env is not None
            seen[env.event_id] = p.fingerprint
            new.append(p)
        runs = _runs(new)
        regrouped = any(p is not q for p, q in zip((p for run in runs for p in run), new, strict=True))
        emitted: list[list[OutboxMessage]] = []
        for run in runs:
            emitted_from = len(result.outbox)
            for p, outcome, business_ref in await self._handle_run(conn, run, follow_ups, result):
                env, rec = p.envelope, p.record
                assert env is not None
                inbox_rows.append(
                    (
                        env.event_id,
                        env.event_type,
                        rec.topic,
                        rec.partition,
                        rec.offset,
                        business_ref,
                        outcome,
                        p.fingerprint,
                    )
                )
                self._processed(env.event_type, outcome).inc()
                if outcome == "ignored":
                    result.ignored += 1
                elif outcome == "rejected":
                    result.rejected += 1
                else:
                    result.handled += 1
            emitted.append(result.outbox[emitted_from:])
        if regrouped:  # what the runs emitted goes out in the order one by one would send it
            before = len(result.outbox) - sum(len(e) for e in emitted)
            result.outbox[before:] = _in_batch_order(new, runs, emitted)
        for key, follow_up in follow_ups.items():
            result.outbox.extend(await self._follow_up(conn, key, follow_up))
        # Handed to this process's relay once the batch's transaction commits (BatchConsumer).
        await write_inbox_and_outbox(conn, inbox_rows, result.outbox, handed_off=True)
        return result

    async def _handle_run(
        self,
        conn: asyncpg.Connection,
        run: list[_Parsed],
        follow_ups: dict[str, FollowUp],
        result: BatchResult,
    ) -> list[tuple[_Parsed, str, str | None]]:
        """Handle one run of records (`_runs`): a batch route's records, or one record."""
        first = run[0]
        if _batchable(first):
            return await self._handle_batch(conn, run, follow_ups, result)
        outcome, business_ref, emitted = await self._handle_one(conn, first, follow_ups)
        result.outbox.extend(emitted)
        return [(first, outcome, business_ref)]

    async def _handle_batch(
        self,
        conn: asyncpg.Connection,
        run: list[_Parsed],
        follow_ups: dict[str, FollowUp],
        result: BatchResult,
    ) -> list[tuple[_Parsed, str, str | None]]:
        route = run[0].route
        assert route is not None and route.batch is not None
        spans: list[trace.Span] = []
        items: list[Item[Any]] = []
        for p in run:
            env, rec = p.envelope, p.record
            assert env is not None
            headers = _header_text(rec)
            passed_on = unsampled_parent(headers)
            if passed_on is not None:  # sampled out upstream: no span would record anything
                items.append(Item(p.data, env, rec, passed_on))
                continue
            span = tracer().start_span(
                f"{self.service} handle {env.event_type}",
                context=context_from_headers(headers),
                kind=trace.SpanKind.CONSUMER,
            )
            if span.is_recording():  # attributes only for a span that keeps them
                span.set_attributes(
                    {
                        "messaging.destination.name": rec.topic,
                        "concord.event_id": env.event_id,
                        "concord.business_ref": _business_ref(env.data) or "",
                        **business_tags(env.data),
                    }
                )
            spans.append(span)
            items.append(Item(p.data, env, rec, span_headers(span)))
        ctx = BatchContext(conn, self.settings, self.service, config=self.config, follow_ups=follow_ups)
        try:
            await route.batch(ctx, items)
        finally:
            for span in spans:
                span.end()
        result.outbox.extend(ctx.outbox)
        out: list[tuple[_Parsed, str, str | None]] = []
        for p, item in zip(run, items, strict=True):
            if not isinstance(item.outcome, StrEnum):
                raise TypeError(
                    f"{self.service}: the {item.envelope.event_type} handler left {item.envelope.event_id} "
                    f"without an outcome from its enum (got {item.outcome!r})"
                )
            out.append((p, item.outcome.value, item.business_ref or _business_ref(item.envelope.data)))
        return out

    async def process_isolated(self, conn: asyncpg.Connection, records: Sequence[RawRecord]) -> BatchResult:
        """After `process` failed for a batch: each record in a savepoint of its own, retried at
        once until it passes or has failed `handler_max_attempts` times, then deadlettered
        (SPEC §15). One bad record costs its partition milliseconds of retries, not the whole
        batch's worth of backed-off redeliveries per attempt (107 s for five bad records in v1).

        Only a lost connection or a collision with another transaction (`retry_later`) escapes:
        the batch is redelivered later. Retried here, a collision would meet the locks this
        transaction already holds for the records before it, every time. Any other error —
        constraint, data, a handler's bug — counts against the one record."""
        total = BatchResult()
        for rec in records:
            while True:
                try:
                    async with conn.transaction():
                        total.add(await self.process(conn, [rec]))
                    break
                except Exception as exc:
                    if retry_later(exc) or self._out_of_attempts(rec):
                        raise  # out of attempts yet failing: the deadletter itself cannot be written
                    self._count_attempt(rec, exc)
                    log.warning(
                        "record_failed",
                        topic=rec.topic,
                        partition=rec.partition,
                        offset=rec.offset,
                        error=f"{type(exc).__name__}: {exc}"[:500],
                    )
        return total

    async def _follow_up(self, conn: asyncpg.Connection, key: str, f: FollowUp) -> list[OutboxMessage]:
        uow = UnitOfWork(conn, self.settings, self.service, cause=f.cause, config=self.config)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(f.span))
        with tracer().start_as_current_span(f"{self.service} {key.split(':', 1)[0]}", context=parent):
            await f.run(uow)
        return uow.outbox

    async def _handle_one(
        self, conn: asyncpg.Connection, p: _Parsed, follow_ups: dict[str, FollowUp]
    ) -> tuple[str, str | None, list[OutboxMessage]]:
        env, rec = p.envelope, p.record
        assert env is not None
        business_ref = _business_ref(env.data)
        if p.route is None:  # known, not ours (payout_release reads every invoice.accepted): no context
            return "ignored", business_ref, []
        ctx = HandlerContext(
            conn,
            self.settings,
            self.service,
            cause=env,
            config=self.config,
            envelope=env,
            record=rec,
            follow_ups=follow_ups,
        )
        if p.invalid_data is not None:
            reasons = pydantic_reasons(p.invalid_data)
            ctx.reject(reasons)
            if self.router.on_invalid_data is not None:
                self.router.on_invalid_data(ctx, env, reasons)
            return "rejected", business_ref, ctx.outbox
        if env.event_type == REPLAY_REQUESTED:
            assert isinstance(p.data, DeadletterReplayRequested)
            # What the replayed record emitted is written already; passed on with this batch's
            # outbox (its second insert does nothing) so that it is handed to the relay with it.
            outcome, replayed = await self._replay(conn, p.data)
            return outcome, f"replay_id={p.data.replay_id}", replayed
        parent = context_from_headers(_header_text(rec))
        with tracer().start_as_current_span(
            f"{self.service} handle {env.event_type}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.destination.name": rec.topic,
                "concord.event_id": env.event_id,
                "concord.business_ref": business_ref or "",
                **business_tags(env.data),
            },
        ):
            structlog.contextvars.bind_contextvars(event_id=env.event_id, event_type=env.event_type)
            try:
                outcome = await p.route.handler(ctx, p.data) or "applied"
            finally:
                structlog.contextvars.unbind_contextvars("event_id", "event_type")
        return outcome, ctx.business_ref or business_ref, ctx.outbox

    async def _replay(
        self, conn: asyncpg.Connection, command: DeadletterReplayRequested
    ) -> tuple[str, list[OutboxMessage]]:
        """Run a deadlettered record again — original key, headers and bytes, through this
        service's own handlers — if this service deadlettered it (SPEC §11). Every service that
        reads commands sees the command; all but the owner answer `not_ours`. The inbox keeps it
        exactly-once: a record applied by an earlier replay is a duplicate now, and one that
        fails again gets a deadletter entry of its own (with the replay_id)."""
        if self.deadletter_reader is None:
            return "not_ours", []
        entry = await self.deadletter_reader(command.deadletter_offset)
        dead = self._own_deadletter(entry)
        if isinstance(dead, str):
            log.info(
                "replay_not_ours", replay_id=command.replay_id, offset=command.deadletter_offset, why=dead
            )
            return "not_ours", []
        origin = dead.origin
        record = RawRecord(
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            key=origin.key.encode() if origin.key is not None else None,
            value=base64.b64decode(dead.value_base64),
            headers=tuple((k, v.encode()) for k, v in dead.headers.items()),
            replay_id=command.replay_id,
        )
        async with conn.transaction():
            result = await self.process(conn, [record])
        log.info(
            "deadletter_replayed",
            replay_id=command.replay_id,
            offset=command.deadletter_offset,
            handled=result.handled,
            duplicates=result.duplicates,
            deadlettered=result.deadlettered,
        )
        return "replayed", result.outbox

    def _own_deadletter(self, entry: dict[str, Any] | None) -> DeadLetter | str:
        """The entry as the contract's DeadLetter if this service wrote it for a topic it reads;
        else why not."""
        if entry is None or entry.get("event_type") != DEADLETTER_EVENT_TYPE:
            return "no deadletter entry at that offset"
        if entry.get("source") != self.service:
            return f"deadlettered by {str(entry.get('source'))[:100]!r}"
        try:
            dead = DeadLetter.model_validate(entry.get("data"))
            base64.b64decode(dead.value_base64, validate=True)
        except (ValidationError, ValueError) as exc:
            return f"not a readable deadletter entry: {str(exc)[:200]}"
        topic = self.settings.unprefixed(dead.origin.topic)
        if topic not in {t.name for t in self.router.topics}:
            return f"origin {topic} is not consumed here"
        return dead

    def _out_of_attempts(self, rec: RawRecord) -> bool:
        attempts, _ = self._attempts.get(rec.position, (0, ""))
        return attempts >= self.settings.handler_max_attempts

    def _count_attempt(self, rec: RawRecord, exc: BaseException) -> None:
        count, _ = self._attempts.get(rec.position, (0, ""))
        self._attempts[rec.position] = (count + 1, f"{type(exc).__name__}: {exc}"[:500])

    def forget_attempts(self, records: Sequence[RawRecord]) -> None:
        for r in records:
            self._attempts.pop(r.position, None)

    def _poison_key(self, rec: RawRecord) -> str:
        replay = f":replay:{rec.replay_id}" if rec.replay_id else ""
        return f"poison:{rec.topic}:{rec.partition}:{rec.offset}{replay}"

    def _deadletter(self, p: _Parsed) -> OutboxMessage:
        rec = p.record
        assert p.poison is not None and p.reason is not None
        data = {
            "origin": {
                "topic": rec.topic,
                "partition": rec.partition,
                "offset": rec.offset,
                "key": rec.key_text,
            },
            "reason": p.reason.value,
            "error": p.poison,
            "value_base64": base64.b64encode(rec.value).decode(),
            "headers": {k: (v.decode("utf-8", "replace") if v else "") for k, v in rec.headers},
        }
        if rec.replay_id:
            data["replay_id"] = rec.replay_id
        env = new_envelope(
            DEADLETTER_EVENT_TYPE,
            data,
            source=self.service,
            # The same bad record read by several services is one deadletter entry, not three.
            event_id=derived_event_id("deadletter", *_deadletter_id_parts(rec)),
        )
        return OutboxMessage(
            self.settings.topic(DEADLETTER), rec.key_text or "", env, current_trace_headers()
        )


def _deadletter_id_parts(rec: RawRecord) -> tuple[str, ...]:
    parts = (rec.topic, str(rec.partition), str(rec.offset))
    return (*parts, "replay", rec.replay_id) if rec.replay_id else parts


def _business_ref(data: dict[str, Any]) -> str | None:
    for key in _BUSINESS_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value:
            return f"{key}={value}"
    return None
