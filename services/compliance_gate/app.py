"""compliance_gate: payee profiles → derived payout eligibility (SPEC §7).

Consumes `payee.profile_updated` on concord.in.payees; publishes `payee.eligibility_changed`
on concord.compliance.eligibility (key payee_id) when a payee is first evaluated and whenever
what downstream knows about it changes; a periodic sweep re-evaluates every payee so expiries
and stale AML screenings block payouts without any new event. Configuration: config.py.
Run with `python -m services.compliance_gate`.
"""

from __future__ import annotations

from pathlib import Path

from services.compliance_gate.config import GateConfig
from services.compliance_gate.handlers import router
from services.compliance_gate.sweep import sweep_now
from shared.service import PeriodicTask, Service

service = Service(
    router,
    Path(__file__).parent / "migrations",
    config=GateConfig.load,
    periodic=(
        PeriodicTask("eligibility-sweep", interval_s=lambda s: s.compliance_sweep_interval_s, run=sweep_now),
    ),
)
app = service.app
