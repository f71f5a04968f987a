-- One-time reset codes (issue 18): instead of a new printed card, a counselor gives a student
-- a short code with which the student sets their own password. One code per student (a new one
-- replaces it), valid 15 minutes, used once; stored as an argon2 hash like a password, and
-- checked through the same throttle as logins.
CREATE TABLE reset_codes (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
