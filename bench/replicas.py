"""The replicas phase of `make bench`: two processes of every service on the single-broker stack.

On two cores it will not be faster; it shows what the shape costs (CPU per flow, latency) and that
nothing in the code serialises or confuses replicas: with two payout_release processes running
scheduled payout runs against a funding account that cannot pay every invoice, no invoice is
released twice and the account is never overdrawn.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

from rich.console import Console

from bench.pipeline import (
    Observed,
    TimedWatcher,
    cpu_seconds,
    flow,
    offer_load,
    peak_memory_mib,
    percentiles,
    prime,
    running_stack,
    until_all,
)
from shared.publish import Publisher


def _by_service(values: dict[str, float]) -> dict[str, float]:
    """intake + intake-2 → intake (the other keys as they are)."""
    out: dict[str, float] = {}
    for name, v in values.items():
        service = name.rsplit("-", 1)[0] if name[-1].isdigit() and "-" in name else name
        out[service] = out.get(service, 0.0) + v
    return out


def _ms(p: dict[str, float]) -> dict[str, float]:
    return {k: (round(v * 1000, 1) if k != "n" else v) for k, v in p.items()}


async def measure_replicas(
    console: Console, rate: float, seconds: float, drain_s: float, lag_s: float, **overrides: Any
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    # What the flows will cost: fund three quarters of it, so payout runs run out of money and
    # must refuse the rest (insufficient_funds) — the place where two replicas could overdraw.
    expected = int(rate * seconds)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    cost = sum(Decimal(flow(tag, i, today)[2][3]["total_amount"]) for i in range(expected))
    funds = (cost * 3 / 4).quantize(Decimal("0.01"))
    # The relays at their default poll, as in the single-process run (bench/__main__.py).
    async with running_stack(replicas=2, payout_run_interval_s=1.0, **overrides) as stack:
        observed = Observed()
        watcher = TimedWatcher(stack.settings, observed)
        await watcher.start()
        try:
            async with Publisher(stack.settings, source="bench") as pub:
                await prime(pub, tag, funding=str(funds))
                await asyncio.sleep(3)
                with console.status(
                    f"replicas phase: {rate:.0f} flows/s for {seconds:.0f}s, 2 processes each…"
                ):
                    cpu_before = cpu_seconds(stack)
                    offered = (
                        await offer_load(pub, tag, rate, seconds, observed, watcher, lag_s=lag_s)
                    ).flows
                    ids = list(observed.submitted_at)
                    deadline = time.monotonic() + drain_s
                    posted = until_all(ids, lambda i: i in observed.approval_posted_at)
                    while time.monotonic() < deadline and not posted():
                        watcher.drain()
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(4)  # a few more scheduled runs by both payout_release replicas
                    watcher.drain()
                    cpu_used = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds(stack).items()}
        finally:
            await watcher.stop()
        memory = {n: round(peak_memory_mib(p), 1) for n, p in stack.processes.items()}
    released = {s.data["payout_id"]: s.data for s in watcher.seen if s.event_type == "payout.released"}
    paid = Counter(i["invoice_id"] for p in released.values() for i in p["invoices"])
    released_total = sum((Decimal(p["amount"]) for p in released.values()), Decimal(0))
    approved = [i for i in ids if i in observed.approved_at]
    per_service = _by_service(cpu_used)
    return {
        "offered_flows_per_s": rate,
        "flows_offered": offered,
        "flows_approved": len(approved),
        "submitted_to_approved_ms": _ms(
            percentiles([observed.approved_at[i] - observed.submitted_at[i] for i in approved])
        ),
        "submitted_to_approval_posted_ms": _ms(
            percentiles(
                [
                    observed.approval_posted_at[i] - observed.submitted_at[i]
                    for i in ids
                    if i in observed.approval_posted_at
                ]
            )
        ),
        "cpu_ms_per_approved_flow": {
            k: round(1000 * v / max(1, len(approved)), 2) for k, v in per_service.items()
        }
        | {"total": round(1000 * sum(per_service.values()) / max(1, len(approved)), 2)},
        "peak_memory_mib": memory,
        "payouts": len(released),
        "invoices_paid": len(paid),
        "invoices_released_twice": sorted(i for i, n in paid.items() if n > 1),
        "funding": str(funds),
        "released_total": str(released_total),
        "overdrawn": released_total > funds,
    }
