"""Payout release wiring: the consumer, the scheduled payout run, start-up checks."""

from __future__ import annotations

from pathlib import Path

from services.payout_release.handlers import router, scheduled_payout_run
from services.payout_release.policy import load_cohorts
from shared.metrics import PAYOUTS_UNSUCCESSFUL
from shared.service import PeriodicTask, Service
from shared.settings import Settings


def check_policy(settings: Settings) -> None:
    """Fail at start on a malformed or missing policy file, not at the first payout run."""
    load_cohorts(settings)
    for outcome in ("failed", "returned"):  # at 0 from the start, for the alert rule's increase()
        PAYOUTS_UNSUCCESSFUL.labels(outcome)


service = Service(
    router,
    Path(__file__).parent / "migrations",
    periodic=(PeriodicTask("payout-run", lambda s: s.payout_run_interval_s, scheduled_payout_run),),
    on_startup=check_policy,
)
app = service.app
