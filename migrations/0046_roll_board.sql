-- The roll board and the spawn timeline (issue 18).

-- When the person last logged in to hubdesk (the board's "never logged in").
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMPTZ;

-- Every start of a student's notebook server as the board's sweep saw it: opened when the hub
-- first shows the server pending, closed ready or failed (with one plain reason). `steps` holds
-- the swarm task's states as they changed: [{"at", "phase", "node", "message", "error"}].
-- The sweep keeps the last 20 per student.
CREATE TABLE spawn_attempts (
    id         BIGSERIAL PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE ON UPDATE CASCADE,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ,
    outcome    TEXT NOT NULL CHECK (outcome IN ('starting', 'ready', 'failed')),
    reason     TEXT NOT NULL DEFAULT '',
    steps      JSONB NOT NULL DEFAULT '[]'::jsonb,
    CHECK ((outcome = 'starting') = (ended_at IS NULL))
);
CREATE INDEX spawn_attempts_user_idx ON spawn_attempts (username, started_at DESC);
-- At most one open attempt per student.
CREATE UNIQUE INDEX spawn_attempts_open_idx ON spawn_attempts (username) WHERE outcome = 'starting';
