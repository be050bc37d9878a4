"""Broker administration, as `admin` (the only super user; deploy scripts and test set-up only).

    python -m shared.admin ensure-topics     every topic of SPEC §3–4 (idempotent)
    python -m shared.admin ensure-security   SCRAM credentials of every principal and the ACL matrix
                                             of SPEC §11 (idempotent: only what is missing is added,
                                             ACLs of Concord's resources the matrix no longer has are
                                             removed)
    python -m shared.admin acls              the ACLs as the broker reports them

Topics and consumer offsets go through aiokafka; ACLs and SCRAM credentials through confluent-kafka's
AdminClient (aiokafka's admin client has neither API).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.acl import ADMIN, PRINCIPALS, Grant, grants, local_password
from shared.kafka_auth import as_principal, client_options, librdkafka_config
from shared.settings import Settings, get_settings
from shared.topics import ALL_TOPICS, Topic

SCRAM_ITERATIONS = 8192
# With three brokers or more every topic has three replicas and a write needs two in sync
# (producers use acks=all): one broker may die or stall without losing an acknowledged record,
# and the partition stays writable while it is away.
CLUSTER_REPLICATION = 3
CLUSTER_MIN_INSYNC = 2


def replication_for(brokers: int) -> tuple[int, dict[str, str]]:
    """Replication factor and topic configs for a cluster of this many brokers."""
    if brokers >= CLUSTER_REPLICATION:
        return CLUSTER_REPLICATION, {"min.insync.replicas": str(CLUSTER_MIN_INSYNC)}
    return 1, {}


def admin_settings(settings: Settings) -> Settings:
    """The same broker, as admin (CONCORD_KAFKA_ADMIN_PASSWORD, locally local-dev-admin)."""
    return as_principal(settings, ADMIN, os.environ.get("CONCORD_KAFKA_ADMIN_PASSWORD"))


async def ensure_topics(
    settings: Settings, *, timeout_s: float = 60, topics: tuple[Topic, ...] = ALL_TOPICS
) -> list[str]:
    """Create whatever topic is missing (idempotent); returns the names it created."""
    admin = AIOKafkaAdminClient(**client_options(admin_settings(settings)), request_timeout_ms=30000)
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
        replicas, configs = replication_for(len((await admin.describe_cluster())["brokers"]))
        wanted = [
            NewTopic(
                settings.topic(t),
                num_partitions=t.partitions,
                replication_factor=replicas,
                topic_configs=configs,
            )
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


# --- ACLs and SCRAM credentials (confluent-kafka, blocking: run in a thread) -----------------------


def _admin_client(settings: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({**librdkafka_config(admin_settings(settings)), "log_level": 3})


def _binding(g: Grant) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(
        ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP,
        g.name,
        ResourcePatternType.LITERAL if g.pattern == "literal" else ResourcePatternType.PREFIXED,
        f"User:{g.principal}",
        "*",
        AclOperation.WRITE if g.operation == "WRITE" else AclOperation.READ,
        AclPermissionType.ALLOW,
    )


def _grant_of(b: Any) -> Grant | None:
    from confluent_kafka.admin import AclPermissionType, ResourcePatternType, ResourceType

    if b.permission_type != AclPermissionType.ALLOW or b.host != "*" or not b.principal.startswith("User:"):
        return None
    if b.restype not in (ResourceType.TOPIC, ResourceType.GROUP):
        return None
    if b.resource_pattern_type not in (ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED):
        return None
    if b.operation.name not in ("WRITE", "READ"):
        return None
    return Grant(
        b.principal.removeprefix("User:"),
        "topic" if b.restype == ResourceType.TOPIC else "group",
        b.name,
        "literal" if b.resource_pattern_type == ResourcePatternType.LITERAL else "prefixed",
        b.operation.name,
    )


def list_acls(settings: Settings, timeout_s: float = 30) -> list[Any]:
    """Every ACL binding on the broker, as confluent-kafka AclBindings."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    flt = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name, principal and host
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    client = _admin_client(settings)  # kept referenced until the future resolves
    return list(client.describe_acls(flt, request_timeout=timeout_s).result())


def broker_grants(settings: Settings) -> set[Grant]:
    """The ALLOW bindings on the broker that the matrix can express, as Grants."""
    return {g for b in list_acls(settings) if (g := _grant_of(b)) is not None}


def _ours(name: str, prefix: str) -> bool:
    """A resource name of Concord's topic set with this prefix: a topic, a service's consumer group or
    an external principal's group prefix."""
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    return rest.startswith(("concord.", "concord-")) or rest in {f"{p}." for p in PRINCIPALS}


def apply_grants(settings: Settings, prefix: str = "", *, prune: bool = True) -> tuple[int, int]:
    """Make the broker's ACLs for this topic set exactly the matrix: returns (created, removed)."""
    want = set(grants(prefix))
    client = _admin_client(settings)
    have_bindings = list_acls(settings)
    have = {g for b in have_bindings if (g := _grant_of(b)) is not None}
    missing = sorted(want - have)
    if missing:
        for fut in client.create_acls([_binding(g) for g in missing], request_timeout=30).values():
            fut.result()
        _wait_visible(settings, want)
    removed = 0
    if prune:
        stale = [
            b
            for b in have_bindings
            if (g := _grant_of(b)) is not None
            and g not in want
            and g.principal in PRINCIPALS
            and _ours(g.name, prefix)
        ]
        if stale:
            for fut in client.delete_acls([_filter_of(b) for b in stale], request_timeout=30).values():
                removed += len(fut.result())
    return len(missing), removed


def _wait_visible(settings: Settings, want: set[Grant], timeout_s: float = 30) -> None:
    """CreateAcls returns once the controller has committed them; the broker's authorizer applies
    them a moment later. Wait until the broker reports them all, so whoever starts next is allowed."""
    deadline = time.monotonic() + timeout_s
    while True:
        have = broker_grants(settings)
        if want <= have:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(want - have)} ACLs not visible on the broker after {timeout_s:.0f}s")
        time.sleep(0.1)


def _filter_of(b: Any) -> Any:
    from confluent_kafka.admin import AclBindingFilter

    return AclBindingFilter(
        b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
    )


def revoke_grants(settings: Settings, prefix: str) -> int:
    """Remove a test run's ACLs (its prefixed topic set is deleted with them)."""
    if not prefix:
        raise ValueError("refusing to revoke the real topic set's ACLs")
    bindings = [_binding(g) for g in grants(prefix)]
    removed = 0
    client = _admin_client(settings)
    with contextlib.suppress(Exception):
        futures = client.delete_acls([_filter_of(b) for b in bindings], request_timeout=30)
        for fut in futures.values():
            removed += len(fut.result())
    return removed


def ensure_users(settings: Settings, principals: tuple[str, ...] = PRINCIPALS) -> list[str]:
    """A SCRAM-SHA-512 credential for every principal that has none yet; returns who was added."""
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    client = _admin_client(settings)
    described = client.describe_user_scram_credentials(request_timeout=30).result()
    have = {
        user
        for user, desc in described.items()
        if any(info.mechanism == ScramMechanism.SCRAM_SHA_512 for info in desc.scram_credential_infos)
    }
    missing = [p for p in principals if p not in have]
    if missing:
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
        ups = [UserScramCredentialUpsertion(p, info, local_password(p).encode()) for p in missing]
        for fut in client.alter_user_scram_credentials(ups, request_timeout=30).values():
            fut.result()
    return missing


def main(argv: list[str]) -> int:
    settings = get_settings()
    command = argv[:1]
    if command == ["ensure-topics"]:
        created = asyncio.run(ensure_topics(settings))
        print(f"topics: {len(ALL_TOPICS)} ready ({len(created)} created)")
        return 0
    if command == ["ensure-security"]:
        added = ensure_users(settings)
        print(
            f"principals: {len(PRINCIPALS)} with SCRAM-SHA-512 ({len(added)} added{': ' if added else ''}"
            f"{', '.join(added)})"
        )
        made, removed = apply_grants(settings, settings.topic_prefix)
        print(f"acls: {len(grants(settings.topic_prefix))} in the matrix ({made} created, {removed} removed)")
        return 0
    if command == ["acls"]:
        for b in sorted(list_acls(settings), key=lambda b: (b.principal, b.restype.name, b.name)):
            star = "*" if b.resource_pattern_type.name == "PREFIXED" else ""
            print(
                f"{b.principal:<22} {b.permission_type.name:<5} {b.operation.name:<6} "
                f"{b.restype.name.lower()}:{b.name}{star}"
            )
        return 0
    print("usage: python -m shared.admin ensure-topics|ensure-security|acls", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
