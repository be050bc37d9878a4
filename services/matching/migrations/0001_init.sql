-- Matching keeps, per PO, everything it needs to rematch from scratch (SPEC §6): the PO versions
-- in force, receipts, invoices, overrides; plus what it decided (holds, decisions) so a rematch
-- publishes only changes.

-- Every version that came into force; the highest one is matched against.
CREATE TABLE po_versions (
    po_number       text NOT NULL,
    version         integer NOT NULL,
    state           jsonb NOT NULL,          -- the PurchaseOrderState contract, as received
    in_force_since  timestamptz NOT NULL,
    event_id        text NOT NULL,
    PRIMARY KEY (po_number, version)
);

-- "No further invoices match" (SPEC §3): invoices accepted after closed_after_seq are held.
CREATE TABLE po_closures (
    po_number         text PRIMARY KEY,
    closed_by         text NOT NULL,
    reason            text NOT NULL,
    closed_after_seq  bigint NOT NULL,
    closed_at         timestamptz NOT NULL,
    event_id          text NOT NULL
);

-- Only to name the PO's requester as owner of fulfilment holds.
CREATE TABLE requisitions (
    requisition_id  text PRIMARY KEY,
    requested_by    text NOT NULL
);

-- A reversal may be seen before its receipt: then the row starts as a tombstone (lines NULL).
CREATE TABLE receipts (
    receipt_id         text PRIMARY KEY,
    po_number          text NOT NULL,
    kind               text,
    received_at        timestamptz,
    lines              jsonb,
    event_id           text,
    reversed_at        timestamptz,
    reversed_by        text,
    reversal_reason    text,
    reversal_event_id  text
);
CREATE INDEX receipts_po ON receipts (po_number);

-- seq is the acceptance order: who consumes ordered/received quantity first. Invoices of one
-- PO arrive in order on one partition, so seq order does not depend on other documents' timing.
-- match_group is the po_number, or 'invoice:<id>' for a no-PO invoice.
CREATE TABLE invoices (
    invoice_id            text PRIMARY KEY,
    seq                   bigserial NOT NULL UNIQUE,
    match_group           text NOT NULL,
    po_number             text,
    replaces_invoice_id   text,
    document              jsonb NOT NULL,    -- the InvoiceAccepted contract, as received
    accepted_at           timestamptz NOT NULL,
    event_id              text NOT NULL,
    status                text NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'approved', 'held', 'superseded')),
    decision_seq          integer NOT NULL DEFAULT 0,
    decision_fingerprint  text NOT NULL DEFAULT '',
    decided_at            timestamptz
);
CREATE INDEX invoices_group ON invoices (match_group, seq);
CREATE INDEX invoices_replaces ON invoices (replaces_invoice_id) WHERE replaces_invoice_id IS NOT NULL;

-- Each hold records the event that opened it and the event that released it (SPEC §6).
CREATE TABLE holds (
    hold_id             text PRIMARY KEY,
    invoice_id          text NOT NULL REFERENCES invoices (invoice_id),
    match_group         text NOT NULL,
    po_number           text,
    line_id             text,
    reason              text NOT NULL,
    queue               text NOT NULL,
    action              text NOT NULL,
    owner               text NOT NULL,
    opened_at           timestamptz NOT NULL,
    due_by              timestamptz NOT NULL,
    evidence_required   jsonb NOT NULL,
    next_action         text NOT NULL,
    opened_by_event_id  text NOT NULL,
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'released')),
    released_at         timestamptz,
    released_by         text CHECK (released_by IN ('rematch', 'override', 'correction')),
    releasing_event_id  text,
    override_id         text,
    approved_by         text,
    escalated_at        timestamptz
);
-- One open hold per (invoice, reason, line): a rematch can never open the same hold twice.
CREATE UNIQUE INDEX holds_one_open ON holds (invoice_id, reason, coalesce(line_id, '')) WHERE status = 'open';
CREATE INDEX holds_group_open ON holds (match_group) WHERE status = 'open';
CREATE INDEX holds_to_escalate ON holds (due_by) WHERE status = 'open' AND escalated_at IS NULL;

-- Every override request and its outcome: who asked, who approved, why, on what evidence.
CREATE TABLE overrides (
    override_id      text PRIMARY KEY,
    invoice_id       text NOT NULL,
    status           text NOT NULL CHECK (status IN ('accepted', 'refused')),
    requested_by     text NOT NULL,
    approved_by      text NOT NULL,
    reason_code      text NOT NULL,
    justification    text NOT NULL,
    evidence         jsonb NOT NULL,
    hold_reasons     jsonb NOT NULL,          -- as requested: a list, or "all"
    scope            jsonb NOT NULL,          -- accepted: the [reason, line_id] pairs released
    refusal_reasons  jsonb NOT NULL DEFAULT '[]'::jsonb,
    ledger_ref       text,
    decided_at       timestamptz NOT NULL,
    event_id         text NOT NULL
);
CREATE INDEX overrides_invoice ON overrides (invoice_id);

-- Every decision published, numbered per invoice: decision_id and event_id derive from
-- (invoice_id, seq), so a redelivered trigger cannot publish two different decisions.
CREATE TABLE decisions (
    invoice_id      text NOT NULL,
    seq             integer NOT NULL,
    event_type      text NOT NULL,
    decision_id     text NOT NULL,
    event_id        text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    cause_event_id  text NOT NULL,
    decided_at      timestamptz NOT NULL,
    PRIMARY KEY (invoice_id, seq, event_type)
);
