-- The journal's last line of defence (0001: every entry balances per currency and has two lines
-- at least, checked at commit) asked its two questions of each entry's lines in two queries.
-- One pass over the lines answers both: under `make bench`, pg_stat_statements counted these
-- trigger queries as 5.3 of the ledger's 8.4 statements per flow. Same refusals, same messages;
-- where several currencies are off, the first by currency code is named.
CREATE OR REPLACE FUNCTION journal_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lines bigint;
    off_currency text;
    off_net numeric;
BEGIN
    SELECT coalesce(sum(n), 0),
           (array_agg(currency ORDER BY currency) FILTER (WHERE net <> 0))[1],
           (array_agg(net ORDER BY currency) FILTER (WHERE net <> 0))[1]
      INTO lines, off_currency, off_net
      FROM (SELECT currency, count(*) AS n, sum(debit) - sum(credit) AS net
              FROM journal_lines WHERE entry_id = NEW.entry_id
             GROUP BY currency) AS per_currency;
    IF off_currency IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: %', NEW.entry_id, off_currency, off_net;
    END IF;
    IF lines < 2 THEN
        RAISE EXCEPTION 'journal entry % has fewer than two lines', NEW.entry_id;
    END IF;
    RETURN NULL;
END;
$$;
