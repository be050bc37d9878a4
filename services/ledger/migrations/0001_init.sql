-- Ledger: the append-only double-entry journal (SPEC §9) and a projection of the documents
-- behind it, so trace and reconciliation are answered from the ledger's own database.

-- === Journal ============================================================================

CREATE TABLE journal_entries (
    entry_id           text PRIMARY KEY,
    -- One source event posts at most once (SPEC §9) ...
    source_event_id    text NOT NULL UNIQUE,
    source_event_type  text NOT NULL,
    -- ... and one business fact (receipt R1, decision D7, rail event E3) too, even if it were
    -- re-published under a new event id.
    fact_key           text NOT NULL UNIQUE,
    kind               text NOT NULL,
    description        text NOT NULL,
    posted_at          timestamptz NOT NULL,
    links              jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Denormalised links, for trace and reconciliation lookups.
    po_number          text,
    payout_id          text,
    invoice_ids        text[] NOT NULL DEFAULT '{}',
    receipt_ids        text[] NOT NULL DEFAULT '{}',
    -- A reversal (receipt reversed, approval revoked or replaced) names what it reverses; an
    -- entry is reversed at most once.
    reverses_entry_id  text UNIQUE REFERENCES journal_entries (entry_id)
);
CREATE INDEX journal_entries_po ON journal_entries (po_number);
CREATE INDEX journal_entries_payout ON journal_entries (payout_id);
CREATE INDEX journal_entries_invoices ON journal_entries USING gin (invoice_ids);
CREATE INDEX journal_entries_receipts ON journal_entries USING gin (receipt_ids);

CREATE TABLE journal_lines (
    entry_id   text NOT NULL REFERENCES journal_entries (entry_id),
    line_no    integer NOT NULL,
    account    text NOT NULL,
    currency   char(3) NOT NULL,
    debit      numeric NOT NULL DEFAULT 0 CHECK (debit >= 0),
    credit     numeric NOT NULL DEFAULT 0 CHECK (credit >= 0),
    PRIMARY KEY (entry_id, line_no),
    CHECK ((debit > 0) <> (credit > 0))
);
CREATE INDEX journal_lines_account ON journal_lines (account, currency);

-- Append-only, enforced here for every role: history is corrected by a reversing entry, never
-- by editing. (A superuser could drop the trigger; that is an audited DDL change, not an edit.)
CREATE FUNCTION journal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_refuse_change();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse_change();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION journal_refuse_change();
CREATE TRIGGER journal_lines_no_truncate BEFORE TRUNCATE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse_change();

-- Every entry balances per currency, checked at commit (the domain checks it first; this is
-- the last line of defence against a bug in a store function).
CREATE FUNCTION journal_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    SELECT currency, sum(debit) - sum(credit) AS net INTO off
      FROM journal_lines WHERE entry_id = NEW.entry_id
     GROUP BY currency HAVING sum(debit) <> sum(credit) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: %', NEW.entry_id, off.currency, off.net;
    END IF;
    IF (SELECT count(*) FROM journal_lines WHERE entry_id = NEW.entry_id) < 2 THEN
        RAISE EXCEPTION 'journal entry % has fewer than two lines', NEW.entry_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_check_balanced();

-- === Documents projection (for trace and reconciliation) =================================

CREATE TABLE requisitions (
    requisition_id  text PRIMARY KEY,
    legal_entity    text,
    business_unit   text,
    currency        text,
    amount          numeric,
    requested_by    text,
    approved_by     text,
    approved_at     timestamptz,
    closed_by       text,
    closed_reason   text,
    closed_at       timestamptz
);

CREATE TABLE po_versions (
    po_number       text NOT NULL,
    version         integer NOT NULL,
    legal_entity    text NOT NULL,
    business_unit   text NOT NULL,
    payee_id        text NOT NULL,
    currency        text NOT NULL,
    requisition_id  text,
    created_by      text NOT NULL,
    approved_by     text NOT NULL,
    approved_at     timestamptz NOT NULL,
    amended_by      text,
    modification_id text,
    reason          text,
    changes         jsonb NOT NULL DEFAULT '[]'::jsonb,
    in_force_since  timestamptz NOT NULL,
    state           jsonb NOT NULL,
    PRIMARY KEY (po_number, version)
);
CREATE INDEX po_versions_requisition ON po_versions (requisition_id);

CREATE TABLE po_amendments_pending (
    po_number       text NOT NULL,
    version         integer NOT NULL,
    modification_id text,
    amended_by      text NOT NULL,
    reason          text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (po_number, version)
);

CREATE TABLE po_closures (
    po_number  text PRIMARY KEY,
    closed_by  text NOT NULL,
    reason     text NOT NULL,
    closed_at  timestamptz NOT NULL
);

-- status: pending (PO not seen yet) | posted | no_value | reversed | dropped
CREATE TABLE receipts (
    receipt_id        text PRIMARY KEY,
    po_number         text NOT NULL,
    kind              text,
    received_at       timestamptz,
    recorded_by       text,
    lines             jsonb,
    source_event_id   text,
    source_event_type text,
    status            text NOT NULL,
    entry_id          text,
    reversed_by       text,
    reversal_reason   text,
    reversed_at       timestamptz
);
CREATE INDEX receipts_po ON receipts (po_number);

CREATE TABLE invoices (
    invoice_id               text PRIMARY KEY,
    supplier_invoice_number  text NOT NULL,
    payee_id                 text NOT NULL,
    legal_entity             text NOT NULL,
    document_type            text NOT NULL,
    issue_date               date NOT NULL,
    currency                 text NOT NULL,
    po_number                text,
    business_unit            text,
    total_amount             numeric NOT NULL,
    payable_amount           numeric NOT NULL,
    origin                   text NOT NULL,
    accepted_at              timestamptz NOT NULL,
    document                 jsonb NOT NULL
);
CREATE INDEX invoices_po ON invoices (po_number);

-- Every matching decision, in arrival order (one partition per invoice keeps them ordered).
-- kind: approved_to_pay | approval_revoked | held | superseded
CREATE TABLE decisions (
    seq              bigserial PRIMARY KEY,
    source_event_id  text NOT NULL UNIQUE,
    invoice_id       text NOT NULL,
    kind             text NOT NULL,
    decision_id      text,
    po_number        text,
    po_version       integer,
    payee_id         text,
    currency         text,
    payable_amount   numeric,
    document_type    text,
    decided_at       timestamptz,
    payload          jsonb NOT NULL
);
CREATE INDEX decisions_invoice ON decisions (invoice_id, seq);

CREATE TABLE payouts (
    payout_id           text PRIMARY KEY,
    run_id              text NOT NULL,
    payee_id            text NOT NULL,
    legal_entity        text NOT NULL,
    funding_account_id  text NOT NULL,
    currency            text NOT NULL,
    amount              numeric NOT NULL,
    invoices            jsonb NOT NULL,
    invoice_ids         text[] NOT NULL,
    released_at         timestamptz NOT NULL
);
CREATE INDEX payouts_invoices ON payouts USING gin (invoice_ids);

-- outcome: settled | failed | returned
CREATE TABLE payout_outcomes (
    rail_event_id       text PRIMARY KEY,
    payout_id           text NOT NULL,
    outcome             text NOT NULL,
    payee_id            text NOT NULL,
    funding_account_id  text NOT NULL,
    currency            text NOT NULL,
    amount              numeric NOT NULL,
    invoice_ids         text[] NOT NULL,
    at                  timestamptz NOT NULL,
    failure_code        text,
    reason              text
);
CREATE INDEX payout_outcomes_payout ON payout_outcomes (payout_id);

CREATE TABLE funding_receipts (
    funding_id    text PRIMARY KEY,
    account_id    text NOT NULL,
    legal_entity  text NOT NULL,
    currency      text NOT NULL,
    amount        numeric NOT NULL,
    received_at   timestamptz NOT NULL
);

-- The latest eligibility per payee (country and the 1099-NEC tag feed the tax report).
CREATE TABLE payee_eligibility (
    payee_id             text PRIMARY KEY,
    eligible             boolean NOT NULL,
    reasons              jsonb NOT NULL,
    profile_version      integer,
    evaluated_at         timestamptz NOT NULL,
    country              text,
    entity_type          text,
    reportable_1099_nec  boolean NOT NULL
);
