//! The calendar's pages: the cohorts (`/cohorts`, `/cohorts/{slug}`) and the calendar
//! (`/calendar`, its switch, its iCalendar feed).
pub mod calendar;
pub mod cohorts;
