//! Integration tests: the real app on port 0 against a real PostgreSQL, a database per test.
mod accounts;
mod activity;
mod api;
mod cluster;
mod cluster_peers;
mod helpers;
mod import;
mod jobs;
mod login;
mod oidc;
mod platform;
mod students;
