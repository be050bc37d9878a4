-- SPEC §13.2: a payout released by an urgent payout keeps who approved it and why, for the trace.
ALTER TABLE payouts ADD COLUMN expedite jsonb;
