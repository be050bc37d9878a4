-- Every service's database carries the idempotent-consumer inbox and the transactional outbox (SPEC §1 rules 1–2).

CREATE TABLE inbox (
    event_id      text PRIMARY KEY,
    event_type    text NOT NULL,
    topic         text NOT NULL,
    partition     integer NOT NULL,
    "offset"      bigint NOT NULL,
    business_ref  text,
    result        text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
);
-- Pruning walks this index; rows are kept far longer than any producer retry window.
CREATE INDEX inbox_processed_at ON inbox (processed_at);

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      text NOT NULL UNIQUE,
    event_type    text NOT NULL,
    topic         text NOT NULL,
    key           text NOT NULL,
    value         bytea NOT NULL,
    headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
-- The relay only ever looks at what is still unpublished.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
