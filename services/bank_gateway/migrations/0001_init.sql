-- bank_gateway (SPEC §12.4). No bank details here: only account tokens and the identifiers we send.

-- Every payout received, and the file it went into (NULL until a cut-off records it).
CREATE TABLE payouts (
    payout_id          text PRIMARY KEY,
    end_to_end_id      text NOT NULL UNIQUE,
    uetr               text NOT NULL UNIQUE,
    payee_id           text NOT NULL,
    account_ref        text,
    funding_account_id text NOT NULL,
    currency           text NOT NULL,
    amount             numeric NOT NULL,
    invoice_ids        text[] NOT NULL,
    received_event_id  text NOT NULL,
    received_at        timestamptz NOT NULL,
    state              text NOT NULL,  -- pending | filed | failed
    file_msg_id        text,
    pmt_inf_id         text
);
CREATE INDEX payouts_pending ON payouts (received_at) WHERE state = 'pending';
CREATE INDEX payouts_file ON payouts (file_msg_id);

CREATE SEQUENCE file_seq;

-- One row per pain.001 file, recorded at the cut-off before it is written (written_at then).
CREATE TABLE files_out (
    msg_id      text PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    file_name   text NOT NULL,
    nb_of_txs   integer NOT NULL,
    ctrl_sum    numeric NOT NULL,
    written_at  timestamptz
);
CREATE INDEX files_out_unwritten ON files_out (created_at) WHERE written_at IS NULL;

-- Every file read from the inbox, by content hash; moved to processed/ or rejected/ after commit.
CREATE TABLE files_in (
    sha256     text PRIMARY KEY,
    file_name  text NOT NULL,
    kind       text,
    msg_id     text,
    outcome    text NOT NULL,  -- processed | rejected
    reasons    text NOT NULL DEFAULT '',
    read_at    timestamptz NOT NULL,
    moved_at   timestamptz
);
CREATE UNIQUE INDEX files_in_msg_id ON files_in (kind, msg_id) WHERE outcome = 'processed';

-- What each processed file said about each payout, published or only recorded (ACCP, ACSP, …).
CREATE TABLE statuses (
    rail_event_id text PRIMARY KEY,
    payout_id     text NOT NULL REFERENCES payouts (payout_id),
    file_sha256   text NOT NULL REFERENCES files_in (sha256),
    outcome       text NOT NULL,
    status        text NOT NULL,
    code          text,
    read_at       timestamptz NOT NULL
);
CREATE INDEX statuses_payout ON statuses (payout_id);
