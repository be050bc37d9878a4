"""ledger: the double-entry journal, source of financial truth (SPEC §9). `python -m services.ledger`.

Consumes (and posts from):
- concord.intake.documents: `purchase_order.version_in_force` (values receipts; posts receipts
  that were waiting for it), `receipt.accepted` (Dr expense:{bu} / Cr liability:grni at PO
  price), `receipt.reversal_accepted` (reverses the receipt's entry, or drops a pending one);
  requisitions, pending amendments, PO closures and `invoice.accepted` feed the documents
  projection only.
- concord.matching.decisions: `invoice.approved_to_pay` (approval entry; a new approval while
  one is in force replaces it in one entry), `invoice.approval_revoked` (reverses it);
  `invoice.held` and `invoice.superseded` are recorded for trace and reconciliation.
- concord.out.payouts `payout.released`; concord.payouts.events `payout.settlement_recorded`,
  `payout.failure_recorded`, `payout.return_recorded`; concord.in.funding `funding.received`.
- concord.compliance.eligibility `payee.eligibility_changed` (country, 1099-NEC tag).

Publishes `journal.entry_posted` on concord.out.journal (key entry_id) for every entry.

Idempotency: an entry's id is derived from its source event id (UNIQUE), and its business fact
(receipt, decision, payout, rail event, funding) is UNIQUE too, so a redelivered or re-published
fact posts once. The journal tables refuse UPDATE, DELETE and TRUNCATE (trigger; and the runtime
role may only SELECT and INSERT them, SPEC §11) and every entry is checked to balance per
currency at commit (deferred constraint trigger).

Queries for the CLI, tests and chaos run: services/ledger/queries/ (`trace`, `reconcile`,
`check_invariants`, `totals_1099_nec`, `entries`).
"""

from __future__ import annotations

from pathlib import Path

from services.ledger.handlers import router
from shared.service import Service

# The journal is append-only by privilege as well as by trigger (SPEC §11).
service = Service(
    router, Path(__file__).parent / "migrations", append_only=("journal_entries", "journal_lines")
)
app = service.app
