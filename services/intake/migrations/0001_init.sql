-- Intake's own state (SPEC §5): requisitions, every PO version with its history, receipts,
-- accepted invoices and the duplicate-number registry.

CREATE TABLE requisitions (
    requisition_id      text PRIMARY KEY,
    legal_entity        text,
    business_unit       text,
    requested_by        text,
    approved_by         text,
    amount              numeric,
    currency            text,
    approved_at         timestamptz,
    content_hash        text,
    -- set by a PO naming the requisition (may arrive before the approval: other topic)
    converted_po_number text,
    converted_at        timestamptz,
    closed_by           text,
    closed_reason       text,
    closed_at           timestamptz
);
-- The reconciliation report lists approved requisitions neither converted nor closed by age.
CREATE INDEX requisitions_open ON requisitions (approved_at)
    WHERE converted_po_number IS NULL AND closed_at IS NULL;

CREATE TABLE purchase_orders (
    po_number         text PRIMARY KEY,
    in_force_version  integer,
    closed_by         text,
    closed_reason     text,
    closed_at         timestamptz
);

-- Every version ever received, in force or not: who, when, what changed, why (SPEC §5).
CREATE TABLE po_versions (
    po_number         text NOT NULL,
    version           integer NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('issued', 'amended')),
    status            text NOT NULL CHECK (status IN ('pending', 'approved', 'in_force', 'superseded')),
    state             jsonb NOT NULL,
    content_hash      text NOT NULL,
    created_by        text NOT NULL,
    amended_by        text,
    modification_id   text,
    reason            text,
    approved_by       text,
    approved_at       timestamptz,
    received_at       timestamptz NOT NULL,
    source_event_id   text NOT NULL,
    previous_version  integer,
    changes           jsonb,
    previous_sow_ref  jsonb,
    in_force_since    timestamptz,
    superseded_at     timestamptz,
    PRIMARY KEY (po_number, version)
);

-- An amendment_approved that arrived before its amendment waits here (never lost).
CREATE TABLE po_early_approvals (
    po_number        text NOT NULL,
    version          integer NOT NULL,
    approved_by      text NOT NULL,
    approved_at      timestamptz NOT NULL,
    source_event_id  text NOT NULL,
    PRIMARY KEY (po_number, version, approved_by)
);

CREATE TABLE receipts (
    receipt_id     text PRIMARY KEY,
    po_number      text NOT NULL,
    kind           text NOT NULL,
    received_at    timestamptz NOT NULL,
    lines          jsonb NOT NULL,
    content_hash   text NOT NULL,
    reversed_by    text,
    reversal_reason text,
    reversed_at    timestamptz
);

CREATE TABLE invoices (
    invoice_id               text PRIMARY KEY,
    payee_id                 text NOT NULL,
    legal_entity             text NOT NULL,
    document_type            text NOT NULL,
    supplier_invoice_number  text NOT NULL,
    normalised_number        text NOT NULL,
    currency                 text NOT NULL,
    issue_date               date NOT NULL,
    total_amount             numeric NOT NULL,
    payable_amount           numeric NOT NULL,
    po_number                text,
    lines                    jsonb NOT NULL,
    origin                   text NOT NULL,
    -- one flip_id creates at most one invoice, ever (SPEC §5)
    flip_id                  text UNIQUE,
    replaces_invoice_id      text,
    superseded_by            text,
    content_hash             text NOT NULL,
    accepted_at              timestamptz NOT NULL
);
-- Suspected duplicates: same payee + currency + total + issue date (SPEC §5).
CREATE INDEX invoices_suspected ON invoices (payee_id, currency, total_amount, issue_date);
CREATE INDEX invoices_po ON invoices (po_number) WHERE po_number IS NOT NULL;

-- Exact duplicates, race-free across consumer instances: the constraint decides, not a SELECT.
CREATE TABLE invoice_numbers (
    payee_id           text NOT NULL,
    normalised_number  text NOT NULL,
    document_type      text NOT NULL,
    invoice_id         text NOT NULL REFERENCES invoices (invoice_id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (payee_id, normalised_number, document_type)
);
