-- The GRNI true-up after a batch took two round trips: the advisory locks of the batch's POs,
-- then the read, which must see what other transactions committed while this one waited for the
-- locks (so it cannot be one statement: a statement's snapshot is taken before its locks). A
-- VOLATILE PL/pgSQL function takes a fresh snapshot for each statement it runs, so it can do
-- both in one call: the same locks in the same order, then the same read, after them.
CREATE FUNCTION ledger_grni_inputs(pos text[])
RETURNS TABLE (what text, po_number text, version integer, doc jsonb, id text, kind text,
               seq bigint, balance numeric)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    -- Until this transaction ends, no other truing up of these POs' GRNI; in ascending order of
    -- the lock key, so two transactions never deadlock (a volatile function in the select list
    -- is evaluated after ORDER BY).
    PERFORM pg_advisory_xact_lock(k)
       FROM (SELECT DISTINCT hashtext('ledger:grni:' || po) AS k FROM unnest(pos) AS po) AS keys
      ORDER BY k;
    -- Read after the locks: a new snapshot, so a concurrent transaction's true-up is included.
    RETURN QUERY
    WITH wanted AS (SELECT DISTINCT unnest(pos) AS po_number)
    SELECT 'po'::text AS what, in_force.po_number, in_force.version, in_force.state AS doc,
           NULL::text AS id, NULL::text AS kind, NULL::bigint AS seq, NULL::numeric AS balance
      FROM (SELECT DISTINCT ON (v.po_number) v.po_number, v.version, v.state
              FROM po_versions v JOIN wanted USING (po_number)
             ORDER BY v.po_number, v.version DESC) AS in_force
    UNION ALL
    SELECT 'receipt', r.po_number, NULL, r.lines, r.receipt_id, r.recorded_by, NULL, NULL
      FROM receipts r JOIN wanted USING (po_number)
     WHERE r.status = 'posted'
    UNION ALL
    SELECT 'decision', dc.po_number, NULL, dc.payload, dc.invoice_id, dc.kind, dc.seq, NULL
      FROM decisions dc JOIN wanted USING (po_number)
    UNION ALL
    SELECT 'grni', e.po_number, NULL, NULL, l.currency::text, NULL, NULL, sum(l.credit) - sum(l.debit)
      FROM journal_entries e
      JOIN wanted USING (po_number)
      JOIN journal_lines l USING (entry_id)
     WHERE l.account = 'liability:grni'
     GROUP BY e.po_number, l.currency;
END;
$$;
