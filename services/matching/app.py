"""Wiring: the router, migrations, the configuration loaded at start and the escalation task."""

from __future__ import annotations

from pathlib import Path

from services.matching.config import MatchingConfig
from services.matching.escalation import escalate_overdue_holds
from services.matching.handlers import router
from shared.service import PeriodicTask, Service

service = Service(
    router,
    Path(__file__).parent / "migrations",
    config=MatchingConfig.load,  # a bad key stops the start, naming itself (shared.config.ConfigError)
    periodic=(
        # Escalate at the payout-run cadence: a hold's due_by is the cutoff of the next run.
        PeriodicTask(
            "escalate_overdue_holds", interval_s=lambda s: s.payout_run_interval_s, run=escalate_overdue_holds
        ),
    ),
)
app = service.app
