-- Disk usage of each student's home, measured in the background (the student list sorts by it).
ALTER TABLE users ADD COLUMN home_bytes BIGINT;
ALTER TABLE users ADD COLUMN home_measured_at TIMESTAMPTZ;
CREATE INDEX users_home_bytes_idx ON users (home_bytes) WHERE role = 'student';
