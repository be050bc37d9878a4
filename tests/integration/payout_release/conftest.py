"""What every payout_release handler test starts from: the handlers' clock stopped at T0 (a test
that moves it asks for `frozen_clock` and sets `frozen_clock.now`), and `pool`, a scratch database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from testkit.samples.payouts import T0
from tests.support import FrozenClock, freeze_clock, scratch_pool


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    return freeze_clock(monkeypatch, T0)


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("payout_release") as p:
        yield p
