"""`python -m bench.saturation --rate 180 --seconds 30`: one fixed load on a stack of its own, drained,
and per process its CPU per completed flow and its batch sizes (the services' Prometheus
`concord_batch_records`), with the share of flows matching held on the way. For A/B runs of a
change to the consumers' path: old and new alternating, `--json` collecting the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.cpu import driver_cpu_s, infrastructure_cpu_s, process_cpu_s
from bench.pipeline import Observed, Stack, TimedWatcher, offer_load, prime, running_stack
from shared.publish import Publisher


def batch_records(metrics: str) -> tuple[float, float]:
    """(records, batches) so far, from a service's /metrics text."""
    found = {}
    for name in ("concord_batch_records_sum", "concord_batch_records_count"):
        m = re.search(rf"^{name}{{[^}}]*}} ([0-9.e+]+)$", metrics, re.M)
        found[name] = float(m.group(1)) if m else 0.0
    return found["concord_batch_records_sum"], found["concord_batch_records_count"]


def _batches(stack: Stack) -> dict[str, tuple[float, float]]:
    out = {}
    for name, proc in stack.processes.items():
        with urllib.request.urlopen(f"http://{proc.metrics_address}/metrics", timeout=5) as r:
            out[name] = batch_records(r.read().decode())
    return out


def _cpu(stack: Stack) -> dict[str, float]:
    own = {n: process_cpu_s(p.proc.pid) for n, p in stack.processes.items() if p.proc is not None}
    return own | infrastructure_cpu_s() | {"driver": driver_cpu_s()}


async def run(rate: float, seconds: float, drain_s: float) -> dict[str, Any]:
    async with running_stack(payout_run_interval_s=1.0, trace_sample_ratio=0.01) as stack:
        observed = Observed()
        watcher = TimedWatcher(stack.settings, observed)
        await watcher.start()
        try:
            async with Publisher(stack.settings, source="bench") as pub:
                tag = uuid.uuid4().hex[:6]
                await prime(pub, tag)
                await asyncio.sleep(3)
                batches, cpu = _batches(stack), _cpu(stack)
                offered = await offer_load(pub, tag, rate, seconds, observed, watcher, lag_s=1.0)
                ids = list(observed.submitted_at)
                deadline = time.monotonic() + drain_s
                while time.monotonic() < deadline and not all(observed.complete_at(i) for i in ids):
                    watcher.drain()
                    await asyncio.sleep(0.2)
                watcher.drain()
                batches_after, cpu_after = _batches(stack), _cpu(stack)
        finally:
            await watcher.stop()
    done = max(1, sum(1 for i in ids if observed.complete_at(i) is not None))
    return {
        "rate": rate,
        "flows_offered": offered.flows,
        "flows_completed": done,
        "held_share": round(len(observed.held) / max(1, offered.flows), 4),
        "cpu_ms_per_flow": {k: round(1000 * (v - cpu.get(k, 0.0)) / done, 3) for k, v in cpu_after.items()},
        "records_per_batch": {
            n: round((s - batches[n][0]) / max(1.0, c - batches[n][1]), 1)
            for n, (s, c) in batches_after.items()
        },
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.saturation", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=180.0, help="flows offered per second")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--drain-s", type=float, default=120.0)
    p.add_argument("--json", type=Path, help="append the figures as one JSON line to this file")
    p.add_argument("--label", default="", help="a label stored with the figures (A/B runs)")
    args = p.parse_args(argv)
    import uvloop

    fig = uvloop.run(run(args.rate, args.seconds, args.drain_s))
    cpu = fig["cpu_ms_per_flow"]
    print(
        f"{fig['flows_completed']} of {fig['flows_offered']} flows at {args.rate:g}/s, "
        f"held {100 * fig['held_share']:.1f}%, CPU {sum(cpu.values()):.2f} ms per flow"
    )
    for name, ms in cpu.items():
        per_batch = fig["records_per_batch"].get(name)
        print(f"  {name:16s} {ms:6.2f} ms" + (f"   {per_batch:6.1f} records a batch" if per_batch else ""))
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps({"label": args.label, **fig}) + "\n")


if __name__ == "__main__":
    main()
