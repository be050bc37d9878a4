"""Runs one Concord service: migrations, the batch consumer, the outbox relay, periodic tasks, health."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from faststream import FastStream
from faststream.specification import AsyncAPI

from shared.acl import consumer_group
from shared.consumer import Router
from shared.db import DatabaseUnreachable, connect, create_pool, migrate
from shared.health import HealthServer
from shared.kafka import BatchConsumer, make_broker
from shared.kafka_auth import KafkaAuthConfigError, KafkaRightsMissing, missing_rights
from shared.outbox import OutboxMessage, OutboxRelay, make_producer, prune_published, write_outbox
from shared.production import guard_process, signing_secrets
from shared.settings import Settings, get_settings
from shared.telemetry import configure_logging, configure_tracing, tracer
from shared.topics import BY_NAME, DEADLETTER
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

RIGHTS_RECHECKS = 5  # one a second: how long a missing Kafka right may be a propagation delay

TaskFn = Callable[[UnitOfWork], Awaitable[None]]
ReadyCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class PeriodicTask:
    """Runs in its own transaction under an advisory lock, so only one instance runs it at a time."""

    name: str
    interval_s: Callable[[Settings], float]
    run: TaskFn


class Service:
    def __init__(
        self,
        router: Router,
        migrations: Path,
        *,
        periodic: tuple[PeriodicTask, ...] = (),
        on_startup: Callable[[Settings], None] | None = None,
        config: Callable[[Settings], Any] | None = None,
        append_only: tuple[str, ...] = (),
        settings: Settings | None = None,
    ) -> None:
        self.router = router
        self.name = router.service
        self.migrations = migrations
        self.append_only = append_only  # tables the runtime role may only SELECT and INSERT
        self.periodic = periodic
        self.on_startup_hook = on_startup
        self.config_loader = config  # builds the service's typed configuration once, at start
        self.config: Any = None
        self.settings = (settings or get_settings()).model_copy(update={"service": self.name})
        self.pool: asyncpg.Pool | None = None
        self.producer: AIOKafkaProducer | None = None
        self.relay: OutboxRelay | None = None
        self.health: HealthServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._own_process = False  # main() runs it: the process is the service's alone (GC tuning)
        try:
            self.broker = make_broker(self.settings)
        except KafkaAuthConfigError:
            # The service is built when its module is imported, before main() runs the production
            # guard: in production the guard names the setting and exits 2 (SPEC §11).
            self.refuse_unsafe_in_production()
            raise
        self.consumer = BatchConsumer(router, self.settings, self._pool, on_committed=self._hand_off)
        self.consumer.register(self.broker)
        self.app = FastStream(
            self.broker,
            specification=AsyncAPI(title=f"Concord {self.name}", version="1.0.0"),
            on_startup=[self._startup],
            after_startup=[self._after_startup],
            on_shutdown=[self._shutdown],
        )

    def with_settings(self, settings: Settings) -> Service:
        """The same service (handlers, migrations, periodic tasks) with other settings: tests run
        several isolated copies in one process."""
        return Service(
            self.router,
            self.migrations,
            periodic=self.periodic,
            on_startup=self.on_startup_hook,
            config=self.config_loader,
            append_only=self.append_only,
            settings=settings,
        )

    def _pool(self) -> asyncpg.Pool:
        assert self.pool is not None, "service not started"
        return self.pool

    def _hand_off(self, committed: list[OutboxMessage]) -> None:
        """Outbox rows this process has just committed, written with `handed_off=True`."""
        if self.relay is not None:
            self.relay.hand_off(committed)

    async def _startup(self) -> None:
        s = self.settings
        configure_logging(self.name, level=s.log_level, fmt=s.log_format)
        configure_tracing(
            self.name,
            s.otel_exporter,
            sample_ratio=s.trace_sample_ratio,
            zipkin_endpoint=s.zipkin_endpoint or f"{s.zipkin_url}/api/v2/spans",
        )
        if self.on_startup_hook is not None:
            self.on_startup_hook(s)  # e.g. load and validate the policy file: fail before consuming
        if self.config_loader is not None:
            # A bad file or key stops the start here, naming itself (shared.config.ConfigError).
            self.config = self.config_loader(s)
            self.consumer.processor.config = self.config
        try:
            self.pool = await create_pool(s.runtime_dsn, max_size=s.db_pool_max)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnreachable("CONCORD_DB_DSN", s.runtime_dsn, exc) from exc
        applied = await self._migrate(await self.pool.fetchval("SELECT current_user"))
        log.info("service_starting", migrations_applied=applied, topics=[t.name for t in self.router.topics])
        await self._check_kafka_rights()
        self.producer = make_producer(s)
        await self.producer.start()
        self.relay = OutboxRelay(
            self.name,
            self.pool,
            self.producer,
            batch_max=s.relay_batch_max,
            poll_interval_s=s.relay_poll_interval_s,
            start_delay_s=s.relay_start_delay_s,
        )
        if s.health_port:
            self.health = HealthServer(s.health_port, self._ready, host=s.health_host)
            await self.health.start()

    async def _check_kafka_rights(self) -> None:
        """SPEC §11: a principal that lacks a right the service needs fails here, naming the topic and
        the operation, not in the middle of a batch."""
        s = self.settings
        reads = [s.topic(t) for t in self.router.topics]
        writes = sorted({s.topic(BY_NAME[name]) for name in self.router.emitted} | {s.topic(DEADLETTER)})
        group = consumer_group(self.name, s.topic_prefix)
        problems = await asyncio.to_thread(missing_rights, s, reads=reads, writes=writes, group=group)
        # ACLs created a moment ago (make up, a test's topic set) may not have reached the broker
        # that answers yet: each broker applies the metadata log on its own. Asked again for a few
        # seconds, then refused for good.
        for _ in range(RIGHTS_RECHECKS):
            if not problems:
                break
            await asyncio.sleep(1.0)
            problems = await asyncio.to_thread(missing_rights, s, reads=reads, writes=writes, group=group)
        if problems:
            raise KafkaRightsMissing(
                f"Kafka principal {s.kafka_principal!r} lacks what {self.name} needs: " + "; ".join(problems)
            )

    async def _migrate(self, runtime_role: str) -> list[str]:
        """As the database's owner (SPEC §11), which then grants the runtime role its rights."""
        s = self.settings
        try:
            conn = await connect(s.owner_dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            setting = "CONCORD_DB_OWNER_DSN" if s.db_owner_dsn or not s.db_dsn else "CONCORD_DB_DSN"
            raise DatabaseUnreachable(setting, s.owner_dsn, exc) from exc
        try:
            return await migrate(
                conn, self.migrations, runtime_role=runtime_role, append_only=self.append_only
            )
        finally:
            await conn.close()

    async def _after_startup(self) -> None:
        assert self.relay is not None
        self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        for task in self.periodic:
            self._tasks.append(asyncio.create_task(self._run_periodic(task), name=task.name))
        self._tasks.append(asyncio.create_task(self._prune_inbox(), name="inbox-pruning"))
        if self._own_process:
            tune_gc_after_start()
        log.info("service_ready")

    async def _ready(self) -> bool:
        if self.pool is None or self.relay is None:
            return False
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except Exception:
            return False
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    async def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.consumer.flush_commits(), 5.0)
        await self.consumer.deadletter_reader.close()
        if self.relay is not None:
            await self.relay.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.health is not None:
            await self.health.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()
        log.info("service_stopped")

    async def run_unit_of_work(self, name: str, fn: TaskFn) -> bool:
        """One transaction under an advisory lock named after the task; False if another instance holds it."""
        pool = self._pool()
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", f"{self.name}:{name}"
            ):
                return False
            uow = UnitOfWork(conn, self.settings, self.name, config=self.config)
            with tracer().start_as_current_span(f"{self.name} {name}"):
                await fn(uow)
            await write_outbox(conn, uow.outbox, handed_off=True)
        if uow.outbox:
            self._hand_off(uow.outbox)
        return True

    async def _run_periodic(self, task: PeriodicTask) -> None:
        while True:
            await asyncio.sleep(task.interval_s(self.settings))
            try:
                await self.run_unit_of_work(task.name, task.run)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic_task_failed", task=task.name)

    async def _prune_inbox(self) -> None:
        while True:
            try:
                async with self._pool().acquire() as conn:
                    await conn.execute(
                        "DELETE FROM inbox WHERE processed_at < now() - make_interval(days => $1)",
                        self.settings.inbox_retention_days,
                    )
                    await prune_published(conn, self.settings.inbox_retention_days)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("inbox_pruning_failed")
            await asyncio.sleep(3600)

    async def start(self) -> None:
        """Start in the current event loop (tests, benchmarks); `main()` is the process entry."""
        await self._startup()
        await self.broker.start()
        await self._after_startup()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):  # the last offsets, while the consumer still runs
            await asyncio.wait_for(self.consumer.flush_commits(), 5.0)
        await self.broker.stop()
        await self._shutdown()

    def refuse_unsafe_in_production(self) -> None:
        """SPEC §11: with CONCORD_ENV=production, exit 2 with one line on a local default."""
        s = self.settings
        dsns = {"CONCORD_DB_DSN": s.runtime_dsn}
        if s.owner_dsn != s.runtime_dsn:
            dsns["CONCORD_DB_OWNER_DSN"] = s.owner_dsn
        # The secrets it verifies with, and those it signs with (the bank gateway signs rail events).
        signed = (*self.router.topics, *(BY_NAME[name] for name in self.router.emitted))
        signers = (t.signed_by for t in signed if t.signed_by)
        guard_process(s, secrets=signing_secrets(s, signers), dsns=dsns)

    def main(self) -> None:
        import uvloop

        self.refuse_unsafe_in_production()
        self._own_process = True
        try:
            uvloop.run(self.app.run())
        except (KafkaRightsMissing, KafkaAuthConfigError) as exc:
            print(f"{self.name}: cannot start: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


# Python's cyclic garbage collector in a service process. By default a young collection runs every
# 700 net allocations and every hundredth one is a full collection over every object alive,
# start-up's ~80,000 included (modules, models, schemas: ~23 ms each). In the in-process harness
# (`python -m bench.inprocess`) that was 9–10% of the CPU; with start-up's objects frozen and a
# young threshold of 50,000 it was 0.4% (docs/performance.md, section "Stop 23"). Reference
# counting still frees almost everything at once; the collector only finds cycles, and a larger
# young generation only lets cyclic garbage wait a little longer (a few MiB at most).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc_after_start() -> None:
    """Freeze what start-up built (it lives as long as the process: no collection will ever free
    it, so none should walk it) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
