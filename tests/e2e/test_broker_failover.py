"""The cluster shape (CONCORD_KAFKA_BROKERS=3): a broker that leads partitions is SIGKILLed in the
middle of a flow, and still every invoice is approved once, paid once and posted once — nothing
lost, nothing duplicated downstream. The test starts a three-node cluster of its own (own state
directory and ports, 256 MiB heap per node) with deploy/kafka.sh, as `make up` would."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from bench.pipeline import flow, prime
from services.ledger.queries import check_invariants
from shared.publish import Publisher
from shared.services import SERVICES
from shared.settings import Settings
from shared.topics import ALL_TOPICS, DEADLETTER, MATCHING_DECISIONS, OUT_JOURNAL, OUT_PAYOUTS
from tests.kafka_cluster import KafkaCluster, in_sync_replicas, partition_leaders, started_cluster
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings, read_topic
from tests.support import scratch_service_database

pytestmark = pytest.mark.e2e

FLOWS = 24


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with started_cluster(tmp_path_factory.mktemp("kafka-cluster-state")) as c:
        yield c


@pytest.fixture
async def stack(cluster: KafkaCluster) -> AsyncIterator[tuple[Settings, dict[str, str]]]:
    settings = isolated_settings(
        kafka_bootstrap=cluster.bootstrap, payout_run_interval_s=1.0, relay_poll_interval_s=0.05
    )
    await create_topics(settings)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_topics, settings)
        dbs = {n: await stack.enter_async_context(scratch_service_database(n)) for n in SERVICES}
        procs = [
            ServiceProcess(f"services.{n}", settings.model_copy(update=dbs[n].settings()), f"failover-{n}")
            for n in SERVICES
        ]
        stack.callback(lambda: [p.stop() for p in procs])
        for p in procs:
            p.start()
        for p in procs:
            await p.wait_ready(120)
        yield settings, {n: db.admin for n, db in dbs.items()}


async def _publish_flows(pub: Publisher, tag: str, indices: range) -> None:
    today = datetime.now(UTC).date().isoformat()
    for i in indices:
        for topic, key, event_type, data in flow(tag, i, today):
            await pub.publish_event(topic, key, event_type, data)


def _ids(records: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    """Distinct events of a type (a topic may hold a re-published copy; consumers dedupe by id)."""
    by_id = {r["value"]["event_id"]: r["value"] for r in records if r["value"]["event_type"] == event_type}
    return list(by_id.values())


async def test_a_broker_killed_mid_flow_loses_and_duplicates_nothing(
    cluster: KafkaCluster, stack: tuple[Settings, dict[str, str]]
) -> None:
    settings, dsns = stack
    names = [settings.topic(t) for t in ALL_TOPICS]
    isr = await in_sync_replicas(settings, names)
    assert all(len(nodes) == 3 for nodes in isr.values()), isr  # replication factor 3 everywhere

    tag = uuid.uuid4().hex[:6]
    invoices = {f"BI-{tag}-{i}" for i in range(FLOWS)}
    async with Publisher(settings, source="failover-test") as pub:
        await prime(pub, tag)
        await _publish_flows(pub, tag, range(FLOWS // 2))
        await asyncio.sleep(1.0)  # work in flight in every service
        leaders = await partition_leaders(settings, names)
        victim = max(leaders, key=lambda n: len(leaders[n]))
        cluster.signal(victim, signal.SIGKILL)
        # The rest is published and processed with two brokers of three.
        await _publish_flows(pub, tag, range(FLOWS // 2, FLOWS))

    def all_paid(records: list[dict[str, Any]]) -> bool:
        paid = {i["invoice_id"] for p in _ids(records, "payout.released") for i in p["data"]["invoices"]}
        return invoices <= paid

    released = _ids(
        await read_topic(settings, OUT_PAYOUTS, until=all_paid, timeout_s=180, settle_s=3), "payout.released"
    )
    payout_ids = {p["data"]["payout_id"] for p in released}

    def posted(records: list[dict[str, Any]], source_type: str) -> set[str]:
        entries = [e["data"] for e in _ids(records, "journal.entry_posted")]
        links = [e.get("links") or {} for e in entries if e.get("source_event_type") == source_type]
        if source_type == "payout.released":
            return {link.get("payout_id", "") for link in links}
        return {i for link in links for i in link.get("invoice_ids", [])}

    journal = await read_topic(
        settings,
        OUT_JOURNAL,
        until=lambda rs: (
            invoices <= posted(rs, "invoice.approved_to_pay") and payout_ids <= posted(rs, "payout.released")
        ),
        timeout_s=120,
        settle_s=2,
    )
    decisions = _ids(await read_topic(settings, MATCHING_DECISIONS, timeout_s=5), "invoice.approved_to_pay")
    deadletter = await read_topic(settings, DEADLETTER, timeout_s=3)

    killed = f"node {victim} (led {len(leaders[victim])} partitions)"
    approvals = Counter(d["data"]["invoice_id"] for d in decisions)
    assert set(approvals) == invoices and set(approvals.values()) == {1}, (killed, approvals)
    paid = Counter(i["invoice_id"] for p in released for i in p["data"]["invoices"])
    assert set(paid) == invoices and set(paid.values()) == {1}, (killed, paid)
    postings = Counter(e["data"]["source_event_id"] for e in _ids(journal, "journal.entry_posted"))
    assert set(postings.values()) == {1}, (killed, postings)  # no source event posted twice
    assert posted(journal, "invoice.approved_to_pay") == invoices, killed
    assert posted(journal, "payout.released") == payout_ids, killed
    assert deadletter == [], killed
    conn = await asyncpg.connect(dsns["ledger"])
    try:
        assert await check_invariants(conn) == [], killed
    finally:
        await conn.close()
