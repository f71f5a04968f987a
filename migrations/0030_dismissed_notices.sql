-- Setup notices an admin has read and dismissed (`crate::web::notices`): a configuration
-- problem only an admin can fix (no hub configured) is shown to admins on every page until
-- each dismisses it, and never to counselors. One row per admin and notice.
CREATE TABLE dismissed_notices (
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    notice       TEXT NOT NULL CHECK (notice ~ '^[a-z][a-z0-9-]{0,63}$'),
    dismissed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, notice)
);
