-- Counselors scoped to cohorts (issue 18). `users.cohorts` is the reach of a counselor: NULL
-- means every cohort (the default, as before); an array names the cohorts (users.cohort values)
-- whose students the counselor sees and acts on, and an empty array none. Admins always reach
-- everything; the column is ignored for them and for students.
ALTER TABLE users ADD COLUMN cohorts TEXT[];

-- An API token made by a person on their account page acts with that person's role and reach,
-- read at each request (an assignment removed or an account disabled takes effect at once).
-- Tokens made on the server's command line have no owner and reach everything, as before.
ALTER TABLE api_tokens ADD COLUMN owner_id BIGINT REFERENCES users(id) ON DELETE CASCADE;
CREATE INDEX api_tokens_owner_idx ON api_tokens (owner_id);
-- Token names are unique per owner (and among the command line's tokens).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_name_key;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_owner_name_key
    UNIQUE NULLS NOT DISTINCT (owner_id, name);
