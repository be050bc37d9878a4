"""Payout release wiring: the consumer, the scheduled payout run, start-up checks."""

from __future__ import annotations

from pathlib import Path

from services.payout_release.handlers import router, scheduled_payout_run
from services.payout_release.policy import load_cohorts
from shared.service import PeriodicTask, Service
from shared.settings import Settings


def check_policy(settings: Settings) -> None:
    """Fail at start on a malformed or missing policy file, not at the first payout run."""
    load_cohorts(settings)


service = Service(
    router,
    Path(__file__).parent / "migrations",
    periodic=(PeriodicTask("payout-run", lambda s: s.payout_run_interval_s, scheduled_payout_run),),
    on_startup=check_policy,
)
app = service.app
