"""The five services as OS processes on real Kafka and PostgreSQL, each with its own scratch database
that it migrates as its owner role and runs on as its runtime role, as in production (SPEC §11)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest

from shared.services import SERVICES
from shared.settings import Settings
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings, running
from tests.support import scratch_service_database


@dataclass
class Stack:
    settings: Settings
    processes: dict[str, ServiceProcess]
    dsns: dict[str, str]  # concord_admin's, for the tests' own reading


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    # Scheduled payout runs are pushed far out: the tests request their runs explicitly.
    # A payout-account change cools off in seconds (SPEC §13.3; the demo waits for it).
    settings = isolated_settings(
        payout_run_interval_s=3600, relay_poll_interval_s=0.1, account_change_cooling_off_hours=0.002
    )
    async with running_stack(settings) as s:
        yield s


@asynccontextmanager
async def running_stack(settings: Settings) -> AsyncIterator[Stack]:
    """The five services as processes on `settings`' own topic set and scratch databases."""
    await create_topics(settings)
    async with AsyncExitStack() as exit_stack:
        exit_stack.push_async_callback(delete_topics, settings)  # last, once everything has stopped
        dbs = {
            name: await exit_stack.enter_async_context(scratch_service_database(name)) for name in SERVICES
        }
        dsns = {name: db.admin for name, db in dbs.items()}
        processes = {
            name: ServiceProcess(f"services.{name}", settings.model_copy(update=dbs[name].settings()), name)
            for name in SERVICES
        }
        async with running(processes.values()):
            yield Stack(settings, processes, dsns)
