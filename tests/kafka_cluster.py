"""A three-node Kafka cluster (deploy/kafka.sh with CONCORD_KAFKA_BROKERS=3) for the tests and the
chaos run: which broker leads which partitions, SIGKILL / SIGSTOP of one node, restarting it.

The tests start one of their own in a temporary state directory on free ports (`started_cluster`);
the chaos run drives the local stack's cluster (`local_cluster`), started by `make chaos-cluster`.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from shared.admin import admin_settings
from shared.kafka_auth import client_options
from shared.settings import Settings
from tests.support import ROOT

SCRIPT = str(ROOT / "deploy" / "kafka.sh")
BROKERS = 3


@dataclass
class KafkaCluster:
    env: dict[str, str]  # what deploy/kafka.sh runs with (state dir, ports, CONCORD_KAFKA_BROKERS=3)
    state_dir: Path
    client_port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.client_port + 2 * i}" for i in range(BROKERS))

    def node_port(self, node_id: int) -> int:
        return self.client_port + 2 * (node_id - 1)

    def pid(self, node_id: int) -> int | None:
        try:
            pid = int((self.state_dir / "run" / f"kafka-{node_id}.pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def signal(self, node_id: int, sig: signal.Signals) -> int:
        pid = self.pid(node_id)
        if pid is None:
            raise RuntimeError(f"kafka-{node_id} is not running")
        os.kill(pid, sig)
        if sig == signal.SIGKILL:
            # The JVM is gone at once; wait for the kernel to reap it before a restart reuses its ports.
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
        return pid

    def start(self, timeout_s: float = 240, attempts: int = 4) -> subprocess.CompletedProcess[str]:
        """Starts every node that is not running (all of them the first time) and waits until ready.
        Tried again when it fails: the ports are in the kernel's ephemeral range, and a client that
        keeps reconnecting to a dead broker's port can briefly hold that very port (a TCP
        self-connection), so the restarted node cannot bind it."""
        for _ in range(attempts):
            done = subprocess.run(
                [SCRIPT, "start"], env=self.env, capture_output=True, text=True, timeout=timeout_s
            )
            if done.returncode == 0:
                break
            time.sleep(2)
        return done

    def stop(self) -> None:
        subprocess.run([SCRIPT, "stop"], env=self.env, capture_output=True, timeout=180)


async def partition_leaders(settings: Settings, topics: list[str]) -> dict[int, list[str]]:
    """Node id → the partitions (`topic[p]`) it leads now."""
    admin = AIOKafkaAdminClient(**client_options(admin_settings(settings)), request_timeout_ms=10000)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    leaders: dict[int, list[str]] = {}
    for t in described:
        for p in t["partitions"]:
            leaders.setdefault(int(p["leader"]), []).append(
                f"{settings.unprefixed(t['topic'])}[{p['partition']}]"
            )
    return leaders


async def in_sync_replicas(settings: Settings, topics: list[str]) -> dict[str, list[int]]:
    """`topic[p]` → the node ids in its ISR now."""
    admin = AIOKafkaAdminClient(**client_options(admin_settings(settings)), request_timeout_ms=10000)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {
        f"{settings.unprefixed(t['topic'])}[{p['partition']}]": sorted(p["isr"])
        for t in described
        for p in t["partitions"]
    }


def _free_run(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_run(count: int = 2 * BROKERS) -> int:
    """The first of `count` consecutive free ports (node i: client first + 2(i-1), controller +1)."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(30000, 60000 - count)
        if _free_run(first, count):
            return first
    raise RuntimeError("no run of free ports found")


@contextmanager
def started_cluster(state_dir: Path, heap: str = "256m") -> Iterator[KafkaCluster]:
    """A cluster of its own (own state directory, free ports), with the SCRAM credentials and the
    ACL matrix of SPEC §11, exactly as `make up` makes the local one; stopped afterwards."""
    (state_dir / "kafka-libs").symlink_to(ROOT / ".cache" / "kafka-libs")
    first = free_port_run()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")},
        "CONCORD_STATE_DIR": str(state_dir),
        "CONCORD_KAFKA_BROKERS": str(BROKERS),
        "CONCORD_KAFKA_PORT": str(first),
        "CONCORD_KAFKA_CONTROLLER_PORT": str(first + 1),
        "CONCORD_KAFKA_HEAP": heap,
    }
    cluster = KafkaCluster(env, state_dir, first, first + 1)
    try:
        started = cluster.start()
        assert started.returncode == 0, started.stdout + started.stderr
        security = subprocess.run(
            [sys.executable, "-m", "shared.admin", "ensure-security"],
            env={**env, "CONCORD_KAFKA_BOOTSTRAP": cluster.bootstrap},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert security.returncode == 0, security.stdout + security.stderr
        yield cluster
    finally:
        cluster.stop()


def local_cluster() -> KafkaCluster:
    """The local stack's cluster (CONCORD_KAFKA_BROKERS=3 make up / make chaos-cluster)."""
    state = Path(os.environ.get("CONCORD_STATE_DIR") or ROOT / ".cache")
    env = {**os.environ, "CONCORD_KAFKA_BROKERS": str(BROKERS)}
    return KafkaCluster(
        env,
        state,
        int(os.environ.get("CONCORD_KAFKA_PORT", "9092")),
        int(os.environ.get("CONCORD_KAFKA_CONTROLLER_PORT", "9093")),
    )
