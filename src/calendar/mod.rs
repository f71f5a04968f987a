//! The camp calendar (issue 17): cohorts' class blocks in their own time zone
//! ([`timetable`]) and their notebook [`profile`], edited on the cohort pages ([`cohorts`],
//! [`pages`]); the planner that turns them into the cluster's actions ([`planner`], pure):
//! workers launched before a block, servers warmed, idle servers stopped and extra workers
//! removed after it; the [`runner`] that carries the plan out on its [`clock`].
pub mod api;
pub mod budget;
pub mod clock;
pub mod cohorts;
pub mod ledger;
pub mod overview;
pub mod pages;
pub mod planner;
pub mod profile;
pub mod runner;
pub mod spend;
pub mod timetable;
