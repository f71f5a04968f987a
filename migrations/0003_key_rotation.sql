-- Signing-key rotation (`hubdesk oidc rotate-key`): the one key that is not retired signs;
-- a retired key stays published in JWKS for a day so tokens it signed still verify, then it is
-- deleted.
ALTER TABLE oidc_keys ADD COLUMN retired_at TIMESTAMPTZ;
-- Exactly one current key, even when two instances start on a fresh database at once.
UPDATE oidc_keys SET retired_at = now()
 WHERE kid <> (SELECT kid FROM oidc_keys ORDER BY created_at DESC, kid LIMIT 1);
CREATE UNIQUE INDEX oidc_keys_one_current ON oidc_keys ((true)) WHERE retired_at IS NULL;
