"""End-to-end pipeline benchmark: five service processes, real Kafka and PostgreSQL, a generated load.

A flow is PO + receipt + invoice → approved_to_pay → payout.released → journal entry posted; the
receipt arrives a lag after the PO and the invoice a lag after the receipt, as they do upstream.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.cpu import driver_cpu_s, infrastructure_cpu_s, process_cpu_s
from shared.envelope import envelope_json, new_envelope
from shared.publish import Publisher
from shared.service import tune_gc_after_start
from shared.services import SERVICES
from shared.settings import Settings
from shared.topics import (
    IN_FUNDING,
    IN_INVOICES,
    IN_PAYEES,
    IN_PURCHASE_ORDERS,
    IN_RECEIPTS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_JOURNAL,
    OUT_PAYOUTS,
    Topic,
)
from testkit import documents as doc
from testkit.watch import Seen, TopicWatcher
from tests.kafka_support import ServiceProcess, create_topics, delete_topics, isolated_settings
from tests.support import scratch_service_database

PAYEES = 50


@dataclass
class Stack:
    settings: Settings
    processes: dict[str, ServiceProcess]


@asynccontextmanager
async def running_stack(replicas: int = 1, **overrides: Any) -> AsyncIterator[Stack]:
    """The five services on a topic set and scratch databases of their own; `replicas` processes of
    each (named like deploy/services.sh names them: `intake`, `intake-2`, …) sharing its database
    and consumer group. Once they are ready, this process (the driver) tunes its collector as a
    service process does."""
    settings = isolated_settings(**overrides)
    await create_topics(settings)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_topics, settings)  # last, once everything has stopped
        # Each service on its owner and runtime roles, as in production (SPEC §11).
        dbs = {n: await stack.enter_async_context(scratch_service_database(n)) for n in SERVICES}
        procs = {
            (n if r == 1 else f"{n}-{r}"): ServiceProcess(
                f"services.{n}",
                settings.model_copy(update=dbs[n].settings()),
                f"bench-{n}" if r == 1 else f"bench-{n}-{r}",
            )
            for r in range(1, replicas + 1)
            for n in SERVICES
        }
        try:
            for p in procs.values():
                p.start()
            for p in procs.values():
                await p.wait_ready()
            # Its watchers keep every record they saw: the full collections walked them all (~9% of
            # the driver's CPU at 150 flows/s, docs/performance.md "Stop 34").
            tune_gc_after_start()
            yield Stack(settings, procs)
        finally:
            for p in procs.values():
                p.stop()


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by each service, by all PostgreSQL and Kafka processes, and by
    this benchmark process (the load generator and the watcher): where the cores go."""
    used = {name: process_cpu_s(p.proc.pid) for name, p in stack.processes.items() if p.proc is not None}
    used |= infrastructure_cpu_s()
    used["benchmark driver"] = driver_cpu_s()
    return used


def peak_memory_mib(proc: ServiceProcess) -> float:
    assert proc.proc is not None
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Hops:
    """Where one invoice spent its way to approval, as wall-clock seconds (one machine, one clock):
    the bench sent `invoice.submitted`; intake emitted `invoice.accepted` (its envelope's
    occurred_at, inside intake's batch transaction) and its relay handed it to the producer (the
    record's Kafka timestamp); matching likewise for `invoice.approved_to_pay`; the bench saw it."""

    submitted: float
    accepted_emitted: float | None = None
    accepted_sent: float | None = None
    approved_emitted: float | None = None
    approved_sent: float | None = None
    approved_seen: float | None = None

    # (name, from, to): the segments reported per latency phase, in order along the path.
    SEGMENTS = (
        (
            "intake: fetched and handled (submitted → invoice.accepted emitted)",
            "submitted",
            "accepted_emitted",
        ),
        ("intake: commit and relay (emitted → sent by its relay)", "accepted_emitted", "accepted_sent"),
        (
            "matching: fetched and handled (accepted sent → approved_to_pay emitted)",
            "accepted_sent",
            "approved_emitted",
        ),
        ("matching: commit and relay (emitted → sent by its relay)", "approved_emitted", "approved_sent"),
        ("produce and watch (sent → seen by the bench)", "approved_sent", "approved_seen"),
    )

    def segments(self) -> dict[str, float] | None:
        stamps = [getattr(self, f) for _, f, _ in self.SEGMENTS] + [self.approved_seen]
        if any(s is None for s in stamps):
            return None
        return {name: getattr(self, b) - getattr(self, a) for name, a, b in self.SEGMENTS}


def _wall(s: Seen) -> tuple[float | None, float | None]:
    """An observed record's emission (its envelope's occurred_at) and sending (Kafka timestamp)."""
    try:
        emitted = datetime.fromisoformat(str(s.envelope.get("occurred_at"))).timestamp()
    except ValueError:
        emitted = None
    return emitted, (s.timestamp_ms / 1000 if s.timestamp_ms >= 0 else None)


@dataclass
class Observed:
    submitted_at: dict[str, float] = field(default_factory=dict)
    approved_at: dict[str, float] = field(default_factory=dict)
    approval_posted_at: dict[str, float] = field(default_factory=dict)
    payout_of: dict[str, str] = field(default_factory=dict)
    payout_posted_at: dict[str, float] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)  # invoices matching held (before any approval)
    hops: dict[str, Hops] = field(default_factory=dict)  # per invoice, where it waited (wall clock)

    def complete_at(self, invoice_id: str) -> float | None:
        payout = self.payout_of.get(invoice_id)
        return self.payout_posted_at.get(payout) if payout else None


def until_all(ids: Sequence[str], done: Callable[[str], bool]) -> Callable[[], bool]:
    """`lambda: all(done(i) for i in ids)` for a drain that asks ten times a second: a stamp is set
    once and never taken back, so the ids found done are not asked again. From the start each time,
    every check walked all the flows finished so far (thousands behind a saturated window), and that
    CPU was counted as the bench driver's."""
    position = 0

    def check() -> bool:
        nonlocal position
        while position < len(ids) and done(ids[position]):
            position += 1
        return position == len(ids)

    return check


class TimedWatcher(TopicWatcher):
    """Stamps each observed event with the monotonic time it arrived.

    `concord.intake.documents` is read by a second consumer that waits for fuller fetches: of its
    records only `invoice.accepted` counts, and for stamps it carries itself (its envelope's
    occurred_at and its Kafka timestamp), not for when it is seen. Read with the topics whose
    arrival is stamped, its records (a third of those watched) came in small fetches of their
    own, each a few hundred µs of this process's CPU (docs/performance.md, "Outside the
    handlers")."""

    # The types `_note` and `on_seen` read; other records on these topics (a revocation on the
    # decisions topic, a PO version or a receipt on the documents topic) are passed over by their
    # event-type header, undecoded.
    NOTED = frozenset({"invoice.approved_to_pay", "invoice.held", "payout.released", "journal.entry_posted"})

    def __init__(self, settings: Settings, observed: Observed) -> None:
        super().__init__(settings, (MATCHING_DECISIONS, OUT_PAYOUTS, OUT_JOURNAL), event_types=self.NOTED)
        self.observed = observed
        self._cursor = 0
        self.documents = TopicWatcher(
            settings,
            (INTAKE_DOCUMENTS,),
            consumer_options={"fetch_min_bytes": 256 * 1024, "fetch_max_wait_ms": 250},
            event_types=frozenset({"invoice.accepted"}),
        )
        self.documents.on_seen = self.on_seen  # type: ignore[method-assign]

    async def start(self) -> None:
        await self.documents.start()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self.documents.stop()

    def accepted_seen(self, invoice_id: str) -> bool:
        """Whether this invoice's `invoice.accepted` has been read (its stamps), if it is timed."""
        hops = self.observed.hops.get(invoice_id)
        return hops is None or hops.accepted_sent is not None

    def on_seen(self, seen: Seen) -> None:
        """Stamps the hops of an invoice's way to approval as the records arrive (not at drain)."""
        if seen.event_type not in ("invoice.accepted", "invoice.approved_to_pay"):
            return
        hops = self.observed.hops.get(str(seen.data.get("invoice_id")))
        if hops is None:
            return
        emitted, sent = _wall(seen)
        if seen.event_type == "invoice.accepted":
            hops.accepted_emitted, hops.accepted_sent = emitted, sent
        elif hops.approved_seen is None:
            hops.approved_emitted, hops.approved_sent = emitted, sent
            hops.approved_seen = time.time()

    def drain(self) -> None:
        now = time.monotonic()
        o = self.observed
        for s in self.seen[self._cursor :]:
            self._note(s, o, now)
        self._cursor = len(self.seen)

    @staticmethod
    def _note(s: Seen, o: Observed, now: float) -> None:
        d = s.data
        if s.event_type == "invoice.approved_to_pay":
            o.approved_at.setdefault(d["invoice_id"], now)
        elif s.event_type == "invoice.held":
            o.held.add(d["invoice_id"])
        elif s.event_type == "payout.released":
            for inv in d["invoices"]:
                o.payout_of[inv["invoice_id"]] = d["payout_id"]
        elif s.event_type == "journal.entry_posted":
            links = d.get("links", {})
            if d.get("source_event_type") == "invoice.approved_to_pay":
                for inv in links.get("invoice_ids", []):
                    o.approval_posted_at.setdefault(inv, now)
            elif d.get("source_event_type") == "payout.released" and links.get("payout_id"):
                o.payout_posted_at.setdefault(links["payout_id"], now)


Publication = tuple[Topic, str, str, dict[str, Any]]  # topic, key, event type, data


def flow(tag: str, i: int, today: str) -> tuple[Publication, Publication, Publication]:
    """Flow i: its PO, its receipt (all of it) and its invoice (at the PO price, no tax)."""
    payee = f"bp-{tag}-{i % PAYEES}"
    po = f"BPO-{tag}-{i}"
    # A total of its own per invoice: a payee's invoices with the same total and issue date are
    # suspected duplicates and rightly held for review, which is not what this measures.
    qty, price = "2", str(Decimal("10.00") + Decimal(i) / 100)
    amount = str(Decimal(qty) * Decimal(price))
    now = datetime.now(UTC)
    order = doc.purchase_order(
        po,
        legal_entity="bench-le",
        business_unit="ops",
        payee_id=payee,
        currency="EUR",
        effective_from=(now - timedelta(days=10)).date().isoformat(),
        effective_to=(now + timedelta(days=300)).date().isoformat(),
        created_by="buyer",
        approved_by="manager@example.com",
        approved_at=now.isoformat(),
        lines=[doc.po_line("1", "SKU", "hardware", qty, price)],
    )
    receipt = doc.receipt(
        f"R-{po}", po, [doc.receipt_line("1", "1", qty)], received_at=now.isoformat(), recorded_by="dock"
    )
    invoice = doc.invoice(
        f"BI-{tag}-{i}",
        number=f"S{tag}N{i}",
        payee_id=payee,
        legal_entity="bench-le",
        issue_date=today,
        currency="EUR",
        po_number=po,
        lines=[doc.invoice_line("1", "1", qty, price, amount)],
        tax_total="0.00",
        total_amount=amount,
    )
    return (
        (IN_PURCHASE_ORDERS, po, "purchase_order.issued", order),
        (IN_RECEIPTS, po, "receipt.recorded", receipt),
        (IN_INVOICES, payee, "invoice.submitted", invoice),
    )


async def prime(pub: Publisher, tag: str, funding: str = "1000000000.00") -> None:
    screened = datetime.now(UTC).isoformat()
    for p in range(PAYEES):
        payee = f"bp-{tag}-{p}"
        await pub.publish_event(
            IN_PAYEES,
            payee,
            "payee.profile_updated",
            doc.payee_profile(
                payee, country="DE", screened_at=screened, tax=doc.tax_form("W-8BEN-E", "2026-01-10")
            ),
        )
    await pub.publish_event(
        IN_FUNDING,
        "bench-acct",
        "funding.received",
        doc.funding(
            f"bf-{tag}",
            account_id="bench-acct",
            legal_entity="bench-le",
            currency="EUR",
            amount=funding,
            received_at=screened,
        ),
    )


@dataclass(frozen=True)
class Offered:
    flows: int
    started: float  # monotonic: the first PO
    invoices_from: float  # the first invoice was due (started + 2 lags)
    ended: float  # the last invoice sent


async def offer_load(
    pub: Publisher,
    tag: str,
    rate: float,
    seconds: float,
    observed: Observed,
    watcher: TimedWatcher,
    start_index: int = 0,
    lag_s: float = 1.0,
) -> Offered:
    """Start `rate` flows per second for `seconds`, each as upstream systems would send it: its PO
    when the flow starts, its receipt `lag_s` later, its invoice `lag_s` after the receipt. Returns
    once every started flow's invoice is sent."""
    today = datetime.now(UTC).date().isoformat()
    started = time.monotonic()
    flows = max(0, int(seconds * rate))
    pending: dict[int, tuple[Publication, Publication, Publication]] = {}
    sent = [0, 0, 0]  # POs, receipts, invoices sent so far (in flow order)
    while sent[2] < flows:
        elapsed = time.monotonic() - started
        futures = []
        for stage in range(3):
            # Flow i's document of this stage is due at i / rate + stage × lag.
            due = min(flows, int(max(0.0, elapsed - stage * lag_s) * rate) + (elapsed >= stage * lag_s))
            while sent[stage] < due:
                i = sent[stage]
                if stage == 0:
                    pending[i] = flow(tag, start_index + i, today)
                topic, key, event_type, data = pending[i][stage]
                if stage == 2:
                    del pending[i]
                value = envelope_json(new_envelope(event_type, data, source="bench"))
                futures.append(
                    await (await pub.producer_for(topic)).send(
                        pub.settings.topic(topic),
                        value=value,
                        key=key.encode(),
                        headers=[("content-type", b"application/json")],
                    )
                )
                if event_type == "invoice.submitted":
                    observed.submitted_at[data["invoice_id"]] = time.monotonic()
                    observed.hops[data["invoice_id"]] = Hops(submitted=time.time())
                sent[stage] += 1
        if futures:
            await asyncio.gather(*futures)
        watcher.drain()
        await asyncio.sleep(0.01)
    return Offered(flows, started, started + 2 * lag_s, time.monotonic())


def hop_percentiles(observed: Observed, ids: list[str]) -> dict[str, dict[str, float]]:
    """Per segment of the way to approval, p50/p95/p99 in ms over the invoices seen all the way."""
    segments = [s for s in (observed.hops[i].segments() for i in ids if i in observed.hops) if s]
    return {
        name: {
            k: (round(v * 1000, 1) if k != "n" else v)
            for k, v in percentiles([s[name] for s in segments]).items()
        }
        for name, _, _ in Hops.SEGMENTS
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "n": len(values)}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "n": len(values)}
