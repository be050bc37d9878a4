-- Indexes for lookups every flow makes; measured with pg_stat_statements under `make bench`,
-- each was a sequential scan that grew with the journal.
--   decisions by PO: the GRNI true-up after each batch reads a PO's decisions.
CREATE INDEX decisions_po ON decisions (po_number, seq) WHERE po_number IS NOT NULL;
--   "is this approval entry reversed?" is asked for every approval and revocation.
CREATE INDEX journal_entries_reverses ON journal_entries (reverses_entry_id)
    WHERE reverses_entry_id IS NOT NULL;
-- GIN's pending list makes every containment lookup scan all not-yet-merged entries, and
-- the journal is written to constantly: merge on insert instead.
ALTER INDEX journal_entries_invoices SET (fastupdate = off);
ALTER INDEX journal_entries_receipts SET (fastupdate = off);
ALTER INDEX payouts_invoices SET (fastupdate = off);
