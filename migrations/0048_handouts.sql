-- Hand-outs (issue 19): what each home got of a course folder handed out by a job. One row
-- per (job, student), written when that student's home is done; the student's page lists
-- them with the conflicts (the student's file kept, the course's written beside it).
CREATE TABLE handout_homes (
    job_id     UUID NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    folder     TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    written    BIGINT NOT NULL,
    unchanged  BIGINT NOT NULL,
    -- [{"path": "week1/notes.ipynb", "beside": "week1/notes (handout).ipynb"}, ...]
    conflicts  JSONB NOT NULL DEFAULT '[]',
    PRIMARY KEY (job_id, user_id)
);
CREATE INDEX handout_homes_user ON handout_homes (user_id, at DESC);
