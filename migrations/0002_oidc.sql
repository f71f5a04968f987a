-- OpenID Connect provider: signing keys, authorization codes, grants and tokens.

-- ES256 signing keys (PKCS#8 DER). The newest signs; all are published in JWKS.
CREATE TABLE oidc_keys (
    kid         TEXT PRIMARY KEY,
    private_der BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One authorization of a client by a user; every token hangs off a grant, so revoking the
-- grant revokes them all (reused code, replayed refresh token, disable, reset, logout).
CREATE TABLE oauth_grants (
    id          UUID PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope       TEXT NOT NULL,
    nonce       TEXT,
    auth_time   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX oauth_grants_user_idx ON oauth_grants (user_id);

CREATE TABLE oauth_codes (
    code_hash       BYTEA PRIMARY KEY,
    grant_id        UUID NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    client_id       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT,
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ
);

CREATE INDEX oauth_codes_grant_idx ON oauth_codes (grant_id);

CREATE TABLE oauth_tokens (
    token_hash  BYTEA PRIMARY KEY,
    grant_id    UUID NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    expires_at  TIMESTAMPTZ NOT NULL,
    -- A refresh token is used once; presenting it again is a replay.
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX oauth_tokens_grant_idx ON oauth_tokens (grant_id);
