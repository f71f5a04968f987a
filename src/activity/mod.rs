//! What hubdesk is doing: the long operations (jobs) that homes and the cluster start, each
//! with its steps, on a page that follows it to the end and in the JSON API; and the words for
//! what hubdesk records (`words`: jobs, audit lines, a student's history). The job runner
//! itself is the `jobs` kit; this is its HTTP side.
pub mod api;
pub mod pages;
pub mod words;
