//! hubdesk: the front desk of a teaching JupyterHub.
//!
//! Capabilities on top (`account`, `roster`, `oidc`, later `homes`, `cluster`), shared kits
//! below (`domain`, `db`, `auth`, `web`); `app` wires them into one HTTP server, `cli` into
//! commands. `ARCHITECTURE.md` has the map and the import rules `scripts/check-layers` keeps.
pub mod account;
pub mod activity;
pub mod announcements;
pub mod app;
pub mod auth;
pub mod board;
pub mod calendar;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod dockerproxy;
pub mod doctor;
pub mod domain;
pub mod ec2;
pub mod homes;
pub mod hub;
pub mod jobs;
pub mod metrics;
pub mod oidc;
pub mod provision;
pub mod roster;
pub mod servers;
pub mod state;
pub mod telemetry;
pub mod web;
