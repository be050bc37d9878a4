-- Maker-checker override requests (SPEC §14.2): one person asks, another with the queue's role
-- approves or declines; only an approval sends hold.override_requested (override_id = request_id,
-- so a command sent twice is one override to matching). The console's own state: nothing here
-- is read by a service.
CREATE TABLE override_requests (
    request_id     text PRIMARY KEY,             -- also the command's override_id
    invoice_id     text NOT NULL,
    hold_reasons   text[] NOT NULL,
    queues         text[] NOT NULL,              -- of the named holds when requested
    reason_code    text NOT NULL,
    justification  text NOT NULL,
    evidence       text[] NOT NULL,
    requested_by   text NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'declined')),
    decided_by     text,
    decided_at     timestamptz,
    decline_note   text,
    sent_at        timestamptz,                  -- the signed command's broker ack
    CHECK (status = 'pending' OR decided_by IS NOT NULL),
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX override_requests_pending ON override_requests (requested_at) WHERE status = 'pending';
CREATE INDEX override_requests_invoice ON override_requests (invoice_id);
