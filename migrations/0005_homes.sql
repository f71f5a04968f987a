-- Homes (`crate::homes`): a journal of every multi-step operation on a home directory, and the
-- metadata of the archives those operations make.
--
-- A row in home_ops is written BEFORE the filesystem is touched and updated after each step, so
-- a crash (kill -9, power loss) at any step leaves a 'running' row that `Homes::recover` (at
-- start, or the next operation on that home) finishes or rolls back from `paths` and the state
-- it finds on disk. Mutual exclusion itself is a PostgreSQL advisory lock per username held by
-- the operation's connection (released by the server when the process dies); the unique index
-- below is the second fence.
CREATE TABLE home_ops (
    id          UUID PRIMARY KEY,
    username    TEXT NOT NULL CHECK (username ~ '^[a-z][a-z0-9-]{0,31}$'),
    kind        TEXT NOT NULL CHECK (kind IN ('create', 'reset', 'reset_environment', 'restore',
                                              'restore_environment', 'purge')),
    state       TEXT NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'done', 'rolled_back', 'failed')),
    -- Steps completed, in order: ["prepared", "archived", "installed"].
    steps       JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(steps) = 'array'),
    -- The plan: every path the operation creates, moves or removes, relative to the homes root
    -- or the archive (e.g. {"op": "reset", "temp": ".hubdesk-tmp-…", "archive": "2025…Z-reset"}).
    paths       JSONB NOT NULL CHECK (jsonb_typeof(paths) = 'object'),
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    -- The job that ran this operation (homes.reset, …): a resumed job finds its finished op.
    job_id      UUID,
    -- What the operation returned (e.g. the archive id), for a resumed job.
    result      JSONB,
    -- The last error; an op whose recovery failed stays 'running' with it until fixed.
    error       TEXT,
    -- 'done' or 'rolled_back' set by recovery after a crash rather than by the op itself.
    recovered   BOOLEAN NOT NULL DEFAULT false,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    CONSTRAINT home_ops_finished_iff_final CHECK ((state = 'running') = (finished_at IS NULL))
);

-- At most one unfinished operation per home.
CREATE UNIQUE INDEX home_ops_one_running ON home_ops (username) WHERE state = 'running';
CREATE INDEX home_ops_job ON home_ops (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX home_ops_user ON home_ops (username, started_at DESC);

-- One row per archive entry <archive>/<username>/<id>: who made it, why, when. The directory
-- name repeats the time and reason, but the truth is here. Rows stay after the entry leaves the
-- archive (restored into place, or purged) with gone_at set, so ids are never reused.
CREATE TABLE home_archives (
    username    TEXT NOT NULL CHECK (username ~ '^[a-z][a-z0-9-]{0,31}$'),
    id          TEXT NOT NULL CHECK (id ~ '^[0-9]{8}T[0-9]{6}Z-[a-z0-9-]{1,64}$'),
    -- 'all': a whole home; 'environment': only its environment (.local, .jupyter, …).
    scope       TEXT NOT NULL CHECK (scope IN ('all', 'environment')),
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    op_id       UUID NOT NULL REFERENCES home_ops (id),
    created_at  TIMESTAMPTZ NOT NULL,
    -- Allocated bytes, measured once (an archive never changes while it is one).
    bytes       BIGINT CHECK (bytes >= 0),
    gone_at     TIMESTAMPTZ,
    gone_reason TEXT CHECK (gone_reason IN ('restored', 'purged')),
    PRIMARY KEY (username, id),
    CONSTRAINT home_archives_gone CHECK ((gone_at IS NULL) = (gone_reason IS NULL))
);

CREATE INDEX home_archives_live ON home_archives (created_at) WHERE gone_at IS NULL;
