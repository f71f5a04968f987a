-- Durable jobs (`crate::jobs`): a row is enqueued in the same transaction as the change that
-- asks for it, claimed by one runner under a lease, and resumed from its recorded steps when
-- the runner holding the lease dies. 0001's placeholder `jobs` table was never read or written.
DROP TABLE IF EXISTS jobs;

CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind <> ''),
    payload      JSONB NOT NULL DEFAULT '{}',
    state        TEXT NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    -- Completed steps in order, each {"name": …, "at": RFC 3339 UTC}.
    steps        JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(steps) = 'array'),
    result       JSONB,
    -- The last failure; cleared when the job succeeds.
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    actor        TEXT NOT NULL,
    run_after    TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner  TEXT,
    lease_until  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    -- A lease exactly while running, a finish time exactly when finished: a write that forgets
    -- one half fails instead of leaving a job no runner will ever pick up again.
    CONSTRAINT jobs_lease_iff_running
        CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_until IS NOT NULL)),
    CONSTRAINT jobs_finished_iff_final
        CHECK ((state IN ('succeeded', 'failed')) = (finished_at IS NOT NULL))
);

-- The claim's two halves: due queued jobs in arrival order, and running jobs whose lease ran out.
CREATE INDEX jobs_queued ON jobs (created_at) WHERE state = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_until) WHERE state = 'running';
-- Counts per kind and state (metrics, "n resets running").
CREATE INDEX jobs_kind_state ON jobs (kind, state);
-- The list page, newest first.
CREATE INDEX jobs_created ON jobs (created_at DESC);
