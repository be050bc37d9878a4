"""The chaos run: the same workload twice — once fault-free, once under crashes, broker and
database restarts and duplicate deliveries — then the end states compared and invariants checked.

The driver plays every upstream system and the payment rail. It watches the output topics from
the beginning (each run has its own topic prefix and scratch databases), answers every
`payout.released` with a signed rail response, and decides quiescence from what it sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

from chaos.outcome import Check, RunOutcome, check_runs, summarise
from chaos.workload import PHASES, Record, Workload, build
from services.bank_gateway.domain.accounts import sandbox_iban
from services.bank_gateway.domain.ids import end_to_end_id
from services.ledger.queries import check_invariants
from shared.acl import consumer_group, local_password, writer_of
from shared.admin import admin_settings
from shared.envelope import SCHEMA_VERSION, Envelope, derived_event_id
from shared.kafka_auth import as_principal, client_options
from shared.outbox import make_producer
from shared.services import SERVICES_AND_GATEWAY
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.topics import (
    ALL_TOPICS,
    COMPLIANCE_ELIGIBILITY,
    DEADLETTER,
    IN_COMMANDS,
    IN_RAIL_EVENTS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_INVOICE_RESPONSES,
    OUT_JOURNAL,
    OUT_PAYOUTS,
    OUT_REJECTIONS,
    PAYOUTS_EVENTS,
    Topic,
)
from testkit import bank
from testkit import documents as doc
from testkit.watch import Seen, TopicWatcher, WaitTimedOut
from tests.kafka_cluster import KafkaCluster, in_sync_replicas, local_cluster, partition_leaders
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings
from tests.support import ROOT, scratch_service_database

# The driver's own Kafka clients complain loudly through every broker restart; they recover.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

WATCHED: tuple[Topic, ...] = (
    INTAKE_DOCUMENTS,
    OUT_REJECTIONS,
    MATCHING_DECISIONS,
    COMPLIANCE_ELIGIBILITY,
    OUT_PAYOUTS,
    PAYOUTS_EVENTS,
    OUT_EXCEPTIONS,
    OUT_JOURNAL,
    DEADLETTER,
    OUT_INVOICE_RESPONSES,
)
# Outputs that recur without new input (every scheduled run re-blocks what it cannot pay);
# they must not keep a run from counting as quiet.
RECURRING = {"payout.blocked", "hold.escalated"}
DECISIONS = {"invoice.approved_to_pay", "invoice.held", "invoice.superseded"}


@dataclass(frozen=True)
class ChaosConfig:
    seed: int = 7
    invoices: int = 2000
    kills_per_service: int = 3
    restart_kafka: bool = True
    restart_postgres: bool = True
    # Seconds between two faults (uniform in this range, from the seed).
    fault_gap_s: tuple[float, float] = (4.0, 10.0)
    duplicate_delay_share: float = 0.3  # share of second copies published later, not at once
    quiet_s: float = 10.0  # no new outputs for this long = quiescent
    phase_timeout_s: float = 600.0
    settle_timeout_s: float = 900.0
    payout_run_interval_s: float = 2.0
    publish_concurrency: int = 200
    relay_start_delay_s: float = 2.0  # faulty run only
    # The cluster shape (make chaos-cluster): the local stack's three brokers, N processes of each
    # service. Instead of restarting the only broker: SIGKILL the broker that leads the most
    # partitions `broker_kills` times (restarting it each time), pause one (SIGSTOP) for
    # `broker_pause_s` (past replica.lag.time.max.ms, 10 s locally: it leaves the ISR), and kill a
    # replica while its consumer group rebalances after another replica's crash.
    brokers: int = 1
    replicas: int = 1
    broker_kills: int = 3
    broker_pause_s: float = 14.0
    rebalance_kills: int = 2


def instance_names(replicas: int) -> list[str]:
    """Service processes of a run: `intake` (replica 1), `intake-2`, … as deploy/services.sh names them."""
    return [n if r == 1 else f"{n}-{r}" for r in range(1, replicas + 1) for n in SERVICES_AND_GATEWAY]


def service_of(instance: str) -> str:
    return instance.rsplit("-", 1)[0] if instance[-1].isdigit() and "-" in instance else instance


@dataclass
class Fault:
    kind: str
    target: str
    at_s: float
    took_s: float = 0.0
    note: str = ""


@dataclass
class ChaosReport:
    config: ChaosConfig
    workload: Workload
    baseline: RunOutcome
    faulty: RunOutcome
    faults: list[Fault]
    checks: list[Check]
    duration_s: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.blocking)


# --- watching -------------------------------------------------------------------------------


class Watcher(TopicWatcher):
    """Every record on the output topics from offset 0, deduplicated by event_id, in arrival order
    (as admin: internal topics). Keeps polling through broker restarts (a poll error is counted and
    retried, never fatal). Notes on the way what quiescence is decided from."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            admin_settings(settings), WATCHED, from_beginning=True, survive_errors=True, max_poll_records=2000
        )
        self.last_progress = time.monotonic()
        self.causes: set[str] = set()  # event ids intake has answered
        self.rejected: set[str] = set()  # event ids intake rejected
        self.decided: set[str] = set()  # invoice ids matching has decided on
        self.approved: set[str] = set()  # invoice ids matching has approved at least once
        self.lapsed: set[str] = set()  # override ids a hold.opened said lapsed (SPEC §13.4)
        self.standing: dict[str, str] = {}  # payee → latest "eligible" / "ineligible:<reasons>"

    def on_seen(self, seen: Seen) -> None:
        env = seen.envelope
        if env.get("causation_id"):
            self.causes.add(env["causation_id"])
        data = seen.data
        if seen.event_type == "document.rejected":
            self.causes.add(data.get("rejected_event_id", ""))
            self.rejected.add(data.get("rejected_event_id", ""))
        if seen.event_type in DECISIONS:
            self.decided.add(data.get("invoice_id", ""))
        if seen.event_type == "invoice.approved_to_pay":
            self.approved.add(data.get("invoice_id", ""))
        if seen.event_type == "hold.opened" and data.get("lapsed_override_id"):
            self.lapsed.add(data["lapsed_override_id"])
        if seen.event_type == "payee.eligibility_changed":
            self.standing[data.get("payee_id", "")] = (
                "eligible"
                if data.get("eligible")
                else "ineligible:" + ",".join(sorted(data.get("reasons", [])))
            )
        if seen.event_type not in RECURRING:
            self.last_progress = time.monotonic()

    def pairs(self) -> list[tuple[str, dict[str, Any]]]:
        """(topic without prefix, envelope) of each record seen, in arrival order."""
        return [(self.settings.unprefixed(s.topic), s.envelope) for s in self.seen]

    def data_of(self, event_type: str) -> list[dict[str, Any]]:
        return [s.data for s in self.of(event_type)]


# --- publishing -------------------------------------------------------------------------------


class Upstream:
    """Publishes raw records and waits for the broker's ack, retrying through a broker restart
    (a fresh producer after an error: an idempotent producer may not survive a restart)."""

    def __init__(self, settings: Settings, concurrency: int) -> None:
        self.settings = settings
        self.sem = asyncio.Semaphore(concurrency)
        # One producer per principal (SPEC §11): upstream, rail and ops each publish what they own.
        self.producers: dict[str, AIOKafkaProducer] = {}
        self.lock = asyncio.Lock()
        self.published = 0

    async def _producer(self, topic: Topic) -> AIOKafkaProducer:
        principal = writer_of(topic)
        async with self.lock:
            if principal not in self.producers:
                p = make_producer(as_principal(self.settings, principal, local_password(principal)))
                await p.start()
                self.producers[principal] = p
            return self.producers[principal]

    async def _reset(self, broken: AIOKafkaProducer) -> None:
        async with self.lock:
            principal = next((k for k, v in self.producers.items() if v is broken), None)
            if principal is None:
                return  # another sender already replaced it
            del self.producers[principal]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broken.stop(), 10)

    async def send(self, topic: Topic, key: str, value: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        async with self.sem:
            deadline = time.monotonic() + 300
            while True:
                producer: AIOKafkaProducer | None = None
                try:
                    producer = await self._producer(topic)
                    await asyncio.wait_for(
                        producer.send_and_wait(
                            self.settings.topic(topic),
                            value=value,
                            key=key.encode(),
                            headers=[(k, v.encode()) for k, v in headers],
                        ),
                        60,
                    )
                    self.published += 1
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    if producer is not None:
                        await self._reset(producer)
                    await asyncio.sleep(1)

    async def record(self, rec: Record) -> None:
        await self.send(rec.topic, rec.key, rec.value, rec.headers)

    async def signed(self, topic: Topic, key: str, env: Envelope, secret: str) -> None:
        value = env.model_dump_json().encode()
        await self.send(
            topic, key, value, (("content-type", "application/json"), (SIGNATURE_HEADER, sign(secret, value)))
        )

    async def close(self) -> None:
        for producer in self.producers.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)


def _envelope(event_type: str, data: dict[str, Any], event_id: str, source: str) -> Envelope:
    return Envelope(
        event_id=event_id,
        event_type=event_type,
        schema_version=SCHEMA_VERSION,
        occurred_at=datetime.now(UTC),
        source=source,
        data=data,
    )


# --- the payment rail -------------------------------------------------------------------------


@dataclass
class Rail:
    """Answers each payout.released once: failed first when it carries an invoice of the
    workload's fail-first set not failed before, else settled. With `replay`, every answer is
    sent twice with the same event_id and once more with a fresh event_id and the same
    rail_event_id, as real rails replay."""

    workload: Workload
    watcher: Watcher
    upstream: Upstream
    secret: str
    replay: bool
    answered: dict[str, str] = field(default_factory=dict)  # payout_id → settled/failed
    failed_once: set[str] = field(default_factory=set)
    cursor: int = 0

    async def run(self) -> None:
        while True:
            seen = self.watcher.seen
            new = seen[self.cursor :]
            self.cursor = len(seen)
            for s in new:
                if s.event_type == "payout.released":
                    await self.answer(s.data)
            await asyncio.sleep(0.2)

    async def answer(self, payout: dict[str, Any]) -> None:
        payout_id = payout["payout_id"]
        if payout_id in self.answered:
            return
        invoices = {line["invoice_id"] for line in payout["invoices"]}
        to_fail = (invoices & self.workload.fail_first) - self.failed_once
        if to_fail:
            self.failed_once |= to_fail
            kind = "failed"
            data = doc.payout_failed(
                payout_id,
                rail_event_id=f"rail-{payout_id}-failed",
                failure_code="R03",
                message="no account / unable to locate account",
            )
            event_type = "payout.failed"
        else:
            kind = "settled"
            data = doc.payout_settled(
                payout_id,
                rail_event_id=f"rail-{payout_id}-settled",
                amount=payout["amount"],
                currency=payout["currency"],
                settled_at=datetime.now(UTC).isoformat(),
            )
            event_type = "payout.settled"
        self.answered[payout_id] = kind
        env = _envelope(event_type, data, derived_event_id("chaos-rail", payout_id, kind), "chaos-rail")
        await self.upstream.signed(IN_RAIL_EVENTS, payout_id, env, self.secret)
        if self.replay:
            await self.upstream.signed(IN_RAIL_EVENTS, payout_id, env, self.secret)
            fresh = _envelope(
                event_type, data, derived_event_id("chaos-rail-replay", payout_id, kind), "chaos-rail"
            )
            await self.upstream.signed(IN_RAIL_EVENTS, payout_id, fresh, self.secret)

    def pending(self) -> list[str]:
        """Answered payouts whose answer payout_release has not recorded yet."""
        recorded = {d["payout_id"] for d in self.watcher.data_of("payout.settlement_recorded")} | {
            d["payout_id"] for d in self.watcher.data_of("payout.failure_recorded")
        }
        released = {d["payout_id"] for d in self.watcher.data_of("payout.released")}
        return sorted(released - recorded)


@dataclass
class FileRail(Rail):
    """The rail as a bank behind bank_gateway (SPEC §12.4): it answers the gateway's pain.001 files
    with a pain.002 and a camt.054 in the gateway's inbox — failed (`AM04`: not the payee's
    account, so the invoice is paid again next run) when a payout carries an invoice of the
    fail-first set not failed before, else booked. With `replay`, every status report is dropped
    a second time under another name: the gateway refuses it `duplicate_file`."""

    outbox: Path = Path()
    inbox: Path = Path()

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.answer_files)
            await asyncio.sleep(0.3)

    def answer_files(self) -> None:
        if not self.outbox.is_dir():
            return
        released = {end_to_end_id(d["payout_id"]): d for d in self.watcher.data_of("payout.released")}
        for path in sorted(p for p in self.outbox.iterdir() if p.is_file() and not p.name.startswith(".")):
            raw = path.read_bytes()
            msg_id, txs = bank.read_pain001(raw)
            if any(t.end_to_end_id not in released for t in txs):
                continue  # the watcher has not seen every payout of this file yet
            failing = {t.end_to_end_id for t in txs if self._fails(released[t.end_to_end_id])}
            _, report, notification = bank.answer(
                raw,
                lambda t, failing=failing: t.end_to_end_id in failing,  # type: ignore[misc]
                reject_code="AM04",
                reject_text="Insufficient funds (chaos bank)",
            )
            for t in txs:
                self.answered[released[t.end_to_end_id]["payout_id"]] = (
                    "failed" if t.end_to_end_id in failing else "settled"
                )
            _drop(self.inbox, f"{msg_id}.pain.002.xml", report)
            if notification is not None:
                _drop(self.inbox, f"{msg_id}.camt.054.xml", notification)
            if self.replay:
                _drop(self.inbox, f"{msg_id}.again.pain.002.xml", report)
            sent = self.outbox.parent / "sent"
            sent.mkdir(parents=True, exist_ok=True)
            os.replace(path, sent / path.name)

    def _fails(self, payout: dict[str, Any]) -> bool:
        invoices = {line["invoice_id"] for line in payout["invoices"]}
        to_fail = (invoices & self.workload.fail_first) - self.failed_once
        self.failed_once |= to_fail
        return bool(to_fail)


def _drop(folder: Path, name: str, data: bytes) -> None:
    """As a transfer agent delivers: written aside (a dotfile the gateway ignores), then renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder / f".{name}.part"
    aside.write_bytes(data)
    os.replace(aside, folder / name)


def bank_overrides(workload: Workload, folder: Path) -> dict[str, Any]:
    """bank_gateway's settings for a run: its own folders, and a vault resolving every payee's token
    (the workload's tokens are `tok_<payee>`, not sandbox `acct-tok-…` ones)."""
    tokens = sorted(
        {
            data["payout_account_ref"]
            for r in workload.records
            if r.event_type == "payee.profile_updated" and not r.bad
            for data in [_payload(r)]
            if isinstance(data.get("payout_account_ref"), str)
        }
    )
    vault = {"tokens": {t: {"iban": sandbox_iban("chaos:" + t), "name": "Chaos payee"} for t in tokens}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vault.yaml").write_text(yaml.safe_dump(vault))
    return {
        "bank_outbox": str(folder / "outbox"),
        "bank_inbox": str(folder / "inbox"),
        "bank_vault_file": str(folder / "vault.yaml"),
        "bank_sandbox": True,
        "bank_cutoff_s": 1.0,
        "bank_poll_s": 0.3,
        "bank_settle_s": 0.2,
    }


def _payload(r: Record) -> dict[str, Any]:
    try:
        data = json.loads(r.value).get("data")
    except (ValueError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


# --- faults -----------------------------------------------------------------------------------


async def _shell(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def restart_component(script: str, timeout_s: float = 180) -> str:
    """stop; start — and make sure it is back even if `start` reports a failure (another
    developer's `make test` may start it in the same moment): the shared broker and database
    must never stay down longer than the fault."""
    path = str(ROOT / "deploy" / script)
    await _shell(path, "stop")
    code, out = await _shell(path, "start")
    note = "" if code == 0 else f"start exited {code}: {out.splitlines()[-1] if out else ''}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await _shell(path, "status"))[0] == 0:
            return note
        await asyncio.sleep(2)
        code, out = await _shell(path, "start")
    raise RuntimeError(f"{script} did not come back: {note} / {out}")


@dataclass
class Injector:
    config: ChaosConfig
    processes: dict[str, ServiceProcess]
    started: float
    faults: list[Fault] = field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: Settings | None = None  # the run's topic set (partition leaders, ISR)
    cluster: KafkaCluster | None = None

    def window_s(self) -> float:
        """Roughly how long the fault storm lasts (the restarts' own duration not counted)."""
        low, high = self.config.fault_gap_s
        return len(self.schedule()) * (low + high) / 2

    def schedule(self) -> list[tuple[str, str]]:
        rng = random.Random(self.config.seed * 7919 + 1)
        # Each service's kills go round its replicas.
        plan = [
            ("sigkill", name if k % self.config.replicas == 0 else f"{name}-{k % self.config.replicas + 1}")
            for name in SERVICES_AND_GATEWAY
            for k in range(self.config.kills_per_service)
        ]
        if self.config.replicas > 1:
            plan += [
                ("kill during rebalance", rng.choice(SERVICES_AND_GATEWAY))
                for _ in range(self.config.rebalance_kills)
            ]
        rng.shuffle(plan)
        # The broker and database faults land in the middle of the crash storm, not at its edges.
        if self.config.brokers > 1:
            for k in range(self.config.broker_kills):
                plan.insert(
                    (k + 1) * len(plan) // (self.config.broker_kills + 2), ("sigkill", "kafka broker")
                )
            plan.insert(len(plan) // 2, ("sigstop", "kafka broker"))
        elif self.config.restart_kafka:
            plan.insert(len(plan) // 3, ("restart", "kafka"))
        if self.config.restart_postgres:
            plan.insert(2 * len(plan) // 3, ("restart", "postgresql"))
        return plan

    def _restart(self, instance: str) -> None:
        proc = self.processes[instance]
        proc.kill()
        proc.start(**self.overrides.get(service_of(instance), {}))

    async def run(self) -> None:
        rng = random.Random(self.config.seed * 104729 + 3)
        for kind, target in self.schedule():
            await asyncio.sleep(rng.uniform(*self.config.fault_gap_s))
            fault = Fault(kind, target, time.monotonic() - self.started)
            t0 = time.monotonic()
            if kind == "sigkill" and target == "kafka broker":
                fault.target, fault.note = await self._kill_broker()
            elif kind == "sigstop":
                fault.target, fault.note = await self._pause_broker()
            elif kind == "sigkill":
                # Restarted at once but not waited for: the next fault may hit a service that
                # is still starting, or two services may be down together, as in real outages.
                self._restart(target)
            elif kind == "kill during rebalance":
                # Replica 1 crashes and comes back: its group rebalances; while it does, replica 2
                # is killed too (its partitions move again before the first move has settled).
                self._restart(target)
                await asyncio.sleep(1.5)
                self._restart(f"{target}-2")
                fault.note = f"{target} killed and restarted, {target}-2 killed 1.5 s later"
            else:
                fault.note = await restart_component("kafka.sh" if target == "kafka" else "postgres.sh")
            fault.took_s = time.monotonic() - t0
            self.faults.append(fault)

    async def _leaders(self) -> dict[int, list[str]]:
        assert self.settings is not None
        names = [self.settings.topic(t) for t in ALL_TOPICS]
        return await partition_leaders(self.settings, names)

    async def _kill_broker(self) -> tuple[str, str]:
        """SIGKILL the broker that leads the most of the run's partitions, then start it again."""
        assert self.cluster is not None
        leaders = await self._leaders()
        node = max(leaders, key=lambda n: len(leaders[n]))
        await asyncio.to_thread(self.cluster.signal, node, signal.SIGKILL)
        await asyncio.sleep(3)  # the cluster fences it and moves its leaders before it comes back
        started = await asyncio.to_thread(self.cluster.start)
        note = _led(leaders[node])
        if started.returncode != 0:
            note += f"; restart exited {started.returncode}"
        return f"kafka-{node}", note

    async def _pause_broker(self) -> tuple[str, str]:
        """SIGSTOP a broker long enough to drop it from the ISR of what it follows, then SIGCONT."""
        assert self.cluster is not None and self.settings is not None
        leaders = await self._leaders()
        node = min(leaders, key=lambda n: len(leaders[n]))  # a follower mostly: the ISR shrinks
        pid = await asyncio.to_thread(self.cluster.signal, node, signal.SIGSTOP)
        try:
            await asyncio.sleep(self.config.broker_pause_s)
            others = ",".join(f"127.0.0.1:{self.cluster.node_port(n)}" for n in (1, 2, 3) if n != node)
            isr = await in_sync_replicas(
                self.settings.model_copy(update={"kafka_bootstrap": others}),
                [self.settings.topic(t) for t in ALL_TOPICS],
            )
        except Exception as exc:
            isr = {}
            note_err = f"; ISR not read: {exc!r}"
        else:
            note_err = ""
        finally:
            os_kill(pid, signal.SIGCONT)
        out_of_isr = sum(1 for nodes in isr.values() if node not in nodes)
        return (
            f"kafka-{node}",
            f"paused {self.config.broker_pause_s:.0f}s, led {len(leaders.get(node, []))} partitions; "
            f"out of the ISR of {out_of_isr}/{len(isr)} partitions when resumed" + note_err,
        )


def os_kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, sig)


def _led(partitions: list[str]) -> str:
    shown = ", ".join(sorted(partitions)[:6])
    more = f" and {len(partitions) - 6} more" if len(partitions) > 6 else ""
    return f"led {len(partitions)} partitions: {shown}{more}"


# --- one run ----------------------------------------------------------------------------------


async def _wait(
    watcher: Watcher, console: Console, label: str, timeout_s: float, cond: Callable[[], bool], what: str
) -> bool:
    """Wait for a phase's outputs. A wait not met is said (what it waited for, what was seen) and the
    run goes on: its checks then tell what the missing outputs cost."""
    try:
        await watcher.wait_until(cond, timeout_s, what)
    except WaitTimedOut as timed_out:
        console.print(f"[yellow][{label}] {timed_out}[/]")
        return False
    return True


async def run_once(
    workload: Workload,
    config: ChaosConfig,
    *,
    faulty: bool,
    console: Console,
    on_started: Callable[[float], Awaitable[None]] | None = None,
) -> tuple[RunOutcome, list[Fault]]:
    label = "faulty" if faulty else "fault-free"
    t_start = time.monotonic()
    cluster = local_cluster() if config.brokers > 1 else None
    # On the cluster, every node is a bootstrap address: a client (re)started while one is down
    # must still find the others.
    bootstrap = {"kafka_bootstrap": cluster.bootstrap} if cluster is not None else {}
    settings = isolated_settings(
        payout_run_interval_s=config.payout_run_interval_s, relay_poll_interval_s=0.1, **bootstrap
    )
    # Matching escalates holds at the payout-run cadence; 2 s would escalate every hold during
    # the run, a time-dependent output the comparison should not have to ignore.
    overrides: dict[str, dict[str, Any]] = {n: {} for n in SERVICES_AND_GATEWAY}
    overrides["matching"]["payout_run_interval_s"] = 3600.0
    # SPEC §13.3: the workload's account changes happened a day before the run; a short cooling-off
    # (as in the demo) leaves their confirmations in phase E as the only thing that ends them.
    overrides["compliance_gate"]["account_change_cooling_off_hours"] = 0.002
    bank_folder = ROOT / ".cache" / "chaos" / "bank" / settings.topic_prefix.rstrip(".")
    overrides["bank_gateway"].update(bank_overrides(workload, bank_folder))
    if faulty:
        # Committed outbox rows wait a moment after every (re)start before the relay publishes
        # them: a crash in that window is the "committed but not published" case of SPEC §1.2.
        for n in SERVICES_AND_GATEWAY:
            overrides[n]["relay_start_delay_s"] = config.relay_start_delay_s
    await create_topics(settings)
    rng = random.Random(config.seed * 31 + (1 if faulty else 0))
    faults: list[Fault] = []
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_topics, settings)  # last, once everything has stopped
        # Each service on its owner and runtime roles, as in production (SPEC §11); the run reads
        # the databases as concord_admin.
        dbs = {n: await stack.enter_async_context(scratch_service_database(n)) for n in SERVICES_AND_GATEWAY}
        dsns = {n: db.admin for n, db in dbs.items()}
        procs = {
            n: ServiceProcess(
                f"services.{service_of(n)}",
                settings.model_copy(update=dbs[service_of(n)].settings()),
                f"chaos-{label}-{n}",
            )
            for n in instance_names(config.replicas)
        }

        def stop_all() -> None:
            for p in procs.values():
                p.stop()

        stack.callback(stop_all)
        for n, p in procs.items():
            p.start(**overrides.get(service_of(n), {}))
        for p in procs.values():
            await p.wait_ready(120)
        watcher = Watcher(settings)
        await watcher.start()
        stack.push_async_callback(watcher.stop)
        wait = functools.partial(_wait, watcher, console, label, config.phase_timeout_s)
        upstream = Upstream(settings, config.publish_concurrency)
        stack.push_async_callback(upstream.close)
        # The rail answers through bank files (SPEC §12.4): bank_gateway writes and reads them.
        rail = FileRail(
            workload,
            watcher,
            upstream,
            settings.rail_secret,
            replay=faulty,
            outbox=Path(overrides["bank_gateway"]["bank_outbox"]),
            inbox=Path(overrides["bank_gateway"]["bank_inbox"]),
        )
        drain = Drain(settings, dsns)
        rail_task = asyncio.create_task(rail.run())
        injector = Injector(config, procs, t_start, overrides=overrides, settings=settings, cluster=cluster)
        fault_task = asyncio.create_task(injector.run()) if faulty else None
        supervisor = asyncio.create_task(_supervise(procs, overrides, injector, t_start))
        try:
            delayed: list[Record] = []
            for phase in PHASES:
                records = workload.phases[phase]
                with console.status(f"[{label}] phase {phase}: publishing {len(records)} records…"):
                    if faulty:
                        # The previous phase's late second copies arrive in the middle of this one.
                        late, delayed = delayed, []
                        copies: list[Record] = []
                        for r in records:
                            copies.append(r)
                            if rng.random() < config.duplicate_delay_share:
                                delayed.append(r)
                            else:
                                copies.append(r)
                        copies[len(copies) // 2 : len(copies) // 2] = late
                        # Spread over the fault storm, so crashes land on work in flight.
                        await _publish_paced(upstream, copies, injector.window_s() / len(PHASES))
                    else:
                        await _publish_in_order(upstream, records)
                wanted = [r.event_id for r in records if r.intake_input]
                with console.status(f"[{label}] phase {phase}: waiting for intake…"):
                    done = await wait(
                        _all_seen(watcher, wanted), f"phase {phase}: intake's answer to every record"
                    )
                if not done:
                    missing = sum(1 for e in wanted if e not in watcher.causes)
                    console.print(
                        f"[yellow][{label}] phase {phase}: {missing} records without intake output[/]"
                    )
                if phase == "A":
                    # SPEC §13.3: every changed account must have made its payee ineligible before
                    # any invoice arrives, or one could be paid to the old account in between.
                    with console.status(f"[{label}] phase {phase}: waiting for the account changes…"):
                        await wait(
                            _all_unconfirmed(watcher, list(workload.account_changes)),
                            "phase A: every changed account's payee ineligible",
                        )
                if phase == "C":
                    # SPEC §13.4: phase D's amendments must find the override accepted and the
                    # invoice approved on it, or nothing would lapse.
                    with console.status(f"[{label}] phase {phase}: waiting for the overrides…"):
                        await wait(
                            lambda: all(i in watcher.approved for i in workload.lapsing),
                            "phase C: every override accepted and its invoice approved",
                        )
                if phase == "D":
                    # …and the lapse must have happened before phase E makes their payee eligible.
                    with console.status(f"[{label}] phase {phase}: waiting for the lapses…"):
                        await wait(
                            lambda: set(workload.lapsing.values()) <= watcher.lapsed,
                            "phase D: every override lapsed",
                        )
                if phase == "B":
                    # Overrides in phase C name holds: matching must have decided phase B first,
                    # or the outcome would depend on which topic matching happened to read first.
                    # Rejections are read as the wait goes: intake's Invoice Response (RE) is sent
                    # before its document.rejected (out.invoice-responses is sent first), so the
                    # wait for intake can end with a rejection not yet seen — read once, up front,
                    # it made that invoice one to wait 600 s for a decision that never comes.
                    invoices = [
                        (r.event_id, workload.invoice_event_ids[r.event_id])
                        for r in records
                        if r.event_id in workload.invoice_event_ids
                    ]
                    with console.status(f"[{label}] phase {phase}: waiting for matching…"):
                        decided = await wait(
                            _all_decided(watcher, invoices), "phase B: matching's decision on every invoice"
                        )
                    if not decided:
                        undecided = _undecided(watcher, invoices)
                        console.print(
                            f"[yellow][{label}] phase B: {len(undecided)} invoices without a decision, "
                            f"e.g. {', '.join(undecided[:5])}[/]"
                        )
            if delayed:
                await _publish_in_order(upstream, delayed)
            if fault_task is not None:
                with console.status(f"[{label}] waiting for the remaining faults…"):
                    await fault_task
                faults = injector.faults
                await _all_ready(procs)
            with console.status(f"[{label}] waiting for quiescence…"):
                await _quiesce(watcher, rail, drain, config, console)
            # The final run names no scope: everything payable now is paid now, in both runs.
            run_id = f"chaos-final-{label}-{workload.tag}"
            cmd = _envelope(
                "payout_run.requested",
                doc.payout_run(run_id, requested_by="treasury@example.com"),
                derived_event_id("chaos-final-run", run_id),
                "chaos-ops",
            )
            await upstream.signed(IN_COMMANDS, run_id, cmd, settings.ops_secret)
            if faulty:
                await upstream.signed(IN_COMMANDS, run_id, cmd, settings.ops_secret)
            with console.status(f"[{label}] final payout run, waiting for quiescence…"):
                await asyncio.sleep(config.payout_run_interval_s * 2)
                await _quiesce(watcher, rail, drain, config, console)
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            rail_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rail_task
            if fault_task is not None and not fault_task.done():
                fault_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fault_task
                faults = injector.faults
        outcome = summarise(label, workload, watcher.pairs())
        _dump(label, workload, watcher)
        conn = await asyncpg.connect(dsns["ledger"])
        try:
            outcome.ledger_violations = [f"{v.invariant}: {v.detail}" for v in await check_invariants(conn)]
            outcome.balances = {
                (r["account"], r["currency"].strip()): r["balance"]
                for r in await conn.fetch(
                    """SELECT account, currency, sum(debit) - sum(credit) AS balance FROM journal_lines
                        GROUP BY account, currency"""
                )
            }
        finally:
            await conn.close()
        if watcher.errors:
            outcome.notes.append(f"watcher poll errors: {watcher.errors}")
        pending = rail.pending()
        if pending:
            outcome.notes.append(f"{len(pending)} payouts without a recorded rail outcome")
        outcome.duration_s = time.monotonic() - t_start
        outcome.rail_answers = len(rail.answered)
    return outcome, faults


def _dump(label: str, workload: Workload, watcher: Watcher) -> None:
    """Every output event of the run, for the post-mortem of a failed check."""
    path = ROOT / ".cache" / "chaos" / f"{workload.tag}-{label}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for topic, env in watcher.pairs():
            f.write(json.dumps({"topic": topic, **env}) + "\n")


def _undecided(watcher: Watcher, invoices: list[tuple[str, str]]) -> list[str]:
    """The invoices (record event id, invoice id) neither rejected by intake nor decided by matching."""
    return [i for e, i in invoices if e not in watcher.rejected and i not in watcher.decided]


def _all_decided(watcher: Watcher, invoices: list[tuple[str, str]]) -> Callable[[], bool]:
    return lambda: not _undecided(watcher, invoices)


def _all_unconfirmed(watcher: Watcher, payees: list[str]) -> Callable[[], bool]:
    return lambda: all(watcher.standing.get(p) == "ineligible:payout_account_unconfirmed" for p in payees)


def _all_seen(watcher: Watcher, event_ids: list[str]) -> Callable[[], bool]:
    return lambda: all(e in watcher.causes for e in event_ids)


async def _all_ready(procs: dict[str, ServiceProcess], timeout_s: float = 180) -> None:
    """Every service answers /health/ready (one that exits meanwhile is restarted by the supervisor)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(await asyncio.gather(*(asyncio.to_thread(p.is_ready) for p in procs.values()))):
            return
        await asyncio.sleep(0.5)
    stuck = [n for n, p in procs.items() if not p.is_ready()]
    raise TimeoutError(f"not ready {timeout_s:.0f}s after the fault storm: {', '.join(stuck)}")


async def _supervise(
    procs: dict[str, ServiceProcess], overrides: dict[str, dict[str, Any]], injector: Injector, started: float
) -> None:
    """What systemd or a container runtime does: a service that exits on its own is started
    again (e.g. one that was restarted while PostgreSQL was down and failed fast)."""
    while True:
        await asyncio.sleep(1.0)
        for name, proc in procs.items():
            if proc.proc is not None and proc.proc.poll() is not None:
                injector.faults.append(
                    Fault(
                        "exited, restarted",
                        name,
                        time.monotonic() - started,
                        float(proc.proc.returncode or 0),
                    )
                )
                proc.start(**overrides.get(service_of(name), {}))


async def _publish_paced(upstream: Upstream, records: list[Record], span_s: float, chunks: int = 10) -> None:
    """In `chunks` slices over about `span_s` seconds; a key's records keep their order because
    slices are published one after the other."""
    size = max(1, -(-len(records) // chunks))
    for start in range(0, len(records), size):
        t0 = time.monotonic()
        await _publish_in_order(upstream, records[start : start + size])
        await asyncio.sleep(max(0.0, span_s / chunks - (time.monotonic() - t0)))


async def _publish_in_order(upstream: Upstream, records: list[Record]) -> None:
    """Concurrently, but a key's records in their list order (one sender per key)."""
    by_key: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        by_key.setdefault((r.topic.name, r.key), []).append(r)

    async def one_key(rs: list[Record]) -> None:
        for r in rs:
            await upstream.record(r)

    await asyncio.gather(*(one_key(rs) for rs in by_key.values()))


@dataclass
class Drain:
    """Has every service consumed everything on its topics and published its whole outbox?
    Silence alone is not enough: a service still waiting for its consumer group to rebalance
    after a crash is silent too."""

    settings: Settings
    dsns: dict[str, str]
    last: str = ""

    async def __call__(self) -> bool:
        try:
            return await asyncio.wait_for(self._check(), 30)
        except Exception as exc:  # a broker or database hiccup: not drained yet
            self.last = f"drain check failed: {exc!r}"
            return False

    async def _check(self) -> bool:
        for name, dsn in self.dsns.items():
            conn = await asyncpg.connect(dsn)
            try:
                unpublished = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            finally:
                await conn.close()
            if unpublished:
                self.last = f"{name}: {unpublished} outbox rows unpublished"
                return False
        admin = AIOKafkaAdminClient(**client_options(admin_settings(self.settings)))
        consumer = AIOKafkaConsumer(**client_options(admin_settings(self.settings)), group_id=None)
        await admin.start()
        await consumer.start()
        try:
            for name in self.dsns:
                router = importlib.import_module(f"services.{name}.handlers").router
                partitions = [
                    TopicPartition(self.settings.topic(t), p)
                    for t in router.topics
                    for p in range(t.partitions)
                ]
                ends = await consumer.end_offsets(partitions)
                # bank_gateway consumes as `rail`, in a group under that principal's prefix.
                group = consumer_group(name, self.settings.topic_prefix)
                committed = await admin.list_consumer_group_offsets(group)
                lag = sum(
                    end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items() if end
                )
                if lag > 0:
                    self.last = f"{name}: consumer lag {lag}"
                    return False
        finally:
            await consumer.stop()
            await admin.close()
        self.last = "drained"
        return True


async def _quiesce(watcher: Watcher, rail: Rail, drain: Drain, config: ChaosConfig, console: Console) -> None:
    """Quiet: no new non-recurring output for `quiet_s`, every payout answered and recorded,
    every consumer caught up and every outbox published."""
    deadline = time.monotonic() + config.settle_timeout_s
    why = "outputs still arriving"
    while time.monotonic() < deadline:
        quiet_for = time.monotonic() - watcher.last_progress
        pending = rail.pending() if quiet_for >= config.quiet_s else []
        if quiet_for < config.quiet_s:
            why = f"outputs still arriving (last {quiet_for:.0f}s ago)"
        elif pending:
            shown = ", ".join(pending[:3]) + (f" and {len(pending) - 3} more" if len(pending) > 3 else "")
            why = f"{len(pending)} payouts answered by the bank but not recorded by payout_release: {shown}"
        elif await drain():
            # Drained now; anything it triggered would show within a poll or two.
            await asyncio.sleep(1.0)
            if time.monotonic() - watcher.last_progress >= config.quiet_s:
                return
        else:
            why = drain.last
        await asyncio.sleep(0.5)
    console.print(f"[yellow]not quiescent after {config.settle_timeout_s:.0f}s: {why}[/]")


# --- the whole thing --------------------------------------------------------------------------


async def run(config: ChaosConfig, console: Console | None = None) -> ChaosReport:
    console = console or Console()
    t0 = time.monotonic()
    workload = build(config.seed, config.invoices)
    console.print(
        f"chaos: seed {config.seed}, {len(workload.expected)} invoices, "
        f"{len(workload.records)} inbound records ({len(workload.bad_values)} deliberately bad)"
    )
    baseline, _ = await run_once(workload, config, faulty=False, console=console)
    console.print(f"fault-free run: {baseline.duration_s:.0f}s")
    faulty, faults = await run_once(workload, config, faulty=True, console=console)
    console.print(f"faulty run: {faulty.duration_s:.0f}s")
    checks = check_runs(workload, baseline, faulty)
    return ChaosReport(config, workload, baseline, faulty, faults, checks, time.monotonic() - t0)
