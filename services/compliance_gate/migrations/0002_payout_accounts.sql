-- SPEC §13.3: each payee's confirmed payout account and the change waiting for its
-- confirmation and cooling-off ({confirmed_ref, pending: {ref, changed_at, updated_by,
-- confirmed_by, confirmed_at}}). NULL for payees stored before: their current account counts
-- as confirmed (it was the one paid to until now).
ALTER TABLE payees ADD COLUMN account jsonb;
