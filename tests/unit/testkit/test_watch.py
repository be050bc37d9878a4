"""TopicWatcher.wait_until: a wait that is not met fails there, saying what it waited for and what
it saw, instead of returning False for a caller to forget."""

from __future__ import annotations

import asyncio

import pytest

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
