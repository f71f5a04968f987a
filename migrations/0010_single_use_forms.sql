-- Single-use forms (`crate::web::once`): the first submission of a form id does the work and
-- records here where its result is; any later submission of the same id (Back + resubmit,
-- reload, a double click, a second tab) changes nothing and is sent there. A row is written in
-- the same transaction that held the form's advisory lock while the work ran, so it exists
-- only for work that was done. Swept after a day.
CREATE TABLE spent_forms (
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    form_id    UUID NOT NULL,
    -- Where the first submission sent the browser (a GET page).
    result_url TEXT NOT NULL,
    -- What it did, for its result page (names and usernames; never a password).
    result     JSONB,
    -- Passwords to show once, sealed (ChaCha20-Poly1305) under a key derived from the browser's
    -- session cookie, which the database holds only as a SHA-256: a dump of this table opens
    -- nothing. Taken (set NULL) by the first view of the result page; swept after minutes.
    sealed     BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, form_id)
);
CREATE INDEX spent_forms_created_idx ON spent_forms (created_at);

-- The class import's submissions, so its preview is a GET page (`/students/import/{id}`): the
-- text as decoded (an Excel sheet already turned into CSV) and how it was read. The preview's
-- confirmation is the single-use form with the draft's id. Swept after a day.
CREATE TABLE import_drafts (
    id         UUID PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    body       TEXT NOT NULL,
    -- "UTF-8", "Windows-1252 (Excel's CSV)", "Excel workbook, sheet 'Class'" …
    read_as    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX import_drafts_created_idx ON import_drafts (created_at);

-- The JSON API's `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): per API token
-- (its SHA-256, as api_tokens stores it), the request's fingerprint (method, path, body) and
-- the first response, replayed for a retry with the same key and body. The response body is
-- sealed under a key derived from the API token itself (it may hold a new password). Kept a day.
CREATE TABLE idempotency_keys (
    token_hash  BYTEA NOT NULL,
    key         TEXT NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    fingerprint BYTEA NOT NULL,
    status      SMALLINT NOT NULL,
    sealed_body BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (token_hash, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
