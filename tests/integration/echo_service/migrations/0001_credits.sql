-- No uniqueness on funding_id on purpose: only the inbox stands between a redelivery and a second row.
CREATE TABLE credits (
    id          bigserial PRIMARY KEY,
    funding_id  text NOT NULL,
    account_id  text NOT NULL,
    amount      numeric NOT NULL,
    pid         integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
