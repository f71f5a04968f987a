-- Pause camp (issue 18): an admin's switch. While `paused_at` is set, students cannot log in
-- or start notebooks (hubdesk refuses their logins and sign-ins, the hub's spawner is told no),
-- their running servers are stopped, and staff work as usual. One row.
CREATE TABLE camp_pause (
    id        BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    paused_at TIMESTAMPTZ,
    paused_by TEXT,
    -- What students are told ("Lunch break until 13:30").
    message   TEXT NOT NULL DEFAULT ''
);
INSERT INTO camp_pause (id) VALUES (TRUE);
