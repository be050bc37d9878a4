"""Payout release wiring: the consumer, the scheduled payout run, configuration (config.py)."""

from __future__ import annotations

from pathlib import Path

from services.payout_release.config import PayoutConfig
from services.payout_release.handlers import router
from services.payout_release.runs import scheduled_payout_run
from shared.metrics import PAYOUTS_UNSUCCESSFUL
from shared.service import PeriodicTask, Service
from shared.settings import Settings


def zero_unsuccessful_payouts(_settings: Settings) -> None:
    for outcome in ("failed", "returned"):  # at 0 from the start, for the alert rule's increase()
        PAYOUTS_UNSUCCESSFUL.labels(outcome)


service = Service(
    router,
    Path(__file__).parent / "migrations",
    config=PayoutConfig.load,
    periodic=(PeriodicTask("payout-run", lambda s: s.payout_run_interval_s, scheduled_payout_run),),
    on_startup=zero_unsuccessful_payouts,
)
app = service.app
