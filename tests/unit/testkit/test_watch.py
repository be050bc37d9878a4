"""TopicWatcher.wait_until: a wait that is not met fails there, saying what it waited for and what
it saw, instead of returning False for a caller to forget."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from shared.db import loads_jsonb
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


@pytest.mark.parametrize(
    "value",
    [
        b'{"event_type": "payout.released", "data": {"amount": "12.50", "n": 3, "f": 1.5}}',
        b'{"a": 1, "a": 2}',  # a repeated key: the last wins, as json.loads has it
        b'{"big": 123456789012345678901234567890}',  # past 64 bits: exact, not a float
        b'{"x": NaN}',
        b'{"s": "\\ud800"}',  # a lone surrogate
        '{"name": "M\u00fcller \u00e9"}'.encode(),
    ],
)
def test_a_watched_value_decodes_as_json_loads_reads_it(value: bytes) -> None:
    got, want = loads_jsonb(value), json.loads(value)
    if "x" in want:  # NaN is not equal to itself
        assert math.isnan(got["x"])
    else:
        assert got == want


@pytest.mark.parametrize("value", [b"not json", b"\xff\xfe", b""])
def test_a_watched_value_neither_parser_reads_is_a_value_error_the_watcher_skips(value: bytes) -> None:
    with pytest.raises(ValueError):
        loads_jsonb(value)
