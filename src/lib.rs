//! hubdesk: the front desk of a teaching JupyterHub.
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod oidc;
pub mod roster;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod web;
