"""TopicWatcher.wait_until: a wait that is not met fails there, saying what it waited for and what
it saw, instead of returning False for a caller to forget."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

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


def _record(
    value: bytes | None,
    offset: int = 0,
    key: bytes | None = b"k",
    headers: tuple[tuple[str, bytes], ...] = (),
) -> SimpleNamespace:
    return SimpleNamespace(
        topic="concord.matching.decisions",
        key=key,
        value=value,
        partition=0,
        offset=offset,
        timestamp=7,
        headers=headers,
    )


def test_a_watcher_keeps_each_event_once_and_passes_over_what_is_not_an_event() -> None:
    w = TopicWatcher(Settings(), ())
    told: list[str] = []
    w.on_seen = lambda seen: told.append(seen.event_type)  # type: ignore[method-assign]
    first = (
        b'{"event_id": "e1", "event_type": "invoice.held", "data": {"big": 123456789012345678901234567890}}'
    )
    for n, value in enumerate(
        [
            None,  # a tombstone
            b"not json",
            b"\xff\xfe",
            b"[1, 2]",  # JSON, not an envelope
            first,
            first,  # redelivered: one record per event_id, like a consumer
            b'{"event_id": "e2", "event_type": "invoice.approved_to_pay", "data": {}}',
        ]
    ):
        w.take(_record(value, offset=n))
    assert told == ["invoice.held", "invoice.approved_to_pay"]
    assert [(s.offset, s.key, s.timestamp_ms) for s in w.seen] == [(4, "k", 7), (6, "k", 7)]
    assert w.seen[0].data == {"big": 123456789012345678901234567890}  # exact past 64 bits


def test_a_listing_watcher_keeps_every_record_of_one_event_id() -> None:
    w = TopicWatcher(Settings(), (), dedupe=False)
    for n in range(2):
        w.take(_record(b'{"event_id": "e1", "event_type": "x"}', offset=n, key=None))
    assert [(s.offset, s.key) for s in w.seen] == [(0, None), (1, None)]


def test_a_watcher_of_some_types_passes_over_the_others_by_their_header_undecoded() -> None:
    w = TopicWatcher(Settings(), (), event_types=frozenset({"invoice.accepted"}))
    accepted = b'{"event_id": "e1", "event_type": "invoice.accepted", "data": {"invoice_id": "I1"}}'
    for n, (value, headers) in enumerate(
        [
            (accepted, (("content-type", b"application/json"), (EVENT_TYPE_HEADER, b"invoice.accepted"))),
            # Its header names a type not watched: passed over without its value being read (the
            # value says otherwise, to show that it is not).
            (accepted.replace(b"e1", b"e9"), ((EVENT_TYPE_HEADER, b"receipt.accepted"),)),
            # No header: decoded, and passed over by its envelope's type.
            (b'{"event_id": "e2", "event_type": "receipt.accepted", "data": {}}', ()),
            (b'{"event_id": "e3", "event_type": "invoice.accepted", "data": {"invoice_id": "I3"}}', ()),
        ]
    ):
        w.take(_record(value, offset=n, headers=headers))
    assert [(s.offset, s.data["invoice_id"]) for s in w.seen] == [(0, "I1"), (3, "I3")]
