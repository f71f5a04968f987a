-- RS256 beside ES256 (OpenID Connect Core §15.1: RS256 MUST be supported). Each algorithm has
-- its own current key; `hubdesk oidc rotate-key` rotates both with the same publish-before-sign
-- rule.
ALTER TABLE oidc_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'ES256' CHECK (alg IN ('ES256', 'RS256'));
DROP INDEX oidc_keys_one_current;
CREATE UNIQUE INDEX oidc_keys_one_current ON oidc_keys (alg) WHERE retired_at IS NULL;
