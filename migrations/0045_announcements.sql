-- Announcements (issue 18): a counselor's message to one cohort's students or to everyone, shown
-- from `starts_at` to `ends_at` on hubdesk's pages and on the hub's (the shipped hub config reads
-- `/oauth/announcements`); each person can dismiss one for themselves.
CREATE TABLE announcements (
    id         BIGSERIAL PRIMARY KEY,
    message    TEXT NOT NULL CHECK (length(message) BETWEEN 1 AND 500),
    -- NULL: everyone (staff included); else the cohort's students.
    cohort     TEXT,
    starts_at  TIMESTAMPTZ NOT NULL,
    ends_at    TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX announcements_ends_idx ON announcements (ends_at);

CREATE TABLE announcement_dismissals (
    announcement_id BIGINT NOT NULL REFERENCES announcements (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (announcement_id, user_id)
);
