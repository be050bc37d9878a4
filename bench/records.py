"""Kafka records per flow: what a flow writes on each topic, and how many records each service is
handed to read (every record of every topic it subscribes to, handled or skipped).

The contract fixes most of these (SPEC §4: a flow's documents, decisions, invoice responses,
journal announcements), and each one is at least a baseline hop's work for someone: a produce,
and a fetch and an inbox row per reader. `make bench` divides the CPU per flow by the records
its services are handed, so the targets can be read per service step ("CPU per record handed,
in baseline hops"), not only per flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.admin import admin_settings
from shared.kafka_auth import client_options
from shared.services import SERVICES
from shared.settings import Settings
from shared.topics import ALL_TOPICS
from tools.cli.contract import routers


def readers() -> dict[str, list[str]]:
    """Topic (unprefixed) → the benchmark's services that subscribe to it (the bank gateway does
    not run in the benchmark)."""
    subscribed: dict[str, list[str]] = {}
    for router in routers():
        if router.service in SERVICES:
            for topic in router.topics:
                subscribed.setdefault(topic.name, []).append(router.service)
    return subscribed


async def end_offsets(settings: Settings) -> dict[str, int]:
    """Topic (unprefixed) → records written to it so far (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(**client_options(admin_settings(settings)), group_id=None)
    await consumer.start()
    try:
        partitions = {
            t.name: [TopicPartition(settings.topic(t), p) for p in range(t.partitions)] for t in ALL_TOPICS
        }
        ends = await consumer.end_offsets([tp for tps in partitions.values() for tp in tps])
        return {name: sum(ends.get(tp, 0) for tp in tps) for name, tps in partitions.items()}
    finally:
        await consumer.stop()


def records_per_flow(
    before: Mapping[str, int],
    after: Mapping[str, int],
    flows: int,
    subscribed: Mapping[str, list[str]],
) -> dict[str, Any]:
    """Records written per flow by topic, and records handed per flow to each service (a topic
    read by two services hands each of them every record)."""
    written = {t: after[t] - before.get(t, 0) for t in sorted(after) if after[t] > before.get(t, 0)}
    n = max(1, flows)
    handed = {s: 0 for s in SERVICES}
    for topic, count in written.items():
        for service in subscribed.get(topic, []):
            handed[service] += count
    return {
        "written": {t: round(c / n, 2) for t, c in written.items()},
        "written_total": round(sum(written.values()) / n, 2),
        "handed_to": {s: round(c / n, 2) for s, c in handed.items()},
        "handed_total": round(sum(handed.values()) / n, 2),
    }
