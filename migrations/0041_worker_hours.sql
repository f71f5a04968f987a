-- The fleet's timeline for the cost ledger (issue 17): one row per worker hubdesk's cluster
-- ever had, from EC2's launch time to its end (the removal job's terminate call, or the first
-- look that finds it gone). EC2 forgets terminated instances within the hour; this does not.
CREATE TABLE worker_hours (
    instance_id   TEXT PRIMARY KEY,
    instance_type TEXT NOT NULL,
    hourly_cost   DOUBLE PRECISION NOT NULL CHECK (hourly_cost >= 0),
    launched_at   TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    CHECK (ended_at IS NULL OR ended_at >= launched_at)
);
CREATE INDEX worker_hours_span_idx ON worker_hours (launched_at, ended_at);
