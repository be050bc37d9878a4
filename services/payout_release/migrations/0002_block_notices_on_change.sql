-- The reasons last published in a payout.blocked per invoice. Scheduled runs publish a block only
-- when its reasons change, so a run every few seconds does not repeat thousands of identical
-- notices; the last one stays the answer to "why wasn't this paid" until the reasons change.
CREATE TABLE published_blocks (
    invoice_id  text PRIMARY KEY,
    reasons     text[] NOT NULL,
    run_id      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
