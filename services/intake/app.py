"""intake: every inbound document validated, versioned and de-duplicated (SPEC §3, §5).

Consumes concord.in.requisitions, concord.in.purchase-orders, concord.in.receipts,
concord.in.invoices (JSON and UBL/Peppol) and the `po_flip.requested` command; publishes
accepted documents on concord.intake.documents and refusals on concord.out.rejections.

Configuration: the `intake:` section of CONCORD_POLICY_FILE (no-PO policy per business unit,
see services/intake/policy.py); read and validated at start. Run with `python -m services.intake`.
"""

from __future__ import annotations

from pathlib import Path

from services.intake.handlers import router
from services.intake.policy import load_intake_policy
from shared.service import Service
from shared.settings import Settings


def _check_policy(settings: Settings) -> None:
    load_intake_policy(settings.policy_file)  # a malformed intake section stops the start, naming the key


service = Service(router, Path(__file__).parent / "migrations", on_startup=_check_policy)
app = service.app
