"""compliance_gate: payee profiles → derived payout eligibility (SPEC §7).

Consumes `payee.profile_updated` on concord.in.payees; publishes `payee.eligibility_changed`
on concord.compliance.eligibility (key payee_id) when a payee is first evaluated and whenever
what downstream knows about it changes; a periodic sweep re-evaluates every payee so expiries
and stale AML screenings block payouts without any new event.

Configuration (environment; besides the shared CONCORD_* settings):

- `CONCORD_AML_MAX_AGE_DAYS` (default 365): an AML screening older than this many days is
  stale (`aml_screening_stale`); exactly this old is still fresh.
- `CONCORD_EU_VAT_CHECK` (default true): EU businesses that gave a VAT number need
  `vat.status = valid` (`vat_invalid`); false switches the rule off.
- `CONCORD_COMPLIANCE_SWEEP_INTERVAL_S` (default 60): seconds between two eligibility sweeps.

A bad value stops the service at start with the variable's name. Run with
`python -m services.compliance_gate`.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.compliance_gate.handlers import router, sweep_eligibility
from services.compliance_gate.policy import sweep_interval_s
from shared.service import PeriodicTask, Service
from shared.unit_of_work import UnitOfWork

SWEEP_INTERVAL_S = sweep_interval_s(os.environ)


async def _sweep_now(uow: UnitOfWork) -> None:
    await sweep_eligibility(uow, uow.now)


service = Service(
    router,
    Path(__file__).parent / "migrations",
    periodic=(
        PeriodicTask("eligibility-sweep", interval_s=lambda _settings: SWEEP_INTERVAL_S, run=_sweep_now),
    ),
)
app = service.app
