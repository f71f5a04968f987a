//! Integration tests: the real app on port 0 against a real PostgreSQL, a database per test.
mod accounts;
mod activity;
mod api;
mod cluster;
mod cluster_peers;
mod helpers;
mod homes;
mod homes_http;
mod hub;
mod import;
mod jobs;
mod login;
mod oidc;
mod oidc_interop;
mod platform;
mod servers;
mod students;
