-- The camp calendar (issue 17). A cohort's name is what users.cohort holds; a cohort that has
-- students but no row here has no timetable yet and the profile defaults. Wall-clock times are
-- stored as the counselor wrote them (TIME/DATE in the cohort's zone) and made instants per
-- day, so a block stays at 09:00 local across a daylight-saving change.
CREATE TABLE cohorts (
    name                 TEXT PRIMARY KEY CHECK (char_length(name) BETWEEN 1 AND 64),
    slug                 TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    timezone             TEXT NOT NULL CHECK (char_length(timezone) BETWEEN 1 AND 64),
    first_day            DATE,
    last_day             DATE,
    -- The profile each notebook of the cohort gets.
    memory_guarantee_mib INTEGER NOT NULL CHECK (memory_guarantee_mib BETWEEN 64 AND 1048576),
    memory_limit_mib     INTEGER NOT NULL CHECK (memory_limit_mib BETWEEN 64 AND 1048576),
    cpu_limit_millis     INTEGER NOT NULL CHECK (cpu_limit_millis BETWEEN 100 AND 256000),
    idle_timeout_mins    INTEGER NOT NULL CHECK (idle_timeout_mins BETWEEN 5 AND 10080),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (memory_limit_mib >= memory_guarantee_mib),
    CHECK (first_day IS NULL OR last_day IS NULL OR last_day >= first_day)
);

-- Class blocks: weekly (days is a Monday-first bit set) or once (on_date).
CREATE TABLE cohort_blocks (
    id         BIGSERIAL PRIMARY KEY,
    cohort     TEXT NOT NULL REFERENCES cohorts(name) ON DELETE CASCADE,
    days       SMALLINT CHECK (days BETWEEN 1 AND 127),
    on_date    DATE,
    starts     TIME NOT NULL,
    ends       TIME NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((days IS NULL) <> (on_date IS NULL)),
    CHECK (ends > starts)
);
CREATE INDEX cohort_blocks_cohort_idx ON cohort_blocks (cohort);

-- What the calendar decided about each planned action (`calendar::planner::Planned::key`):
-- the row is written in the transaction that queues the action's jobs, so after a crash or a
-- restart an action is either done (its row and jobs exist) or not (neither): never twice.
CREATE TABLE calendar_actions (
    key        TEXT PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('grow', 'warm', 'stop-idle', 'shrink')),
    cohort     TEXT,
    workers    INTEGER,
    -- done: its jobs are queued (job_ids, maybe none: nothing to do); missed: hubdesk was not
    -- running then; paused: the calendar was paused; skipped: nothing could be done (why in
    -- detail).
    outcome    TEXT NOT NULL CHECK (outcome IN ('done', 'missed', 'paused', 'skipped')),
    detail     TEXT NOT NULL DEFAULT '',
    job_ids    UUID[] NOT NULL DEFAULT '{}',
    decided_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX calendar_actions_at_idx ON calendar_actions (at);

-- The admins' switch, and the secret in the iCalendar feed's URL (read-only class times, so
-- kept as it is shown): one row.
CREATE TABLE calendar_state (
    id         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    paused     BOOLEAN NOT NULL DEFAULT FALSE,
    changed_by TEXT,
    changed_at TIMESTAMPTZ,
    feed_token TEXT NOT NULL
        DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
);
INSERT INTO calendar_state (id) VALUES (TRUE);
