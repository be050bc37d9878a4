"""Real-Kafka test helpers: isolated topic sets, reading topics, services as OS processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.admin import admin_settings, apply_grants, ensure_topics, revoke_grants
from shared.kafka_auth import client_options
from shared.settings import Settings
from shared.topics import ALL_TOPICS, Topic
from tests.support import ROOT

LOG_DIR = ROOT / ".cache" / "logs" / "tests"


def isolated_settings(**overrides: Any) -> Settings:
    """Settings with a topic prefix of their own, so tests never read each other's records."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    return Settings(topic_prefix=prefix, **overrides)


async def create_topics(settings: Settings, topics: tuple[Topic, ...] = ALL_TOPICS) -> None:
    """A run's own topic set, with the ACL matrix of SPEC §11 for its prefix (created as admin), so
    its services and publishers authenticate and are authorised exactly as in production."""
    await ensure_topics(settings, topics=topics)
    if settings.topic_prefix:
        await asyncio.to_thread(apply_grants, settings, settings.topic_prefix, prune=False)


async def delete_topics(settings: Settings, topics: tuple[Topic, ...] = ALL_TOPICS) -> None:
    """A run's own topic set, deleted when it is done: left behind they pile up, and a broker
    with thousands of partitions takes minutes to restart (the chaos run's Kafka fault)."""
    admin = AIOKafkaAdminClient(**client_options(admin_settings(settings)))
    with contextlib.suppress(Exception):
        await admin.start()
        try:
            await admin.delete_topics([settings.topic(t) for t in topics])
        finally:
            await admin.close()
    if settings.topic_prefix:
        await asyncio.to_thread(revoke_grants, settings, settings.topic_prefix)


async def read_topic(
    settings: Settings, topic: Topic, *, until: Any = None, timeout_s: float = 30, settle_s: float = 0.0
) -> list[dict[str, Any]]:
    """Every record on a topic from the start, as {partition, offset, key, value(json), headers};
    stops when `until(records)` is true (then waits `settle_s` more to catch extras) or at the timeout.
    Reads as admin: the tests look at internal topics no external principal may read."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic),
        **client_options(admin_settings(settings)),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    settle_deadline: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                for r in recs:
                    records.append(
                        {
                            "partition": r.partition,
                            "offset": r.offset,
                            "key": r.key.decode() if r.key else None,
                            "value": json.loads(r.value),
                            "headers": {k: v.decode() for k, v in (r.headers or ())},
                        }
                    )
            if until is not None and settle_deadline is None and until(records):
                settle_deadline = time.monotonic() + settle_s
            if settle_deadline is not None and time.monotonic() >= settle_deadline:
                break
    finally:
        await consumer.stop()
    return records


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before by this process. The kernel may offer a port
    it just offered again; two services of one stack on one health port meant the second died at
    start-up while the first's health check answered for it (a benchmark once ran with no
    payout_release at all)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"CONCORD_{name.upper()}"] = str(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class ServiceProcess:
    """A service started as its own OS process, as in production; killable with SIGKILL."""

    module: str
    settings: Settings
    name: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{self.name}-{self.settings.topic_prefix}log"

    def start(self, **overrides: Any) -> None:
        settings = self.settings.model_copy(update={"health_port": free_port(), **overrides})
        self._port = settings.health_port
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    async def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}")
            if await asyncio.to_thread(self.is_ready):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s; log: {self.log_path}")

    @property
    def metrics_address(self) -> str:
        """host:port of its /metrics, for a Prometheus to scrape (set by start)."""
        return f"127.0.0.1:{self._port}"

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self._port}/health/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.asynccontextmanager
async def running(processes: Iterable[ServiceProcess]) -> AsyncIterator[None]:
    """Start every process, wait until each is ready, and stop them all however the block ends."""
    procs = list(processes)
    try:
        for p in procs:
            p.start()
        for p in procs:
            await p.wait_ready()
        yield
    finally:
        for p in procs:
            p.stop()
