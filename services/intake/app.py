"""intake: every inbound document validated, versioned and de-duplicated (SPEC §3, §5).

Consumes concord.in.requisitions, concord.in.purchase-orders, concord.in.receipts,
concord.in.invoices (JSON and UBL/Peppol) and the `po_flip.requested` command; publishes
accepted documents on concord.intake.documents and refusals on concord.out.rejections.

Configuration: the `intake:` section of the policy file (services/intake/config.py), read and
validated once at start. Run with `python -m services.intake`.
"""

from __future__ import annotations

from pathlib import Path

from services.intake.config import IntakeConfig
from services.intake.handlers import router
from shared.service import Service
from shared.settings import Settings
from shared.text import load_confusables


def _load_tables(_: Settings) -> None:
    """The Unicode confusables table (UTS #39, for invoice-number skeletons) read at start, not on
    the first invoice: ~45 ms of parsing that sat on that invoice's latency, and loaded before
    the collector freezes start-up's objects (shared.service.tune_gc_after_start)."""
    load_confusables()


service = Service(
    router, Path(__file__).parent / "migrations", config=IntakeConfig.load, on_startup=_load_tables
)
app = service.app
