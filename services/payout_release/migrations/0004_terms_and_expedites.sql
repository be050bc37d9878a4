-- SPEC §13.5: a PO's payment terms (of the version in force) decide when its invoices fall due,
-- and a release inside an early-payment window pays less by the discount taken.
ALTER TABLE purchase_orders ADD COLUMN payment_terms text;
ALTER TABLE payout_invoices ADD COLUMN discount numeric NOT NULL DEFAULT 0 CHECK (discount >= 0);
ALTER TABLE payouts ADD COLUMN discount numeric NOT NULL DEFAULT 0 CHECK (discount >= 0);
-- SPEC §13.2: a refused expedite names each open hold's reason, so keep them with the decision.
ALTER TABLE invoices ADD COLUMN hold_reasons text[] NOT NULL DEFAULT '{}';
-- A payout released by an expedite (SPEC §13.2): who approved it and why.
ALTER TABLE payouts ADD COLUMN expedite jsonb;
-- The first day a run may release a not_due invoice, as told in payout.blocked.
ALTER TABLE payout_blocks ADD COLUMN not_before date;
