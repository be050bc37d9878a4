-- A payout run read every invoice ever decided and checked each against payout_invoices: the
-- work of a run grew with the whole history (make bench, ~30,000 invoices: 26.6 ms a run, one run
-- a second). An invoice whose live payout has settled is closed for good unless the payout is
-- returned, so it carries that fact and the runs read only the invoices still open: not
-- superseded and not paid. `paid` is set and cleared with the payout's status
-- (store.set_payout_statuses); the run's own check against live payouts stays as it was.
ALTER TABLE invoices ADD COLUMN paid boolean NOT NULL DEFAULT false;

UPDATE invoices i SET paid = true
  FROM payout_invoices pi JOIN payouts p USING (payout_id)
 WHERE pi.invoice_id = i.invoice_id AND pi.live AND p.status = 'settled';

CREATE INDEX invoices_open ON invoices (invoice_id) WHERE NOT superseded AND NOT paid;
