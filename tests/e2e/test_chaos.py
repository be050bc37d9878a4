"""A small chaos run inside `make test`: ~80 invoices, every service SIGKILLed twice, Kafka and
PostgreSQL restarted once, every inbound record delivered twice — and every invariant holds."""

from __future__ import annotations

import pytest
from rich.console import Console

from chaos import ChaosConfig, run
from chaos.report import print_report
from shared.services import SERVICES_AND_GATEWAY

pytestmark = pytest.mark.e2e


async def test_chaos_small_run_keeps_every_invariant() -> None:
    console = Console(record=True, width=160)
    config = ChaosConfig(
        seed=11,
        invoices=80,
        kills_per_service=2,
        fault_gap_s=(1.5, 4.0),
        quiet_s=6.0,
        phase_timeout_s=120.0,
        settle_timeout_s=120.0,
    )
    report = await run(config, console)
    print_report(report, console)
    text = console.export_text()
    assert {(f.kind, f.target) for f in report.faults} >= {
        ("sigkill", name) for name in SERVICES_AND_GATEWAY
    } | {("restart", "kafka"), ("restart", "postgresql")}, text
    failed = [c for c in report.checks if c.blocking and not c.ok]
    assert not failed, text
    # The fault-free run must also do what the workload meant, or the comparison proves little.
    assert all(c.ok for c in report.checks), text
