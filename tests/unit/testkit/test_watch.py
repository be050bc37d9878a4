"""TopicWatcher.wait_until: a wait that is not met fails there, saying what it waited for and what
it saw, instead of returning False for a caller to forget."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from shared.envelope import EVENT_TYPE_HEADER
from shared.settings import Settings
from testkit.watch import Seen, TopicWatcher, WaitTimedOut


def watcher_that_saw(*event_types: str) -> TopicWatcher:
    w = TopicWatcher(Settings(), ())
    w.seen.extend(Seen("concord.matching.decisions", "k", {"event_type": t}) for t in event_types)
    return w


async def test_a_wait_not_met_raises_naming_what_it_waited_for_and_what_it_saw() -> None:
    w = watcher_that_saw("invoice.held", "invoice.held", "invoice.approved_to_pay")
    with pytest.raises(TimeoutError) as raised:
        await w.wait_until(lambda: False, 0.3, "every invoice approved")
    assert isinstance(raised.value, WaitTimedOut)
    assert str(raised.value) == (
        "waited 0.3s for every invoice approved; saw invoice.approved_to_pay ×1, invoice.held ×2"
    )


async def test_a_wait_on_a_watcher_that_saw_nothing_says_so() -> None:
    with pytest.raises(WaitTimedOut, match=r"for a payout released; saw nothing$"):
        await watcher_that_saw().wait_until(lambda: False, 0.1, "a payout released")


async def test_a_wait_met_late_returns_once_the_condition_holds() -> None:
    w = watcher_that_saw()
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, lambda: w.seen.append(Seen("t", "k", {"event_type": "payout.released"})))
    await w.wait_until(lambda: bool(w.of("payout.released")), 5, "a payout released")
    assert [s.event_type for s in w.seen] == ["payout.released"]


# --- what a watcher takes of a fetched record ------------------------------------------------


@dataclass
class Fetched:
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    topic: str = "concord.intake.documents"
    key: bytes | None = b"PO-1"
    partition: int = 0
    offset: int = 7
    timestamp: int = 1_700_000_000_000


def record(event_type: str, event_id: str = "evt_1", header: str | None = None, **data: Any) -> Fetched:
    value = json.dumps({"event_id": event_id, "event_type": event_type, "data": data}).encode()
    return Fetched(value, ((EVENT_TYPE_HEADER, header.encode()),) if header else ())


def test_a_record_is_taken_as_its_envelope_with_its_position() -> None:
    seen = TopicWatcher(Settings(), ()).take(record("invoice.accepted", invoice_id="INV-1"))
    assert seen == Seen(
        "concord.intake.documents",
        "PO-1",
        {"event_id": "evt_1", "event_type": "invoice.accepted", "data": {"invoice_id": "INV-1"}},
        0,
        7,
        1_700_000_000_000,
    )


def test_a_redelivered_event_is_taken_once_unless_the_watcher_keeps_every_record() -> None:
    deduping, every = TopicWatcher(Settings(), ()), TopicWatcher(Settings(), (), dedupe=False)
    for w in (deduping, every):
        w.seen.extend(s for s in map(w.take, [record("x.y"), record("x.y")]) if s is not None)
    assert (len(deduping.seen), len(every.seen)) == (1, 2)


def test_only_the_wanted_types_are_parsed_judged_by_their_header() -> None:
    w = TopicWatcher(Settings(), (), event_types=frozenset({"invoice.accepted"}))
    # Not parsed at all: a value that is no JSON shows it.
    assert w.take(Fetched(b"not json", ((EVENT_TYPE_HEADER, b"receipt.accepted"),))) is None
    wanted = w.take(record("invoice.accepted", header="invoice.accepted"))
    assert wanted is not None and wanted.event_type == "invoice.accepted"
    # Without the header (a topic the relays do not label), the record is parsed and kept.
    unlabelled = w.take(record("receipt.accepted", event_id="evt_2"))
    assert unlabelled is not None and unlabelled.event_type == "receipt.accepted"


def test_values_the_fast_parser_refuses_are_read_as_the_stdlib_reads_them() -> None:
    w = TopicWatcher(Settings(), ())
    lone = w.take(Fetched(b'{"event_id": "e", "event_type": "t", "data": {"name": "\\ud800"}}'))
    assert lone is not None and lone.data == {"name": "\ud800"}
    utf16 = w.take(Fetched('{"event_id": "f", "event_type": "t"}'.encode("utf-16")))
    assert utf16 is not None and utf16.envelope["event_id"] == "f"
    assert [w.take(Fetched(v)) for v in (b"not json", b"[1, 2]", None)] == [None, None, None]
