"""Where the Kafka broker's CPU goes: idle, beside the five idle services, and per flow under a fixed load.

    python -m bench.broker idle --seconds 20              # the broker alone (nothing of ours connected)
    python -m bench.broker services --seconds 20          # the five services started and idle
    python -m bench.broker load --rate 40 --seconds 15    # flows at a fixed rate, drained: per flow

CPU time only (utime + stime from /proc), never wall time: the machine is shared. For the broker
it reports the whole JVM and its threads grouped by name (Kafka's network threads, request
handlers, the KRaft controller and Raft I/O, the group coordinator, GC, JIT, …): per-thread CPU
from /proc/<pid>/task/*/stat, full Java thread names from `jcmd <pid> Thread.print` (native ids),
read after the window so the attach does not count. `load` also reports the services' and this
driver's and PostgreSQL's CPU per flow (the driver offers the load and watches it, as `make bench` does),
the share of flows matching held on the way, each service's records per batch (its
`concord_batch_records`) and the p50/p99 from `invoice.submitted` to its approval and to the
ledger's posting of it: the A/B harness for the consumers' path (`--json`, `--label`).
The broker is this stack's (its properties live in this checkout's state dir: bench/cpu.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.cpu import _STATE, _TICKS_PER_S, _processes, driver_cpu_s, infrastructure_cpu_s, process_cpu_s


def broker_pid() -> int:
    pids = [
        pid
        for pid, (_, cmd) in _processes().items()
        if b"java" in cmd[:300] and _STATE + b"/run" in cmd and b"kafka.Kafka" in cmd
    ]
    if len(pids) != 1:
        raise SystemExit(f"expected one broker of this stack's, found {pids} (make up / make test first)")
    return pids[0]


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    """tid → (comm, CPU seconds) of every live thread of a process."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / _TICKS_PER_S)
    return out


def java_thread_names(pid: int) -> dict[int, str]:
    """tid → Java thread name, from jcmd (nid=0x… is the native thread id)."""
    try:
        text = subprocess.run(
            ["jcmd", str(pid), "Thread.print"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names: dict[int, str] = {}
    for m in re.finditer(r'^"(?P<name>[^"]*)".*?nid=0x(?P<nid>[0-9a-f]+)', text, re.M):
        names[int(m["nid"], 16)] = m["name"]
    return names


def _group(name: str) -> str:
    """A thread's group: its name with numbers and listener details folded."""
    name = re.sub(r"ListenerName\([^)]*\)-\S+", "<listener>", name)
    return re.sub(r"\d+", "#", name)


class BrokerCpu:
    """Broker CPU over a window: the whole process and its threads, by group."""

    def __init__(self) -> None:
        self.pid = broker_pid()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.total0 = process_cpu_s(self.pid)
        self.threads0 = thread_cpu_s(self.pid)

    def stop(self) -> dict[str, Any]:
        total = process_cpu_s(self.pid) - self.total0
        threads1 = thread_cpu_s(self.pid)
        seconds = time.monotonic() - self.t0
        names = java_thread_names(self.pid)  # after the window: the attach costs the JVM CPU
        groups: dict[str, float] = {}
        for tid, (comm, cpu) in threads1.items():
            used = cpu - self.threads0.get(tid, (comm, 0.0))[1]
            if used <= 0:
                continue
            g = _group(names.get(tid, comm))
            groups[g] = groups.get(g, 0.0) + used
        # Threads that ended inside the window are in the process total but not in the threads'.
        groups["(threads ended in the window)"] = max(0.0, total - sum(groups.values()))
        return {
            "seconds": seconds,
            "cpu_s": total,
            "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        }


def _report(
    what: str, window: dict[str, Any], per: float, unit: str, extra: dict[str, float]
) -> dict[str, Any]:
    fig = {
        "what": what,
        "unit": unit,
        "window_s": round(window["seconds"], 1),
        "broker_ms": round(1000 * window["cpu_s"] / per, 3),
        "broker_threads_ms": {
            g: round(1000 * v / per, 3) for g, v in window["groups"].items() if v * 1000 / per >= 0.005
        },
        "others_ms": {k: round(1000 * v / per, 3) for k, v in extra.items()},
        "load_average": list(os.getloadavg()),
    }
    print(f"{what}: broker {fig['broker_ms']} ms {unit} over {fig['window_s']} s")
    for g, v in list(fig["broker_threads_ms"].items())[:18]:
        print(f"  {v:9.3f}  {g}")
    for k, v in fig["others_ms"].items():
        print(f"  {k}: {v} ms {unit}")
    return fig


async def idle(seconds: float) -> dict[str, Any]:
    cpu = BrokerCpu()
    cpu.start()
    await asyncio.sleep(seconds)
    w = cpu.stop()
    return _report("broker alone", w, w["seconds"], "per s", {})


async def services(seconds: float) -> dict[str, Any]:
    from bench.pipeline import running_stack

    async with running_stack(payout_run_interval_s=1.0, trace_sample_ratio=_sample_ratio()) as stack:
        await asyncio.sleep(5)  # joined their groups, first fetches made
        cpu = BrokerCpu()
        procs = {n: p.proc.pid for n, p in stack.processes.items() if p.proc is not None}
        before = {n: process_cpu_s(pid) for n, pid in procs.items()}
        cpu.start()
        await asyncio.sleep(seconds)
        after = {n: process_cpu_s(pid) for n, pid in procs.items()}
        w = cpu.stop()
    return _report(
        "broker beside the five idle services",
        w,
        w["seconds"],
        "per s",
        {n: after[n] - before[n] for n in procs},
    )


def _driver_and_database() -> dict[str, float]:
    """This driver's CPU and PostgreSQL's (every process of this stack's server, as make bench
    counts it)."""
    return {"driver": driver_cpu_s(), "postgresql": infrastructure_cpu_s()["postgresql"]}


def _sample_ratio() -> float:
    """`make bench`'s trace sampling (CONCORD_TRACE_SAMPLE_RATIO, else its default): left to the
    services' own default (1.0, every span recorded) a profile here showed ~13% of
    payout_release's CPU in tracing that `make bench` never pays."""
    from bench.__main__ import DEFAULT_SAMPLE_RATIO

    return float(os.environ.get("CONCORD_TRACE_SAMPLE_RATIO", DEFAULT_SAMPLE_RATIO))


async def load(rate: float, seconds: float, drain_s: float) -> dict[str, Any]:
    from bench.pipeline import Observed, TimedWatcher, offer_load, prime, running_stack, until_all
    from shared.publish import Publisher

    async with running_stack(payout_run_interval_s=1.0, trace_sample_ratio=_sample_ratio()) as stack:
        observed = Observed()
        watcher = TimedWatcher(stack.settings, observed)
        await watcher.start()
        tag = uuid.uuid4().hex[:6]
        try:
            async with Publisher(stack.settings, source="bench") as pub:
                await prime(pub, tag)
                await asyncio.sleep(3)
                procs = {n: p.proc.pid for n, p in stack.processes.items() if p.proc is not None}
                cpu = BrokerCpu()
                before = {n: process_cpu_s(pid) for n, pid in procs.items()} | _driver_and_database()
                cpu.start()
                batches = _batch_records(stack)
                o = await offer_load(pub, tag, rate, seconds, observed, watcher, lag_s=1.0)
                ids = list(observed.submitted_at)
                deadline = time.monotonic() + drain_s
                complete = until_all(ids, lambda i: observed.complete_at(i) is not None)
                while time.monotonic() < deadline and not complete():
                    watcher.drain()
                    await asyncio.sleep(0.1)
                watcher.drain()
                after = {n: process_cpu_s(pid) for n, pid in procs.items()} | _driver_and_database()
                w = cpu.stop()
                batches_after = _batch_records(stack)
        finally:
            await watcher.stop()
    done = sum(1 for i in ids if observed.complete_at(i) is not None)
    held = len(observed.held) / max(1, o.flows)
    per_batch = {
        n: round((s - batches[n][0]) / max(1.0, c - batches[n][1]), 1) for n, (s, c) in batches_after.items()
    }
    latency = {
        "submitted_to_approved_ms": _since_submitted(observed, observed.approved_at, ids),
        "submitted_to_approval_posted_ms": _since_submitted(observed, observed.approval_posted_at, ids),
    }
    print(f"{done} of {o.flows} flows completed, {100 * held:.1f}% held by matching on the way")
    for name, ms in latency.items():
        print(
            f"  {name.removesuffix('_ms').replace('_', ' ')}: p50 {ms['p50']:.0f} ms, p99 {ms['p99']:.0f} ms"
        )
    print("  records a batch: " + ", ".join(f"{n} {v}" for n, v in per_batch.items() if v))
    fig = _report(
        f"broker under {rate:g} flows/s for {seconds:g} s, drained",
        w,
        max(1, done),
        "per flow",
        {n: after[n] - before[n] for n in after},
    )
    fig["flows_offered"], fig["flows_completed"] = o.flows, done
    fig["held_share"], fig["records_per_batch"] = round(held, 4), per_batch
    fig |= latency
    return fig


def _since_submitted(observed: Any, at: dict[str, float], ids: list[str]) -> dict[str, float]:
    """p50/p95/p99 ms from each invoice's submission to `at` (the watcher's monotonic stamps)."""
    from bench.pipeline import percentiles

    q = percentiles([at[i] - observed.submitted_at[i] for i in ids if i in at])
    return {k: round(1000 * v, 1) for k, v in q.items() if k != "n"}


def batch_records(metrics: str) -> tuple[float, float]:
    """(records, batches) consumed so far, from a service's /metrics text (concord_batch_records)."""
    found = {}
    for name in ("concord_batch_records_sum", "concord_batch_records_count"):
        m = re.search(rf"^{name}{{[^}}]*}} ([0-9.e+]+)$", metrics, re.M)
        found[name] = float(m.group(1)) if m else 0.0
    return found["concord_batch_records_sum"], found["concord_batch_records_count"]


def _batch_records(stack: Any) -> dict[str, tuple[float, float]]:
    out = {}
    for name, proc in stack.processes.items():
        with urllib.request.urlopen(f"http://{proc.metrics_address}/metrics", timeout=5) as r:
            out[name] = batch_records(r.read().decode())
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.broker", description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("idle", "services", "load"))
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=40.0, help="load: flows offered per second")
    p.add_argument("--drain-s", type=float, default=120.0)
    p.add_argument("--json", type=Path, help="append the figures as one JSON line to this file")
    p.add_argument("--label", default="", help="a label stored with the figures (A/B runs)")
    args = p.parse_args(argv)
    if args.mode == "idle":
        fig = asyncio.run(idle(args.seconds))
    elif args.mode == "services":
        fig = asyncio.run(services(args.seconds))
    else:
        import uvloop

        fig = uvloop.run(load(args.rate, args.seconds, args.drain_s))
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps({"label": args.label, **fig}) + "\n")


if __name__ == "__main__":
    main()
