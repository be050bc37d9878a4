-- Payout release: what it knows of payees, POs and invoices, its funding accounts, its runs and
-- payouts, and every rail response (SPEC §8). Money is numeric, never float.

-- The compliance gate's latest verdict per payee (concord.compliance.eligibility).
CREATE TABLE payees (
    payee_id            text PRIMARY KEY,
    eligible            boolean NOT NULL,
    reasons             text[] NOT NULL DEFAULT '{}',
    profile_version     integer,
    evaluated_at        timestamptz NOT NULL,
    payout_account_ref  text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The stale-PO check (gate 3): version in force, open/closed, effective dates.
-- version_in_force is NULL when only the PO's closure has been heard so far.
CREATE TABLE purchase_orders (
    po_number         text PRIMARY KEY,
    version_in_force  integer,
    effective_from    date,
    effective_to      date,
    closed            boolean NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Matching's latest decision per invoice. The approval's facts are NULL for an invoice that
-- has only ever been held.
CREATE TABLE invoices (
    invoice_id      text PRIMARY KEY,
    payee_id        text NOT NULL,
    approved        boolean NOT NULL,
    superseded      boolean NOT NULL DEFAULT false,
    legal_entity    text,
    business_unit   text,
    currency        text,
    document_type   text CHECK (document_type IN ('invoice', 'credit_note')),
    issue_date      date,
    payable_amount  numeric,
    po_number       text,
    po_version      integer,
    decision_id     text,
    decided_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Funding never overdrawn (gate 4), enforced here and not only in code: every reservation is
-- a conditional UPDATE of this row and the CHECK refuses anything that would go below zero,
-- whichever instance or run tries it.
--   received: Σ funding.received; reserved: released payouts not yet settled/failed;
--   consumed: settled payouts (money left for good; a return gives it back).
CREATE TABLE funding_accounts (
    account_id    text PRIMARY KEY,
    legal_entity  text NOT NULL,
    currency      text NOT NULL,
    received      numeric NOT NULL DEFAULT 0 CHECK (received >= 0),
    reserved      numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    consumed      numeric NOT NULL DEFAULT 0 CHECK (consumed >= 0),
    CONSTRAINT funding_never_overdrawn CHECK (received - reserved - consumed >= 0)
);
CREATE INDEX funding_accounts_by_entity ON funding_accounts (legal_entity, currency);

-- One row per funding.received: the funding_id is the upstream's own dedupe key.
CREATE TABLE funding_receipts (
    funding_id   text PRIMARY KEY,
    account_id   text NOT NULL REFERENCES funding_accounts (account_id),
    amount       numeric NOT NULL,
    received_at  timestamptz NOT NULL,
    event_id     text NOT NULL
);

-- A run_id is executed once: a redelivered command or a restarted scheduled slot finds its
-- row and releases nothing more.
CREATE TABLE payout_runs (
    run_id          text PRIMARY KEY,
    trigger         text NOT NULL CHECK (trigger IN ('schedule', 'command')),
    requested_by    text,
    legal_entity    text,
    currency        text,
    executed_at     timestamptz NOT NULL,
    released_count  integer NOT NULL DEFAULT 0,
    blocked_count   integer NOT NULL DEFAULT 0
);

CREATE TABLE payouts (
    payout_id           text PRIMARY KEY,
    run_id              text NOT NULL REFERENCES payout_runs (run_id),
    payee_id            text NOT NULL,
    payout_account_ref  text,
    legal_entity        text NOT NULL,
    currency            text NOT NULL,
    funding_account_id  text NOT NULL REFERENCES funding_accounts (account_id),
    amount              numeric NOT NULL CHECK (amount > 0),
    status              text NOT NULL CHECK (status IN ('released', 'settled', 'failed', 'returned')),
    released_at         timestamptz NOT NULL,
    status_at           timestamptz NOT NULL
);
CREATE INDEX payouts_by_payee ON payouts (payee_id);

-- Which invoices a payout pays. "Released at most once" (gate 6) is one live payout attempt
-- per invoice at a time: a failed or returned payout's rows stop being live and the invoice
-- may be paid again by a later run, under a new payout_id.
CREATE TABLE payout_invoices (
    payout_id   text NOT NULL REFERENCES payouts (payout_id),
    invoice_id  text NOT NULL,
    amount      numeric NOT NULL,
    live        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (payout_id, invoice_id)
);
CREATE UNIQUE INDEX one_live_payout_per_invoice ON payout_invoices (invoice_id) WHERE live;

-- Why each candidate of each run was not paid ("why wasn't this paid" always has an answer).
CREATE TABLE payout_blocks (
    run_id      text NOT NULL REFERENCES payout_runs (run_id),
    invoice_id  text NOT NULL,
    payee_id    text NOT NULL,
    reasons     text[] NOT NULL,
    PRIMARY KEY (run_id, invoice_id)
);

-- Every rail response, deduped by the rail's own id as well as by the inbox's event_id
-- (rails replay with new envelopes). Unknown payouts are kept too, for treasury.
CREATE TABLE rail_events (
    rail_event_id  text PRIMARY KEY,
    payout_id      text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('settled', 'failed', 'returned')),
    event_id       text NOT NULL,
    result         text NOT NULL,
    data           jsonb NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rail_events_by_payout ON rail_events (payout_id);
