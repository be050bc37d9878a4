"""SPEC §11 on the real broker: every principal writes and reads exactly what the matrix grants.

The broker runs SASL/SCRAM-SHA-512 with Kafka's StandardAuthorizer (`allow.everyone.if.no.acl.found`
false, admin the only super user). Each test gets its own prefixed topic set with the matrix applied to
that prefix as admin (tests/kafka_support.create_topics), exactly as `make up` applies it to the real
topic names.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from confluent_kafka import Consumer, KafkaError

from shared.acl import (
    ADMIN,
    EXTERNAL,
    PRINCIPALS,
    consumer_group,
    grants,
    local_password,
    may_read,
    may_write,
)
from shared.admin import admin_settings, broker_grants
from shared.kafka_auth import as_principal, client_options, librdkafka_config, missing_rights
from shared.outbox import make_producer
from shared.services import SERVICES
from shared.settings import Settings
from shared.topics import ALL_TOPICS, BY_NAME, DEADLETTER, MATCHING_DECISIONS, Topic
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings
from tests.support import scratch_database

pytestmark = pytest.mark.integration

NON_ADMIN = tuple(p for p in PRINCIPALS if p != ADMIN)


@pytest.fixture(scope="module")
async def topic_set() -> AsyncIterator[Settings]:
    settings = isolated_settings()
    await create_topics(settings)
    # One record on every topic, written by admin, so that a read either sees it or is refused.
    producer = make_producer(admin_settings(settings))
    await producer.start()
    try:
        for topic in ALL_TOPICS:
            await producer.send_and_wait(settings.topic(topic), b'{"probe": true}', key=b"k", partition=0)
    finally:
        await producer.stop()
    yield settings
    await delete_topics(settings)


def _as(settings: Settings, principal: str, password: str | None = None) -> Settings:
    return as_principal(settings, principal, password or local_password(principal))


async def _try_produce(settings: Settings, principal: str, topic: Topic) -> str:
    producer = make_producer(_as(settings, principal))
    try:
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait(settings.topic(topic), b"{}", key=b"k"), 20)
        return "ok"
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
        return type(exc).__name__
    finally:
        await producer.stop()


async def test_every_principal_writes_exactly_the_topics_the_matrix_grants(topic_set: Settings) -> None:
    wrong: list[str] = []
    for principal in NON_ADMIN:
        for topic in ALL_TOPICS:
            outcome = await _try_produce(topic_set, principal, topic)
            expected = may_write(principal, topic)
            if (outcome == "ok") != expected:
                wrong.append(
                    f"{principal} → {topic.name}: {outcome}, expected {'ok' if expected else 'refused'}"
                )
    assert wrong == []


def _described(settings: Settings, principal: str, topic: Topic) -> bool:
    """Whether the broker shows this principal the topic at all (DESCRIBE, implied by READ/WRITE)."""
    consumer = Consumer({**librdkafka_config(_as(settings, principal)), "group.id": "-", "log_level": 0})
    try:
        metadata = consumer.list_topics(settings.topic(topic), timeout=15)
    finally:
        consumer.close()
    error = metadata.topics[settings.topic(topic)].error
    if error is not None and error.code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
        raise AssertionError(f"{principal} / {topic.name}: unexpected metadata error {error}")
    return error is None


async def _try_read(settings: Settings, principal: str, topic: Topic) -> str:
    """Read partition 0 from the start without a group: 'ok' once the probe record arrives,
    'refused' when the broker answers with a topic authorization error."""
    if not await asyncio.to_thread(_described, settings, principal, topic):
        return "refused"  # the broker does not even admit the topic exists to this principal
    consumer = AIOKafkaConsumer(**client_options(_as(settings, principal)), group_id=None)
    await consumer.start()
    try:
        tp = AioTopicPartition(settings.topic(topic), 0)
        consumer.assign([tp])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                await consumer.seek_to_beginning(tp)
                batch = await consumer.getmany(timeout_ms=500)
            except TopicAuthorizationFailedError:
                return "refused"
            if any(batch.values()):
                return "ok"
        return "timeout"
    finally:
        await consumer.stop()


async def test_external_principals_read_exactly_the_topics_the_matrix_grants(topic_set: Settings) -> None:
    wrong: list[str] = []
    for principal in EXTERNAL:
        for topic in ALL_TOPICS:
            outcome = await _try_read(topic_set, principal, topic)
            expected = "ok" if may_read(principal, topic) else "refused"
            if outcome != expected:
                wrong.append(f"{principal} ← {topic.name}: {outcome}, expected {expected}")
    assert wrong == []


async def test_no_credentials_or_a_wrong_password_cannot_connect(topic_set: Settings) -> None:
    anonymous = AIOKafkaProducer(bootstrap_servers=topic_set.kafka_bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await anonymous.start()
    await anonymous.stop()
    for principal, password in (("upstream", "not-the-password"), ("nobody", "local-dev-nobody")):
        producer = AIOKafkaProducer(**client_options(_as(topic_set, principal, password)))
        with pytest.raises(KafkaConnectionError):
            await producer.start()
        await producer.stop()


async def test_a_services_consumer_group_cannot_be_joined_by_another_principal(topic_set: Settings) -> None:
    group = consumer_group("matching", topic_set.topic_prefix)
    for principal in ("upstream", "ops", "ledger"):
        consumer = AIOKafkaConsumer(
            topic_set.topic(MATCHING_DECISIONS if principal == "ledger" else _readable(principal)),
            **client_options(_as(topic_set, principal)),
            group_id=group,
            enable_auto_commit=False,
        )
        try:
            with pytest.raises(GroupAuthorizationFailedError):  # joining the group is refused
                await asyncio.wait_for(consumer.start(), 30)
                await asyncio.wait_for(consumer.getmany(timeout_ms=5000), 30)
        finally:
            await consumer.stop()


def _readable(principal: str) -> Topic:
    return next(t for t in ALL_TOPICS if may_read(principal, t))


async def test_the_broker_reports_the_matrix_for_the_topic_set(topic_set: Settings) -> None:
    on_broker = {
        g
        for g in await asyncio.to_thread(broker_grants, topic_set)
        if g.name.startswith(topic_set.topic_prefix)
    }
    assert on_broker == set(grants(topic_set.topic_prefix))


async def test_a_service_whose_principal_lacks_a_right_refuses_to_start_naming_it(
    topic_set: Settings,
) -> None:
    # matching started with the ledger's identity: it may read intake.documents but not write decisions.
    async with scratch_database("matching") as dsn:
        settings = topic_set.model_copy(
            update={"db_dsn": dsn, "kafka_username": "ledger", "kafka_password": local_password("ledger")}
        )
        svc = ServiceProcess("services.matching", settings, "matching-as-ledger")
        svc.start()
        assert svc.proc is not None
        code = await asyncio.to_thread(svc.proc.wait, 60)
        log = svc.log_path.read_text()
    assert code == 2
    assert "lacks what matching needs" in log
    assert f"WRITE on topic {topic_set.topic(MATCHING_DECISIONS)}" in log
    assert f"READ on consumer group {consumer_group('matching', topic_set.topic_prefix)}" in log


@pytest.mark.parametrize("principal", SERVICES)
async def test_each_service_principal_passes_its_own_start_up_check(
    topic_set: Settings, principal: str
) -> None:
    router = importlib.import_module(f"services.{principal}.handlers").router
    s = _as(topic_set, principal)
    problems = await asyncio.to_thread(
        missing_rights,
        s,
        reads=[s.topic(t) for t in router.topics],
        writes=sorted({s.topic(BY_NAME[n]) for n in router.emitted} | {s.topic(DEADLETTER)}),
        group=consumer_group(principal, s.topic_prefix),
    )
    assert problems == []
