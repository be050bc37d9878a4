"""bank_gateway: the reference rail of SPEC §12.4 — ISO 20022 files out and in.

Consumes `payout.released` on concord.out.payouts as principal `rail` (consumer group
`rail.concord-bank_gateway`); writes one pain.001.001.09 per cut-off into CONCORD_BANK_OUTBOX
(cutoff.py); reads pain.002 / camt.054 from CONCORD_BANK_INBOX into signed rail events on
concord.in.rail-events (inbox.py). Configuration: config.py. Run with `python -m services.bank_gateway`.
"""

from __future__ import annotations

from pathlib import Path

from services.bank_gateway.config import BankConfig
from services.bank_gateway.cutoff import cut_off, write_files
from services.bank_gateway.handlers import router
from services.bank_gateway.inbox import read_inbox
from shared.metrics import BANK_FILES
from shared.service import PeriodicTask, Service

for _folder in ("outbox", "processed", "rejected"):
    BANK_FILES.labels(_folder)  # exist at 0, so the first increase is seen

service = Service(
    router,
    Path(__file__).parent / "migrations",
    config=BankConfig.load,
    periodic=(
        PeriodicTask("bank-cutoff", interval_s=lambda s: s.bank_cutoff_s, run=cut_off),
        PeriodicTask("bank-write-files", interval_s=lambda s: s.bank_poll_s, run=write_files),
        PeriodicTask("bank-read-inbox", interval_s=lambda s: s.bank_poll_s, run=read_inbox),
    ),
)
app = service.app
