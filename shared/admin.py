"""Topic administration: `python -m shared.admin ensure-topics` creates every topic of SPEC §3–4."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import Settings, get_settings
from shared.topics import ALL_TOPICS, Topic


async def ensure_topics(
    settings: Settings, *, timeout_s: float = 60, topics: tuple[Topic, ...] = ALL_TOPICS
) -> list[str]:
    """Create whatever topic is missing (idempotent); returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=30000)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.topic(t), num_partitions=t.partitions, replication_factor=1)
            for t in topics
            if settings.topic(t) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created it meanwhile
                await admin.create_topics(wanted)
        # Wait until every topic has metadata, so the first publish does not race the creation.
        for _ in range(100):
            if {settings.topic(t) for t in topics} <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.1)
        return [t.name for t in wanted]
    finally:
        await admin.close()


def main(argv: list[str]) -> int:
    if argv[:1] != ["ensure-topics"]:
        print("usage: python -m shared.admin ensure-topics", file=sys.stderr)
        return 2
    created = asyncio.run(ensure_topics(get_settings()))
    print(f"topics: {len(ALL_TOPICS)} ready ({len(created)} created)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
