-- Bulk password resets (`roster.reset_passwords` jobs) and their login cards.
--
-- A batch is one confirmed reset: its job, the confirmation form's id (a second submission of
-- the same form finds this row instead of resetting again), and the public key the new
-- passwords are sealed to. The private key lives only in the asking browser (a cookie), so
-- nothing here opens them. Batches are kept (the form id must stay spent); their secrets are
-- deleted when the window ends.
CREATE TABLE card_batches (
    job_id      UUID PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    form_id     UUID NOT NULL UNIQUE,
    sealing_key BYTEA NOT NULL,
    students    INTEGER NOT NULL CHECK (students > 0),
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One sealed password per student of a batch; the primary key is what makes a resumed or
-- duplicated run of the job reset each student at most once.
CREATE TABLE card_secrets (
    job_id   UUID NOT NULL REFERENCES card_batches(job_id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    sealed   BYTEA NOT NULL,
    PRIMARY KEY (job_id, user_id)
);

CREATE INDEX card_batches_expires ON card_batches (expires_at);
