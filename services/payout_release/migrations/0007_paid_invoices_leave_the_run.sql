-- A payout run read every invoice ever decided and checked each against payout_invoices: the
-- work of a run grew with the whole history (make bench, ~30,000 invoices: 26.6 ms a run, one run
-- a second). An invoice in a live payout (released or settled) is not a candidate until that
-- payout fails or is returned, so it carries that fact and the runs read only the invoices still
-- open: not superseded and not in a live payout. The run that inserts an invoice's live payout
-- row sets it, and the rail outcome that ends the row (store.make_invoices_payable_again) clears
-- it, each in the same statement; the run's own check against live payouts stays as it was.
ALTER TABLE invoices ADD COLUMN in_live_payout boolean NOT NULL DEFAULT false;

UPDATE invoices i SET in_live_payout = true
 WHERE EXISTS (SELECT 1 FROM payout_invoices p WHERE p.invoice_id = i.invoice_id AND p.live);

CREATE INDEX invoices_open ON invoices (invoice_id) WHERE NOT superseded AND NOT in_live_payout;
