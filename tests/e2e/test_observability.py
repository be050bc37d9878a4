"""SPEC §14.1 end to end: after the demo scenario, Zipkin's own API finds one invoice's trace by its
`invoice_id` tag with spans from intake, matching, payout_release and the ledger, and Prometheus
reports every service target up.

The five services run as processes exporting to a Zipkin of the test's own (deploy/zipkin.sh,
the Maven Central jar), scraped by a Prometheus of its own (Debian's package, the shipped rules)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console

from shared.observability import services_of, wait_for_invoice_trace
from shared.services import SERVICES
from tests.e2e.conftest import running_stack
from tests.kafka_support import isolated_settings
from tests.observability_support import prometheus, target_health, wait_until, zipkin
from tools.cli.demo import TRACED, run_demo

pytestmark = pytest.mark.e2e


async def test_after_the_demo_zipkin_has_the_invoice_trace_and_prometheus_every_target_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # the services' span batches: 0.2 s, not 5 s
    async with zipkin(tmp_path / "zipkin") as z:
        # Zipkin's JVM starts while the services do; the demo's spans come after both are ready.
        settings = isolated_settings(
            payout_run_interval_s=3600, relay_poll_interval_s=0.1, otel_exporter="zipkin", zipkin_port=z.port
        )
        async with running_stack(settings) as stack:
            await z.ready
            targets = {name: p.metrics_address for name, p in stack.processes.items()}
            with prometheus(targets, tmp_path / "prometheus") as prometheus_url:
                report = await run_demo(stack.settings, timeout_s=60, console=Console(width=140))
                assert report.problems == []
                invoice_id = sorted(report.scenario.expected_approved - {report.scenario.blocked_invoice})[0]
                trace = await asyncio.to_thread(wait_for_invoice_trace, z.url, invoice_id, TRACED)
                health = await wait_until(
                    lambda: (h := target_health(prometheus_url)) and all(v == "up" for v in h.values()) and h,
                    20,
                    "every target up",
                )

    assert trace is not None, f"no trace of {invoice_id} with spans from {TRACED} reached Zipkin"
    assert services_of(trace) >= set(TRACED)
    names = {s["name"] for s in trace}
    assert {
        "intake handle invoice.submitted",
        "matching handle invoice.accepted",
        "payout_release handle invoice.approved_to_pay",
        "ledger handle invoice.approved_to_pay",
    } <= names
    assert len({s["traceId"] for s in trace}) == 1
    handled = [s for s in trace if s["name"] == "payout_release handle invoice.approved_to_pay"]
    assert handled[0]["tags"]["invoice_id"] == invoice_id
    assert handled[0]["tags"]["po_number"] and handled[0]["tags"]["payee_id"]
    assert health == dict.fromkeys(SERVICES, "up")
