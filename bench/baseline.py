"""The baseline: the raw rate of one at-least-once hop on this machine.

aiokafka consume → one asyncpg transaction that inserts inbox rows → produce → commit offsets,
batched exactly like the services' consumer (one transaction per fetched batch). The pipeline's
figures are reported as a ratio of this: records/s, and the CPU of one hop (this process's
clients, PostgreSQL and Kafka while the hop runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.cpu import delta, driver_cpu_s, infrastructure_cpu_s
from shared.admin import admin_settings
from shared.kafka_auth import client_options
from shared.settings import Settings


@dataclass(frozen=True)
class HopResult:
    records: int
    seconds: float
    cpu_s: dict[str, float]  # the hop's clients (this process), PostgreSQL, Kafka: while it ran

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_ms_if_all_cores(self) -> float:
        """A hop as issue 13 counts it (its targets' scale): every core busy at the hop's rate."""
        return 1000 * (os.cpu_count() or 1) / self.per_second

    @property
    def cpu_ms_per_record(self) -> float:
        """The CPU of one hop: what the pipeline's CPU per flow is measured in."""
        return 1000 * sum(self.cpu_s.values()) / self.records


async def _create(settings: Settings, *topics: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(admin_settings(settings)))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=6, replication_factor=1) for t in topics])
    finally:
        await admin.close()


async def measure_hop(
    settings: Settings, admin_dsn: str, records: int = 20000, batch_max: int = 200
) -> HopResult:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"bench.{tag}.in", f"bench.{tag}.out"
    await _create(settings, src, dst)
    # The hop authenticates (SASL/SCRAM) like every service does, as admin on its scratch topics.
    producer = AIOKafkaProducer(
        **client_options(admin_settings(settings)), enable_idempotence=True, linger_ms=2
    )
    await producer.start()
    payload = {"event_type": "bench.hop", "data": {"x": "1.00"}}
    futures = [
        await producer.send(
            src, json.dumps({**payload, "event_id": f"e{i}"}).encode(), key=str(i % 97).encode()
        )
        for i in range(records)
    ]
    await asyncio.gather(*futures)
    db = f"bench_{tag}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    conn = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + f"/{db}")
    await conn.execute(
        "CREATE TABLE inbox (event_id text PRIMARY KEY, topic text, partition int, "
        '"offset" bigint, processed_at timestamptz DEFAULT now())'
    )
    consumer = AIOKafkaConsumer(
        src,
        **client_options(admin_settings(settings)),
        group_id=f"bench-{tag}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch_max,
    )
    await consumer.start()
    done = 0
    cpu_before = _cpu()
    started = time.perf_counter()
    try:
        while done < records:
            batch = await consumer.getmany(timeout_ms=500, max_records=batch_max)
            recs = [r for rs in batch.values() for r in rs]
            if not recs:
                continue
            rows = [(json.loads(r.value)["event_id"], r.topic, r.partition, r.offset) for r in recs]
            async with conn.transaction():
                await conn.executemany(
                    'INSERT INTO inbox (event_id, topic, partition, "offset") VALUES ($1, $2, $3, $4)', rows
                )
            sends = [await producer.send(dst, r.value, key=r.key) for r in recs]
            await asyncio.gather(*sends)
            await consumer.commit(
                {TopicPartition(tp.topic, tp.partition): rs[-1].offset + 1 for tp, rs in batch.items()}
            )
            done += len(recs)
        seconds = time.perf_counter() - started
        cpu_used = delta(_cpu(), cpu_before)
    finally:
        await consumer.stop()
        await producer.stop()
        await conn.close()
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
        adm = AIOKafkaAdminClient(**client_options(admin_settings(settings)))
        await adm.start()
        try:
            await adm.delete_topics([src, dst])
        finally:
            await adm.close()
    return HopResult(done, seconds, cpu_used)


def _cpu() -> dict[str, float]:
    return infrastructure_cpu_s() | {"hop clients": driver_cpu_s()}
