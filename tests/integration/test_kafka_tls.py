"""`CONCORD_KAFKA_TLS=1` (SPEC §11): the same broker serves SASL_SSL with a CA and a certificate that
deploy/kafka.sh makes, and clients verify the broker. A second broker of its own is started here
(own state directory and ports), from the same jars, exactly as `make up` starts the first."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from shared.acl import local_password
from shared.admin import ensure_topics
from shared.kafka_auth import as_principal, client_options
from shared.settings import Settings
from shared.topics import IN_INVOICES, OUT_REJECTIONS
from tests.kafka_support import free_port
from tests.support import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    state = tmp_path_factory.mktemp("kafka-tls-state")
    (state / "kafka-libs").symlink_to(ROOT / ".cache" / "kafka-libs")
    port, controller = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")},
        "CONCORD_STATE_DIR": str(state),
        "CONCORD_KAFKA_PORT": str(port),
        "CONCORD_KAFKA_CONTROLLER_PORT": str(controller),
        "CONCORD_KAFKA_TLS": "1",
        "CONCORD_KAFKA_HEAP": "256m",
    }
    script = str(ROOT / "deploy" / "kafka.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    client_env = {
        **env,
        "CONCORD_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "CONCORD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CONCORD_KAFKA_CA_FILE": str(state / "kafka-tls" / "ca.pem"),
    }
    try:
        security = subprocess.run(
            [sys.executable, "-m", "shared.admin", "ensure-security"],
            env=client_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert security.returncode == 0, security.stdout + security.stderr
        settings = Settings(
            kafka_bootstrap=f"127.0.0.1:{port}",
            kafka_security_protocol="SASL_SSL",
            kafka_ca_file=client_env["CONCORD_KAFKA_CA_FILE"],
        )
        yield settings, env
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=120)


async def test_a_round_trip_over_sasl_ssl_as_the_principals_of_the_matrix(
    tls_broker: tuple[Settings, dict[str, str]],
) -> None:
    settings, _ = tls_broker
    await ensure_topics(settings, topics=(IN_INVOICES, OUT_REJECTIONS))
    upstream = as_principal(settings, "upstream", local_password("upstream"))
    producer = AIOKafkaProducer(**client_options(upstream), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(IN_INVOICES.name, b'{"over": "tls"}', key=b"payee-1")
    finally:
        await producer.stop()
    ops = as_principal(settings, "intake", local_password("intake"))  # intake reads in.invoices
    consumer = AIOKafkaConsumer(
        IN_INVOICES.name, **client_options(ops), group_id="concord-intake", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await asyncio.wait_for(_first(consumer), 60)
    finally:
        await consumer.stop()
    assert batch == b'{"over": "tls"}'


async def _first(consumer: AIOKafkaConsumer) -> bytes:
    while True:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for r in records:
                return bytes(r.value)


async def test_a_client_that_does_not_trust_the_brokers_ca_cannot_connect(
    tls_broker: tuple[Settings, dict[str, str]],
) -> None:
    settings, _ = tls_broker
    untrusting = as_principal(settings, "upstream", local_password("upstream")).model_copy(
        update={"kafka_ca_file": None}  # the system's CAs only: the local CA is not among them
    )
    producer = AIOKafkaProducer(**client_options(untrusting), request_timeout_ms=5000)
    with pytest.raises((KafkaConnectionError, ssl.SSLError)):
        await producer.start()
    await producer.stop()


def test_the_certificate_names_the_loopback_address(tls_broker: tuple[Settings, dict[str, str]]) -> None:
    _, env = tls_broker
    pem = Path(env["CONCORD_STATE_DIR"]) / "kafka-tls" / "broker.pem"
    text = subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-noout", "-text"], capture_output=True, text=True, check=True
    ).stdout
    assert "IP Address:127.0.0.1" in text
