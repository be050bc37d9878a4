"""Wiring: the router, migrations, the escalation task and the policy check at start."""

from __future__ import annotations

from pathlib import Path

from services.matching.handlers import configure, escalate_overdue_holds, router
from shared.service import PeriodicTask, Service
from shared.settings import Settings


def _load_config(settings: Settings) -> None:
    # Raises PolicyError naming the bad key: the service stops before consuming anything.
    configure(settings)


service = Service(
    router,
    Path(__file__).parent / "migrations",
    periodic=(
        # Escalate at the payout-run cadence: a hold's due_by is the cutoff of the next run.
        PeriodicTask(
            "escalate_overdue_holds", interval_s=lambda s: s.payout_run_interval_s, run=escalate_overdue_holds
        ),
    ),
    on_startup=_load_config,
)
app = service.app
