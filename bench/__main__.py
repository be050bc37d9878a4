"""`make bench`: the at-least-once hop baseline, then the five-service pipeline under load, in one
run, and the targets of issue 13 next to the figures.

Prints a table and writes the same figures to bench-results/bench.json. Each flow arrives as it
does upstream: its PO, its receipt a lag later, its invoice a lag after the receipt. Phases: a
light load and a real one (latency when little queues), the throughput window (offered above the
target, so it measures capacity; CPU per flow from it), the target's load (0.0125 × the baseline's
records/s, started once the stack is back near idle after the window), the replicas phase.
Observability is on as in production: INFO logs, Prometheus metrics, sampled traces exported to
a Zipkin endpoint (a stand-in collector in this process).

`make bench BENCH_ARGS="--help"` lists the options (each also read from its BENCH_* variable);
`--profile` runs py-spy on every service process during the throughput window's steady part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.baseline import measure_hop
from bench.floor import measure_floor
from bench.pipeline import (
    Observed,
    TimedWatcher,
    cpu_seconds,
    hop_percentiles,
    offer_load,
    peak_memory_mib,
    percentiles,
    prime,
    running_stack,
    until_all,
)
from bench.profile import Profiling
from bench.records import end_offsets, readers, records_per_flow
from bench.replicas import measure_replicas
from bench.span_sink import SpanSink
from bench.statements import database_of, per_flow, snapshot, transactions
from shared.publish import Publisher
from shared.services import SERVICES
from shared.settings import Settings
from tests.support import ADMIN_DSN

ROOT = Path(__file__).resolve().parent.parent

# A production-like head sampling ratio: one flow in a hundred traced whole (parent-based, so a
# sampled flow is traced in every service). CONCORD_TRACE_SAMPLE_RATIO or --trace-sample-ratio.
DEFAULT_SAMPLE_RATIO = 0.01

# The targets (issue 13), as multiples of the baseline hop measured in the same run.
STEADY_PER_BASELINE = 0.025  # steady-state flows/s ≥ 0.025 × baseline hop records/s
LATENCY_LOAD_PER_BASELINE = 0.0125  # … p99 submitted → approved measured at this offered load
P99_TARGET_MS = 500.0
CPU_TARGET_HOPS = 40.0  # CPU per flow ≤ 40 baseline hops
MEMORY_TARGET_MIB = 150.0  # peak memory per service


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--lag-s", type=float, default=_env("BENCH_LAG_S", 1.0), help="PO → receipt → invoice lag (1 s)")
    a("--hop-records", type=int, default=int(_env("BENCH_HOP_RECORDS", 20000)), help="baseline hop records")
    a("--light-rate", type=float, default=_env("BENCH_LIGHT_RATE", 25), help="flows/s (25)")
    a("--mid-rate", type=float, default=_env("BENCH_MID_RATE", 100), help="flows/s (100)")
    a("--latency-s", type=float, default=_env("BENCH_LATENCY_S", 30), help="each latency phase (30 s)")
    a(
        "--latency-rate",
        type=float,
        default=_env("BENCH_LATENCY_RATE", 0),
        help=f"the target's latency load, flows/s (default {LATENCY_LOAD_PER_BASELINE} × baseline)",
    )
    a(
        "--throughput-rate",
        type=float,
        default=_env("BENCH_THROUGHPUT_RATE", 0),
        help="offered in the throughput window, flows/s (default 0.03 × baseline: above the target)",
    )
    a("--throughput-s", type=float, default=_env("BENCH_THROUGHPUT_S", 60), help="window (60 s)")
    a("--drain-s", type=float, default=_env("BENCH_DRAIN_S", 240), help="wait for a phase's flows (240 s)")
    a("--replica-rate", type=float, default=_env("BENCH_REPLICA_RATE", 50), help="flows/s (50)")
    a("--replica-s", type=float, default=_env("BENCH_REPLICA_S", 20), help="replicas phase (20 s)")
    a("--no-replicas", action="store_true", default=not _env("BENCH_REPLICAS", 1), help="skip it")
    a("--floor-records", type=int, default=int(_env("BENCH_FLOOR_RECORDS", 10000)), help="floor (10000)")
    a("--no-floor", action="store_true", default=not _env("BENCH_FLOOR", 1), help="skip the floor")
    a(
        "--trace-sample-ratio",
        type=float,
        default=_env("CONCORD_TRACE_SAMPLE_RATIO", DEFAULT_SAMPLE_RATIO),
        help=f"parent-based trace sampling ({DEFAULT_SAMPLE_RATIO}; CONCORD_TRACE_SAMPLE_RATIO)",
    )
    a("--profile", action="store_true", help="py-spy the services and the driver in the throughput window")
    return p.parse_args(argv)


async def _drain(watcher: TimedWatcher, done: Any, timeout_s: float, what: str, console: Console) -> None:
    """Stamp arrivals until `done()` or `timeout_s`; a drain not met is said (the figures then
    count only the flows that did arrive)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done():
        watcher.drain()
        await asyncio.sleep(0.1)
    watcher.drain()
    if not done():
        console.print(
            f"[yellow]waited {timeout_s:g}s for {what}; not all came: the figures count those that did[/]"
        )


# The stack at rest uses ~0.11 of a core (docs/performance.md); after the saturated throughput
# window it keeps working for a while (autovacuum of the grown tables, the relays' marks, the
# ledger's last batches). The target's latency phase is a fixed load on a stack at rest, so it
# starts once the stack's CPU is back under this, or after SETTLE_MAX_S at the latest.
SETTLED_CORES = 0.3
SETTLE_MAX_S = 120.0
SETTLE_SAMPLE_S = 2.0


async def _settle(stack: Any, watcher: TimedWatcher, console: Console) -> dict[str, float]:
    """Wait until the stack (services, PostgreSQL, Kafka; not this driver) is back near idle;
    returns how long that took and its CPU, in cores, over the last sample (SETTLE_SAMPLE_S)."""
    started = time.monotonic()
    cores = 0.0

    def used() -> float:
        return sum(v for k, v in cpu_seconds(stack).items() if k != "benchmark driver")

    with console.status("letting the stack settle before the target's latency phase…"):
        while True:
            before, t0 = used(), time.monotonic()
            for _ in range(max(1, round(SETTLE_SAMPLE_S / 0.1))):
                watcher.drain()
                await asyncio.sleep(0.1)
            cores = (used() - before) / (time.monotonic() - t0)
            if cores < SETTLED_CORES or time.monotonic() - started >= SETTLE_MAX_S:
                break
    return {"settle_s": round(time.monotonic() - started, 1), "stack_cores_at_start": round(cores, 2)}


def _ms(p: dict[str, float]) -> dict[str, float]:
    return {k: (round(v * 1000, 1) if k != "n" else v) for k, v in p.items()}


def _held(observed: Observed, ids: list[str]) -> dict[str, Any]:
    """How many flows took the hold-and-release path: held by matching (their receipt not applied
    yet when the invoice was), then approved once it was."""
    held = [i for i in ids if i in observed.held]
    released = [i for i in held if i in observed.approved_at]
    return {
        "flows": len(ids),
        "held": len(held),
        "held_then_released": len(released),
        "hold_and_release_share": round(len(released) / len(ids), 4) if ids else None,
    }


def _latency(observed: Observed, ids: list[str], rate: float, flows: int) -> dict[str, Any]:
    to_approval = [
        observed.approved_at[i] - observed.submitted_at[i] for i in ids if i in observed.approved_at
    ]
    to_posting = [
        observed.approval_posted_at[i] - observed.submitted_at[i]
        for i in ids
        if i in observed.approval_posted_at
    ]
    # The phase in four quarters by send time: a transient (what the phase before left behind)
    # shows in the first quarter, a load the pipeline cannot carry grows quarter by quarter.
    by_send = sorted(
        (observed.submitted_at[i], observed.approved_at[i] - observed.submitted_at[i])
        for i in ids
        if i in observed.approved_at
    )
    quarters = [by_send[k * len(by_send) // 4 : (k + 1) * len(by_send) // 4] for k in range(4)]
    return {
        "offered_flows_per_s": rate,
        "flows": flows,
        "submitted_to_approved_ms": _ms(percentiles(to_approval)),
        "submitted_to_approved_ms_by_quarter": [_ms(percentiles([d for _, d in q])) for q in quarters if q],
        "submitted_to_approval_posted_ms": _ms(percentiles(to_posting)),
        "arrivals": _held(observed, ids),
        # Where the time to approval goes, segment by segment (bench/pipeline.py: Hops).
        "submitted_to_approved_hops_ms": hop_percentiles(observed, ids),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # Wide enough for the table when the output is a log file, not a terminal.
    console = Console(width=max(110, Console().width))
    figures: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "load_average_at_start": list(os.getloadavg())},
        "arrivals": {"lag_s": args.lag_s},
        "observability": {
            "trace_sample_ratio": args.trace_sample_ratio,
            "trace_exporter": "zipkin (JSON v2 over HTTP, to a stand-in collector)",
            "log_level": "INFO",
            "metrics": "Prometheus, served by every service",
        },
    }
    console.print(
        f"observability as in production: INFO logs, metrics, traces sampled at "
        f"CONCORD_TRACE_SAMPLE_RATIO={args.trace_sample_ratio} (parent-based) and exported; "
        f"arrivals: receipt {args.lag_s:g}s after its PO, invoice {args.lag_s:g}s after its receipt"
    )
    if args.profile:
        console.print(
            "profiling: py-spy samples every service process during the throughput window's steady "
            "part; it costs CPU, so this run's throughput and CPU figures are not the ones to quote"
        )
        figures["profiled"] = True
    with console.status("baseline: one at-least-once hop (consume → inbox transaction → produce)…"):
        # Two hops of the same size, the faster one counted: the first also warms the broker up
        # (its JIT), and a hop is slowed by the machine, never sped up, while the targets are
        # ratios of it. One hop alone swung by 20% back to back (10,244 then 8,188 records/s),
        # which once read as two targets met (docs/performance.md, "Stop 27").
        hops = [await measure_hop(Settings(), ADMIN_DSN, records=args.hop_records) for _ in range(2)]
        hop = max(hops, key=lambda h: h.per_second)
    baseline = hop.per_second
    figures["baseline_hop_records_per_s"] = round(baseline, 1)
    figures["baseline_hop_runs_records_per_s"] = [round(h.per_second, 1) for h in hops]
    figures["baseline_hop_cpu_ms"] = round(hop.cpu_ms_per_record, 4)
    # Issue 13 counted "today ~110 hops" as CPU per flow ÷ (cores ÷ hop rate), as if the hop kept
    # every core busy; measured, a hop costs less than that (the hop waits on Kafka and fsync).
    # The target (≤ 40) was set on the scale, so it is checked on that scale
    # (`cpu_baseline_hops_per_flow`); the measured-hop figure is kept beside it.
    figures["baseline_hop_cpu_ms_if_all_cores"] = round(hop.cpu_ms_if_all_cores, 4) if baseline else None
    figures["baseline_hop_cpu_s"] = {k: round(v, 2) for k, v in hop.cpu_s.items()}
    latency_rate = args.latency_rate or round(LATENCY_LOAD_PER_BASELINE * baseline)
    tp_rate = args.throughput_rate or round(0.03 * baseline)

    sink = SpanSink()
    await sink.start()
    tag = uuid.uuid4().hex[:6]
    observability = {
        "otel_exporter": "zipkin",
        "zipkin_endpoint": sink.endpoint,
        "trace_sample_ratio": args.trace_sample_ratio,
        "log_level": "INFO",
    }
    # The relays poll at the services' default (0.2 s): a commit wakes its relay (NOTIFY, and the
    # consumer's wake), so the poll is only a fallback. At 0.05 s the five idle relays cost the
    # services and PostgreSQL ~48 ms of CPU a second more (docs/performance.md, "Outside the handlers").
    async with running_stack(payout_run_interval_s=1.0, **observability) as stack:
        observed = Observed()
        watcher = TimedWatcher(stack.settings, observed)
        await watcher.start()
        async with Publisher(stack.settings, source="bench") as pub:
            await prime(pub, tag)
            await asyncio.sleep(3)
            offered = 0

            async def latency_phase(rate: float) -> dict[str, Any]:
                nonlocal offered
                before_phase = set(observed.submitted_at)
                phase_load = os.getloadavg()[0]
                phase_cpu_before = cpu_seconds(stack)
                phase_databases = {n: database_of(p.settings.db_dsn) for n, p in stack.processes.items()}
                phase_commits_before = await transactions(phase_databases)
                with console.status(f"latency phase: {rate:.0f} flows/s for {args.latency_s:.0f}s…"):
                    o = await offer_load(
                        pub,
                        tag,
                        rate,
                        args.latency_s,
                        observed,
                        watcher,
                        start_index=offered,
                        lag_s=args.lag_s,
                    )
                    offered += o.flows
                    ids = [i for i in observed.submitted_at if i not in before_phase]
                    await _drain(
                        watcher,
                        # …and their invoice.accepted read (its stamps), by the watcher's
                        # slower reader of concord.intake.documents.
                        until_all(
                            ids, lambda i: i in observed.approval_posted_at and watcher.accepted_seen(i)
                        ),
                        args.drain_s,
                        f"the approvals of the {len(ids)} flows of {rate:g} flows/s posted",
                        console,
                    )
                phase = _latency(observed, ids, rate, o.flows)
                # CPU per flow of this phase (its load and its drain): what each process spent at
                # this rate, to set beside the throughput window's figure at saturation.
                used = cpu_seconds(stack)
                phase["load_average_at_start"] = round(phase_load, 2)
                phase["cpu_ms_per_flow"] = {
                    k: round(1000 * (v - phase_cpu_before.get(k, 0.0)) / max(1, o.flows), 2)
                    for k, v in used.items()
                }
                phase["cpu_ms_per_flow"]["total"] = round(sum(phase["cpu_ms_per_flow"].values()), 2)
                # Transactions per flow per service: how small the batches were at this rate
                # (each batch, relay round and periodic run is one).
                await asyncio.sleep(1.0)  # the server publishes its counters within a second
                commits_after = await transactions(phase_databases)
                phase["transactions_per_flow"] = {
                    k: round((v - phase_commits_before.get(k, 0)) / max(1, o.flows), 2)
                    for k, v in commits_after.items()
                }
                return phase

            # A light load first: the pipeline's own latency when nothing queues; then a real load
            # this machine carries; then the throughput window, then the target's fixed load, each
            # after the previous one drained.
            figures["latency"] = [await latency_phase(args.light_rate), await latency_phase(args.mid_rate)]
            before = set(observed.submitted_at)
            with console.status(
                f"throughput phase: offering {tp_rate:.0f} flows/s for {args.throughput_s:.0f}s…"
            ):
                databases = {n: database_of(p.settings.db_dsn) for n, p in stack.processes.items()}
                statements_before = await snapshot(databases)
                offsets_before = await end_offsets(stack.settings)
                cpu_before = cpu_seconds(stack)
                profiling = None
                if args.profile:
                    # The window's last two thirds (after the lag that delays the first invoice).
                    steady_s = args.throughput_s * 2 / 3
                    pids = {n: p.proc.pid for n, p in stack.processes.items() if p.proc is not None}
                    pids["driver"] = os.getpid()  # this process: it offers the load and watches it
                    profiling = Profiling(pids, steady_s, ROOT / "bench-results" / "profile")

                    async def profile_later() -> None:
                        await asyncio.sleep(2 * args.lag_s + args.throughput_s / 3)
                        await profiling.start()

                    profile_task = asyncio.create_task(profile_later())
                o = await offer_load(
                    pub,
                    tag,
                    tp_rate,
                    args.throughput_s,
                    observed,
                    watcher,
                    start_index=offered,
                    lag_s=args.lag_s,
                )
                offered += o.flows
                ids = [i for i in observed.submitted_at if i not in before]
                await _drain(
                    watcher,
                    until_all(ids, lambda i: observed.complete_at(i) is not None),
                    args.drain_s,
                    f"the {len(ids)} throughput flows paid and posted",
                    console,
                )
                cpu_used = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds(stack).items()}
                statements_after = await snapshot(databases)
                offsets_after = await end_offsets(stack.settings)
            if profiling is not None:
                await profile_task
                with console.status("profiles: waiting for py-spy…"):
                    figures["profile"] = await profiling.finish()
            # Invoices arrive from two lags after the first PO on: the window is theirs.
            window_start, window_end = o.invoices_from, o.ended
            completed = [observed.complete_at(i) for i in ids]
            in_window = sum(1 for c in completed if c is not None and window_start <= c <= window_end)
            # The window's first third fills the pipeline (nothing completes before a flow has
            # crossed all five services); its last two thirds are the steady state under load.
            steady_from = window_start + (window_end - window_start) / 3
            in_steady = sum(1 for c in completed if c is not None and steady_from <= c <= window_end)
            all_done = [c for c in completed if c is not None]
            figures["throughput"] = {
                "offered_flows_per_s": tp_rate,
                "window_s": round(window_end - window_start, 1),
                "flows_offered": o.flows,
                "flows_completed": len(all_done),
                "completed_in_window_per_s": round(in_window / (window_end - window_start), 1),
                "completed_in_steady_state_per_s": round(in_steady / (window_end - steady_from), 1),
                "all_completed_per_s": round(len(all_done) / (max(all_done) - window_start), 1)
                if all_done
                else 0,
                "arrivals": _held(observed, ids),
            }
            figures["cpu_ms_per_flow"] = {
                k: round(1000 * v / max(1, len(all_done)), 2) for k, v in cpu_used.items()
            }
            figures["cpu_ms_per_flow"]["total"] = round(sum(figures["cpu_ms_per_flow"].values()), 2)
            if statements_before is not None and statements_after is not None:
                # pg_stat_statements loaded (bench/statements.py): round trips per flow per service.
                figures["sql_statements_per_flow"] = per_flow(
                    statements_before, statements_after, len(all_done)
                )
            total_ms = figures["cpu_ms_per_flow"]["total"]
            figures["cpu_baseline_hops_per_flow"] = (
                round(total_ms / figures["baseline_hop_cpu_ms_if_all_cores"], 1) if baseline else None
            )
            records = records_per_flow(offsets_before, offsets_after, len(all_done), readers())
            figures["kafka_records_per_flow"] = records
            figures["cpu_baseline_hops_per_record_handed"] = (
                round(figures["cpu_baseline_hops_per_flow"] / records["handed_total"], 2)
                if figures["cpu_baseline_hops_per_flow"] and records["handed_total"]
                else None
            )
            figures["cpu_baseline_hops_per_flow_measured_hop_cpu"] = (
                round(figures["cpu_ms_per_flow"]["total"] / hop.cpu_ms_per_record, 1)
                if hop.cpu_ms_per_record
                else None
            )
            settled = await _settle(stack, watcher, console)
            target_phase = await latency_phase(latency_rate)
            target_phase["target_load"] = True
            target_phase |= settled
            figures["latency"].append(target_phase)
        await watcher.stop()
        figures["peak_memory_mib"] = {n: round(peak_memory_mib(p), 1) for n, p in stack.processes.items()}
    figures["arrivals"] |= _held(observed, list(observed.submitted_at))
    t = figures["throughput"]
    figures["pipeline_vs_baseline"] = round(t["all_completed_per_s"] / baseline, 4) if baseline else None
    figures["steady_vs_baseline"] = (
        round(t["completed_in_steady_state_per_s"] / baseline, 4) if baseline else None
    )
    figures["targets"] = targets(figures, latency_rate)
    if not args.no_replicas:
        figures["replicas"] = await measure_replicas(
            console, args.replica_rate, args.replica_s, args.drain_s, args.lag_s, **observability
        )
    flow_records = figures.get("kafka_records_per_flow")
    if flow_records and not args.no_floor:
        with console.status("the plumbing's floor: a service that decides nothing, per record…"):
            figures["floor"] = await measure_floor(
                args.floor_records,
                flow_records["written_total"],
                flow_records["handed_total"],
                hop_ms=hop.cpu_ms_if_all_cores,
                hop_ms_measured=hop.cpu_ms_per_record,
            )
    figures["observability"] |= {"spans_exported": sink.spans, "span_batches": sink.posts}
    await sink.stop()
    figures["machine"]["load_average_at_end"] = list(os.getloadavg())
    _print(console, figures)
    if "replicas" in figures:
        _print_replicas(console, figures["replicas"])
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"figures written to {out / 'bench.json'}")
    if "profile" in figures:
        console.print("profiles (top functions per process): " + ", ".join(figures["profile"].values()))
    return figures


def targets(f: dict[str, Any], latency_rate: float) -> dict[str, dict[str, Any]]:
    """Issue 13's targets against this run's figures: value, target, met."""
    baseline = f["baseline_hop_records_per_s"]
    steady = f["throughput"]["completed_in_steady_state_per_s"]
    at_target = next((lat for lat in f["latency"] if lat.get("target_load")), None)
    p99 = at_target["submitted_to_approved_ms"]["p99"] if at_target else float("nan")
    hops = f["cpu_baseline_hops_per_flow"]
    memory = {n: m for n, m in f["peak_memory_mib"].items()}
    return {
        "steady_flows_per_s": {
            "value": steady,
            "target": f"≥ {STEADY_PER_BASELINE} × baseline = {STEADY_PER_BASELINE * baseline:.0f}",
            "met": steady >= STEADY_PER_BASELINE * baseline,
        },
        "cpu_baseline_hops_per_flow": {
            "value": hops,
            "target": f"≤ {CPU_TARGET_HOPS:.0f}",
            "met": hops is not None and hops <= CPU_TARGET_HOPS,
        },
        "p99_submitted_to_approved_ms": {
            "value": p99,
            "target": f"≤ {P99_TARGET_MS:.0f} ms at {latency_rate:.0f} flows/s "
            f"({LATENCY_LOAD_PER_BASELINE} × baseline = {LATENCY_LOAD_PER_BASELINE * baseline:.0f})",
            "met": p99 == p99 and p99 <= P99_TARGET_MS,
        },
        "peak_memory_mib_per_service": {
            "value": max(memory.values()) if memory else None,
            "target": f"≤ {MEMORY_TARGET_MIB:.0f} MiB each",
            "met": all(m <= MEMORY_TARGET_MIB for m in memory.values()),
            "over": sorted(n for n, m in memory.items() if m > MEMORY_TARGET_MIB),
        },
    }


def _met(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]not met[/]"


def _print(console: Console, f: dict[str, Any]) -> None:
    load = f["machine"]["load_average_at_start"][0]
    t = Table(title=f"Concord benchmark (this machine, everything on it; load average {load:.1f} at start)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_column("", justify="left")
    targets_ = f["targets"]
    t.add_row(
        "baseline: one at-least-once hop",
        f"{f['baseline_hop_records_per_s']:.0f} records/s, {1000 * f['baseline_hop_cpu_ms']:.0f} µs CPU each",
        "",
        "",
    )
    if "baseline_hop_runs_records_per_s" in f:
        t.add_row(
            "  the faster of two hops",
            " / ".join(f"{r:.0f}" for r in f["baseline_hop_runs_records_per_s"]) + " records/s",
            "",
            "",
        )
    tp = f["throughput"]
    t.add_row(
        f"flows completed in the {tp['window_s']}s window (offered {tp['offered_flows_per_s']:.0f}/s)",
        f"{tp['completed_in_window_per_s']:.0f} flows/s",
        "",
        "",
    )
    steady = targets_["steady_flows_per_s"]
    t.add_row(
        "  of which in its last two thirds (steady state under load)",
        f"{tp['completed_in_steady_state_per_s']:.0f} flows/s ({f['steady_vs_baseline']} × baseline)",
        steady["target"],
        _met(steady["met"]),
    )
    t.add_row(
        "all offered flows, until the last one completed",
        f"{tp['all_completed_per_s']:.0f} flows/s",
        f"{tp['flows_completed']}/{tp['flows_offered']} done",
        "",
    )
    p99 = targets_["p99_submitted_to_approved_ms"]
    for lat in f["latency"]:
        _print_latency(t, lat, p99 if lat.get("target_load") else None)
    arrivals = f["arrivals"]
    t.add_row(
        f"flows that took the hold-and-release path (lag {arrivals['lag_s']:g}s)",
        f"{100 * (arrivals['hold_and_release_share'] or 0):.1f}% "
        f"({arrivals['held_then_released']}/{arrivals['flows']}, {arrivals['held']} held)",
        "",
        "",
    )
    for name, ms in f["cpu_ms_per_flow"].items():
        t.add_row(f"CPU per completed flow: {name}", f"{ms:.2f} ms", "", "")
    for name, counted in f.get("sql_statements_per_flow", {}).items():
        per = counted if isinstance(counted, float | int) else counted["per_flow"]
        t.add_row(f"SQL statements per completed flow: {name}", f"{per:.1f}", "", "")
    hops = targets_["cpu_baseline_hops_per_flow"]
    t.add_row(
        "CPU per flow in baseline hops (as issue 13 counts: hop = cores ÷ hop rate)",
        f"{hops['value']}",
        hops["target"],
        _met(hops["met"]),
    )
    t.add_row(
        "  in hops of the hop's measured CPU",
        f"{f['cpu_baseline_hops_per_flow_measured_hop_cpu']}",
        "",
        "",
    )
    records = f.get("kafka_records_per_flow")
    if records:
        t.add_row(
            "Kafka records per flow: written (all topics) / handed to the services",
            f"{records['written_total']:.2f} / {records['handed_total']:.2f}",
            "",
            "",
        )
        t.add_row(
            "  handed to " + " / ".join(records["handed_to"]),
            " / ".join(f"{n:.2f}" for n in records["handed_to"].values()),
            "",
            "",
        )
        floor = f.get("floor")
        if floor:
            t.add_row(
                "plumbing floor per flow: a service that decides nothing (bench/floor.py)",
                f"{floor['ms_per_flow']:.2f} ms = {floor['baseline_hops_per_flow']} hops",
                f"≤ {CPU_TARGET_HOPS:g} hops",
                "",
            )
            t.add_row(
                "  floor per record handed / written (µs)",
                f"{1000 * floor['ms_per_record_handed']:.0f} / {1000 * floor['ms_per_record_written']:.0f}",
                "",
                "",
            )
        per_record = f.get("cpu_baseline_hops_per_record_handed")
        if per_record is not None:
            t.add_row(
                "  CPU per record handed, in baseline hops (what the CPU target allows per record)",
                f"{per_record}",
                f"≤ {CPU_TARGET_HOPS / records['handed_total']:.2f}",
                _met(per_record <= CPU_TARGET_HOPS / records["handed_total"]),
            )
    memory = targets_["peak_memory_mib_per_service"]
    for name, mib in f["peak_memory_mib"].items():
        t.add_row(f"peak memory: {name}", f"{mib:.0f} MiB", memory["target"], _met(mib <= MEMORY_TARGET_MIB))
    o = f["observability"]
    t.add_row(
        "traces: sample ratio, spans exported",
        f"{o['trace_sample_ratio']}, {o['spans_exported']} spans in {o['span_batches']} batches",
        "",
        "",
    )
    t.add_row("pipeline flows/s ÷ baseline hop records/s", f"{f['pipeline_vs_baseline']}", "", "")
    console.print(t)


def _print_replicas(console: Console, r: dict[str, Any]) -> None:
    t = Table(title="Two processes of every service (CONCORD_SERVICE_REPLICAS=2), single broker")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row(
        f"flows approved (offered {r['offered_flows_per_s']:.0f}/s)",
        f"{r['flows_approved']}/{r['flows_offered']}",
    )
    for name, key in (
        ("invoice.submitted → approved_to_pay", "submitted_to_approved_ms"),
        ("invoice.submitted → approval posted", "submitted_to_approval_posted_ms"),
    ):
        p = r[key]
        t.add_row(name, f"p50 {p['p50']:.0f} / p95 {p['p95']:.0f} / p99 {p['p99']:.0f} ms")
    for name, ms in r["cpu_ms_per_approved_flow"].items():
        t.add_row(
            f"CPU per approved flow: {name}" + (" (both replicas)" if name in SERVICES else ""),
            f"{ms:.2f} ms",
        )
    t.add_row("peak memory, all ten service processes", f"{sum(r['peak_memory_mib'].values()):.0f} MiB")
    t.add_row(
        "payouts released by two payout_release processes",
        f"{r['payouts']} payouts, {r['invoices_paid']} invoices",
    )
    twice = r["invoices_released_twice"]
    t.add_row("invoices released twice", "[green]none[/]" if not twice else f"[red]{len(twice)}[/]")
    t.add_row(
        f"released vs funding ({r['funding']}, three quarters of what was invoiced)",
        f"{r['released_total']} — " + ("[red]OVERDRAWN[/]" if r["overdrawn"] else "[green]not overdrawn[/]"),
    )
    console.print(t)


def _print_latency(t: Table, lat: dict[str, Any], target: dict[str, Any] | None) -> None:
    _print_latency_totals(t, lat, target)
    for name, p in lat.get("submitted_to_approved_hops_ms", {}).items():
        t.add_row(f"  {name}", f"p50 {p['p50']:.0f} / p95 {p['p95']:.0f} / p99 {p['p99']:.0f} ms", "", "")
    quarters = lat.get("submitted_to_approved_ms_by_quarter") or []
    if quarters:
        t.add_row(
            "  p99 by quarter of the phase (by send time)",
            " / ".join(f"{q['p99']:.0f}" for q in quarters) + " ms",
            "",
            "",
        )
    if "settle_s" in lat:
        t.add_row(
            "  started after the stack settled",
            f"{lat['settle_s']:.0f} s (stack {lat['stack_cores_at_start']:.2f} cores)",
            "",
            "",
        )
    cpu = lat.get("cpu_ms_per_flow")
    if cpu:
        t.add_row(
            f"  CPU per flow in this phase (load {lat.get('load_average_at_start', 0):.1f} at its start)",
            f"{cpu['total']:.2f} ms",
            "",
            "",
        )
    commits = lat.get("transactions_per_flow")
    if commits:
        t.add_row(
            "  transactions per flow in this phase, all services",
            f"{sum(commits.values()):.1f}",
            "",
            "",
        )


def _print_latency_totals(t: Table, lat: dict[str, Any], target: dict[str, Any] | None) -> None:
    for name, key in (
        ("invoice.submitted → approved_to_pay", "submitted_to_approved_ms"),
        ("invoice.submitted → approval posted", "submitted_to_approval_posted_ms"),
    ):
        p = lat[key]
        mark = target is not None and key == "submitted_to_approved_ms"
        t.add_row(
            f"{name} at {lat['offered_flows_per_s']:.0f} flows/s",
            f"p50 {p['p50']:.0f} / p95 {p['p95']:.0f} / p99 {p['p99']:.0f} ms",
            "p99 ≤ 500 ms" if mark else "",
            _met(target["met"]) if mark and target is not None else "",
        )


if __name__ == "__main__":
    import uvloop

    arguments = parse_args()
    uvloop.run(main(arguments))
