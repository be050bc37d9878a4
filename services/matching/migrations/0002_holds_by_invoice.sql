-- Whether a hold was ever opened for an invoice/reason/line is asked on every match; the
-- partial unique index covers only open holds, so this was a sequential scan of all holds.
CREATE INDEX holds_by_invoice ON holds (invoice_id, reason);
