"""`make bench`: the at-least-once hop baseline, then the five-service pipeline under load.

Prints a table and writes the same figures to bench-results/bench.json. Knobs (environment):
BENCH_LIGHT_RATE (25 flows/s), BENCH_MID_RATE (100 flows/s: under this machine's capacity),
BENCH_LATENCY_RATE (250 flows/s: the target's load), BENCH_LATENCY_S (30),
BENCH_THROUGHPUT_RATE (300 flows/s offered: above what this machine sustains, so the window
measures capacity), BENCH_THROUGHPUT_S (60), BENCH_DRAIN_S (240); the replicas phase (two
processes of every service, bench/replicas.py): BENCH_REPLICA_RATE (50 flows/s), BENCH_REPLICA_S
(20), BENCH_REPLICAS=0 skips it.
"""

from __future__ import annotations

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
from bench.pipeline import (
    Observed,
    TimedWatcher,
    cpu_seconds,
    offer_load,
    peak_memory_mib,
    percentiles,
    prime,
    running_stack,
)
from bench.replicas import measure_replicas
from shared.publish import Publisher
from shared.settings import Settings
from tests.support import ADMIN_DSN

ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


async def _drain(watcher: TimedWatcher, done: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done():
        watcher.drain()
        await asyncio.sleep(0.1)
    watcher.drain()


def _latency(observed: Observed, ids: list[str], rate: float, flows: int) -> dict[str, Any]:
    to_approval = [
        observed.approved_at[i] - observed.submitted_at[i] for i in ids if i in observed.approved_at
    ]
    to_posting = [
        observed.approval_posted_at[i] - observed.submitted_at[i]
        for i in ids
        if i in observed.approval_posted_at
    ]

    def ms(p: dict[str, float]) -> dict[str, float]:
        return {k: (v * 1000 if k != "n" else v) for k, v in p.items()}

    return {
        "offered_flows_per_s": rate,
        "flows": flows,
        "submitted_to_approved_ms": ms(percentiles(to_approval)),
        "submitted_to_approval_posted_ms": ms(percentiles(to_posting)),
    }


async def main() -> dict[str, Any]:
    # Wide enough for the table when the output is a log file, not a terminal.
    console = Console(width=max(110, Console().width))
    figures: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
    with console.status("baseline: one at-least-once hop (consume → inbox transaction → produce)…"):
        hop = await measure_hop(Settings(), ADMIN_DSN)
    figures["baseline_hop_records_per_s"] = round(hop.per_second, 1)

    tag = uuid.uuid4().hex[:6]
    async with running_stack(payout_run_interval_s=1.0, relay_poll_interval_s=0.05) as stack:
        observed = Observed()
        watcher = TimedWatcher(stack.settings, observed)
        await watcher.start()
        async with Publisher(stack.settings, source="bench") as pub:
            await prime(pub, tag)
            await asyncio.sleep(3)
            lat_s = _env("BENCH_LATENCY_S", 30)
            offered = 0

            async def latency_phase(rate: float) -> dict[str, Any]:
                nonlocal offered
                before_phase = set(observed.submitted_at)
                with console.status(f"latency phase: {rate:.0f} flows/s for {lat_s:.0f}s…"):
                    n = await offer_load(pub, tag, rate, lat_s, observed, watcher, start_index=offered)
                    offered += n
                    ids = [i for i in observed.submitted_at if i not in before_phase]
                    await _drain(
                        watcher,
                        lambda: all(i in observed.approval_posted_at for i in ids),
                        _env("BENCH_DRAIN_S", 240),
                    )
                return _latency(observed, ids, rate, n)

            # A light load first: the pipeline's own latency when nothing queues; then a real load
            # this machine carries; then the throughput window, then the target's fixed load, each
            # after the previous one drained.
            figures["latency"] = [
                await latency_phase(_env("BENCH_LIGHT_RATE", 25)),
                await latency_phase(_env("BENCH_MID_RATE", 100)),
            ]
            tp_rate, tp_s = _env("BENCH_THROUGHPUT_RATE", 300), _env("BENCH_THROUGHPUT_S", 60)
            before = set(observed.submitted_at)
            with console.status(f"throughput phase: offering {tp_rate:.0f} flows/s for {tp_s:.0f}s…"):
                cpu_before = cpu_seconds(stack)
                window_start = time.monotonic()
                offered_tp = await offer_load(pub, tag, tp_rate, tp_s, observed, watcher, start_index=offered)
                offered += offered_tp
                window_end = time.monotonic()
                ids = [i for i in observed.submitted_at if i not in before]
                await _drain(
                    watcher,
                    lambda: all(observed.complete_at(i) is not None for i in ids),
                    _env("BENCH_DRAIN_S", 240),
                )
                cpu_used = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds(stack).items()}
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
                "flows_offered": offered_tp,
                "flows_completed": len(all_done),
                "completed_in_window_per_s": round(in_window / (window_end - window_start), 1),
                "completed_in_steady_state_per_s": round(in_steady / (window_end - steady_from), 1),
                "all_completed_per_s": round(len(all_done) / (max(all_done) - window_start), 1)
                if all_done
                else 0,
            }
            figures["cpu_ms_per_flow"] = {
                k: round(1000 * v / max(1, len(all_done)), 2) for k, v in cpu_used.items()
            }
            figures["cpu_ms_per_flow"]["total"] = round(sum(figures["cpu_ms_per_flow"].values()), 2)
            figures["latency"].append(await latency_phase(_env("BENCH_LATENCY_RATE", 250)))
        await watcher.stop()
        figures["peak_memory_mib"] = {n: round(peak_memory_mib(p), 1) for n, p in stack.processes.items()}
    t = figures["throughput"]
    figures["pipeline_vs_baseline"] = (
        round(t["all_completed_per_s"] / figures["baseline_hop_records_per_s"], 4)
        if figures["baseline_hop_records_per_s"]
        else None
    )
    if _env("BENCH_REPLICAS", 1):
        figures["replicas"] = await measure_replicas(
            console, _env("BENCH_REPLICA_RATE", 50), _env("BENCH_REPLICA_S", 20), _env("BENCH_DRAIN_S", 240)
        )
    _print(console, figures)
    if "replicas" in figures:
        _print_replicas(console, figures["replicas"])
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"figures written to {out / 'bench.json'}")
    return figures


def _print(console: Console, f: dict[str, Any]) -> None:
    t = Table(title="Concord benchmark (this machine, everything on it)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_row("baseline: one at-least-once hop", f"{f['baseline_hop_records_per_s']:.0f} records/s", "")
    tp = f["throughput"]
    t.add_row(
        f"flows completed in the {tp['window_s']}s window (offered {tp['offered_flows_per_s']:.0f}/s)",
        f"{tp['completed_in_window_per_s']:.0f} flows/s",
        "",
    )
    t.add_row(
        "  of which in its last two thirds (steady state under load)",
        f"{tp['completed_in_steady_state_per_s']:.0f} flows/s",
        "≥ 500",
    )
    t.add_row(
        "all offered flows, until the last one completed",
        f"{tp['all_completed_per_s']:.0f} flows/s",
        f"{tp['flows_completed']}/{tp['flows_offered']} done",
    )
    for lat in f["latency"]:
        _print_latency(t, lat)
    cores = f["machine"]["cores"] or 1
    for name, ms in f["cpu_ms_per_flow"].items():
        t.add_row(
            f"CPU per completed flow: {name}",
            f"{ms:.2f} ms",
            f"≤ {1000 * cores / 500:.1f} ms in all for 500/s" if name == "total" else "",
        )
    for name, mib in f["peak_memory_mib"].items():
        t.add_row(f"peak memory: {name}", f"{mib:.0f} MiB", "")
    t.add_row("pipeline flows/s ÷ baseline hop records/s", f"{f['pipeline_vs_baseline']}", "")
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


SERVICES = ("intake", "matching", "compliance_gate", "payout_release", "ledger")


def _print_latency(t: Table, lat: dict[str, Any]) -> None:
    for name, key in (
        ("invoice.submitted → approved_to_pay", "submitted_to_approved_ms"),
        ("invoice.submitted → approval posted", "submitted_to_approval_posted_ms"),
    ):
        p = lat[key]
        t.add_row(
            f"{name} at {lat['offered_flows_per_s']:.0f} flows/s",
            f"p50 {p['p50']:.0f} / p95 {p['p95']:.0f} / p99 {p['p99']:.0f} ms",
            "p99 ≤ 500 ms" if key == "submitted_to_approved_ms" else "",
        )


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
