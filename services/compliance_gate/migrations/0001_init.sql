-- compliance_gate: the latest profile of every payee and the eligibility last published for it.
-- Profiles are stored as the rules see them: no tax id (tin_last4), no VAT number, no names.

CREATE TABLE payees (
    payee_id         text PRIMARY KEY,
    profile_version  bigint NOT NULL,
    profile          jsonb NOT NULL,
    -- The outcome last published on concord.compliance.eligibility (or, for the first
    -- evaluation, the one just published): the sweep compares against it.
    eligible         boolean NOT NULL,
    reasons          text[] NOT NULL,
    evaluated_at     timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Ops' question "who is blocked, and why" without a full scan.
CREATE INDEX payees_ineligible ON payees (payee_id) WHERE NOT eligible;

-- Every applied profile version, for "what did we know about this payee, and when".
CREATE TABLE payee_profile_versions (
    payee_id         text NOT NULL,
    profile_version  bigint NOT NULL,
    profile          jsonb NOT NULL,
    event_id         text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payee_id, profile_version)
);
