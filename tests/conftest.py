"""Where the tests find Kafka and PostgreSQL.

With a Docker engine answering, testcontainers starts a KRaft Kafka and a PostgreSQL 15 for the
session; without one (this machine, CI) the tests use the local stack that `make test` starts
(deploy/kafka.sh, deploy/postgres.sh). `CONCORD_TESTS_LOCAL=1` forces the local stack.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CONCORD_TESTS_LOCAL") == "1" or not _docker_engine_answers():
        return
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    kafka.with_env("KAFKA_MESSAGE_MAX_BYTES", "4194304")
    postgres = PostgresContainer(
        "postgres:15", username="concord_admin", password="local-dev-concord_admin", dbname="postgres"
    )
    # The same roles and databases as the local stack (SPEC §11), from the same script.
    postgres.with_volume_mapping(str(ROOT / "deploy" / "postgres"), "/docker-entrypoint-initdb.d", "ro")
    kafka.start()
    postgres.start()
    config.add_cleanup(kafka.stop)
    config.add_cleanup(postgres.stop)
    os.environ["CONCORD_KAFKA_BOOTSTRAP"] = kafka.get_bootstrap_server()
    host, port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
    os.environ["CONCORD_TEST_ADMIN_DSN"] = (
        f"postgresql://concord_admin:local-dev-concord_admin@{host}:{port}/postgres"
    )
