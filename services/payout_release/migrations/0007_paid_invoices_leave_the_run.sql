-- A payout run read every invoice ever decided and checked each against payout_invoices: the
-- work of a run grew with the whole history (make bench, ~30,000 invoices: 26.6 ms a run, one run
-- a second). An invoice in a live payout (released or settled) is not a candidate until that
-- payout fails or is returned, so it carries that fact and the runs read only the invoices still
-- open (not superseded, not in a live payout) through a partial index. The fact is derived from
-- payout_invoices and kept by the database itself: whatever inserts, ends or deletes a payout row,
-- the triggers below set each named invoice's flag to whether it has a live row. The run's own
-- check against live payouts (store.CANDIDATES) stays as it was.
ALTER TABLE invoices ADD COLUMN in_live_payout boolean NOT NULL DEFAULT false;

UPDATE invoices i SET in_live_payout = true
 WHERE EXISTS (SELECT 1 FROM payout_invoices p WHERE p.invoice_id = i.invoice_id AND p.live);

CREATE INDEX invoices_open ON invoices (invoice_id) WHERE NOT superseded AND NOT in_live_payout;

CREATE FUNCTION payout_invoices_keep_in_live_payout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Once per statement, over the invoices of the rows it touched (`changed`).
    UPDATE invoices i SET in_live_payout = now_live.live
      FROM (SELECT c.invoice_id,
                   EXISTS (SELECT 1 FROM payout_invoices p WHERE p.invoice_id = c.invoice_id AND p.live)
                       AS live
              FROM (SELECT DISTINCT invoice_id FROM changed) AS c) AS now_live
     WHERE i.invoice_id = now_live.invoice_id AND i.in_live_payout IS DISTINCT FROM now_live.live;
    RETURN NULL;
END;
$$;

CREATE TRIGGER payout_invoices_inserted AFTER INSERT ON payout_invoices
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION payout_invoices_keep_in_live_payout();
CREATE TRIGGER payout_invoices_updated AFTER UPDATE ON payout_invoices
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION payout_invoices_keep_in_live_payout();
CREATE TRIGGER payout_invoices_deleted AFTER DELETE ON payout_invoices
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION payout_invoices_keep_in_live_payout();
