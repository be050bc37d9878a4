"""How every Concord client authenticates to Kafka (SPEC §11): one place for FastStream and aiokafka.

Settings: CONCORD_KAFKA_SECURITY_PROTOCOL (SASL_PLAINTEXT | SASL_SSL), CONCORD_KAFKA_SASL_MECHANISM
(SCRAM-SHA-512), CONCORD_KAFKA_USERNAME (a service's default: its own name), CONCORD_KAFKA_PASSWORD
(locally `local-dev-<username>`), CONCORD_KAFKA_CA_FILE (the CA that signed the broker's certificate,
with SASL_SSL: the client verifies the broker).
"""

from __future__ import annotations

import ssl
from typing import Any

from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from shared.settings import Settings

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


class KafkaAuthConfigError(ValueError):
    """A client setting that cannot work: refused before connecting, with the setting named."""


def _check(settings: Settings) -> None:
    if settings.kafka_security_protocol not in SASL_PROTOCOLS:
        raise KafkaAuthConfigError(
            f"CONCORD_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol!r}: "
            f"Concord clients authenticate with SASL ({' or '.join(SASL_PROTOCOLS)})"
        )
    if settings.kafka_sasl_mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        raise KafkaAuthConfigError(
            f"CONCORD_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism!r}: use SCRAM-SHA-512"
        )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """With SASL_SSL: verify the broker's certificate (against CONCORD_KAFKA_CA_FILE if given)."""
    if settings.kafka_security_protocol != "SASL_SSL":
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ca_file or None)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def as_principal(settings: Settings, username: str, password: str | None = None) -> Settings:
    """The same settings, authenticating as another principal (the demo's upstream and rail, tests)."""
    return settings.model_copy(update={"kafka_username": username, "kafka_password": password})


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client."""
    _check(settings)
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_principal,
        "sasl_plain_password": settings.kafka_secret,
        "ssl_context": ssl_context(settings),
    }


def faststream_security(settings: Settings) -> BaseSecurity:
    """The same identity for FastStream's KafkaBroker. Not validated here (a service builds its
    broker at import): the settings are checked at start by client_options(), before any consumer
    connects, and by the production guard."""
    cls = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return cls(
        username=settings.kafka_principal,
        password=settings.kafka_secret,
        ssl_context=ssl_context(settings),
        use_ssl=settings.kafka_security_protocol == "SASL_SSL",
    )


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """The same identity for confluent-kafka's AdminClient (ACLs and SCRAM credentials: aiokafka's
    admin client has no API for either)."""
    _check(settings)
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "sasl.mechanism": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_principal,
        "sasl.password": settings.kafka_secret,
    }
    if settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_ca_file:
        config["ssl.ca.location"] = settings.kafka_ca_file
    return config


class KafkaRightsMissing(RuntimeError):
    """The principal lacks a right the service needs: refused at start, never mid-batch."""


def missing_rights(
    settings: Settings, *, reads: list[str], writes: list[str], group: str | None, timeout_s: float = 30
) -> list[str]:
    """What the broker says this principal may not do of what a service needs (KIP-430: the
    operations the broker authorises for the caller on each topic and on its consumer group).
    Blocking (confluent-kafka): run it in a thread."""
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import AdminClient

    client = AdminClient({**librdkafka_config(settings), "log_level": 3})
    problems: list[str] = []
    wanted: dict[str, set[str]] = {}
    for name in reads:
        wanted.setdefault(name, set()).add("READ")
    for name in writes:
        wanted.setdefault(name, set()).add("WRITE")
    futures = client.describe_topics(
        TopicCollection(sorted(wanted)), include_authorized_operations=True, request_timeout=timeout_s
    )
    for name, fut in futures.items():
        try:
            allowed = {op.name for op in (fut.result().authorized_operations or [])}
        except KafkaException as exc:  # not authorised even to describe it, or it does not exist
            allowed = set()
            if "authoriz" not in str(exc).lower():
                problems.append(f"topic {name}: {exc.args[0].str() if exc.args else exc}")
                continue
        problems += [
            f"{op} on topic {name}"
            for op in sorted(wanted[name])
            if op not in allowed and "ALL" not in allowed
        ]
    if group is not None and not _may_read_group(client, group, timeout_s):
        problems.append(f"READ on consumer group {group}")
    return problems


def _may_read_group(client: Any, group: str, timeout_s: float) -> bool:
    """The broker authorises READ on the group. A group coordinator that is not there yet (the
    offsets topic of a fresh cluster is created on first use, and with three replicas it takes a
    moment to elect its leaders) is waited for, not mistaken for a refusal."""
    import time

    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AclOperation

    deadline = time.monotonic() + timeout_s
    while True:
        fut = client.describe_consumer_groups(
            [group], include_authorized_operations=True, request_timeout=timeout_s
        )[group]
        try:
            ops = {op.name for op in (fut.result().authorized_operations or [])}
            return AclOperation.READ.name in ops or "ALL" in ops
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            refused = isinstance(err, KafkaError) and err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
            if refused or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
