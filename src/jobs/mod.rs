//! The background jobs that talk to the network, so that `/feed` never does:
//! the thumbnail checker (`videofeed check-thumbnails`, or inside `serve`
//! with `VIDEOFEED_THUMBNAIL_CHECK_EVERY`) and channel enrichment
//! (`videofeed enrich-channels`).
//!
//! Shape of a run ([`pipeline`], shared by both jobs): the calling thread plans the work from a read-only
//! connection (what is missing or older than `max_age`) and feeds a bounded
//! queue; `concurrency` threads share one blocking HTTP agent (ureq; no async
//! runtime) and a global rate limit, each request with a time limit and
//! bounded retries with exponential back-off; one collector thread hands the
//! results, 200 at a time or every second, to the single writer
//! ([`crate::store::writer`]), whose short transactions wait for other writers
//! instead of failing, so imports and admin writes never see "database is
//! locked". A stop flag (SIGTERM) ends a run at any time: no new request
//! starts, the ones in flight finish within their time limit, and every
//! finished result is written before the run returns.
//!
//! Nothing here trusts the network: statuses, bodies and redirects are
//! classified, bodies are size-capped, JSON is validated field by field, and
//! a failed fetch writes nothing. The thumbnail checker fetches public
//! addresses only ([`guard`]): catalogue URLs must not probe the internal network.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod channels;
pub mod guard;
pub mod pipeline;
mod thumbnails;

use std::fmt;
use std::time::Duration;

pub use crate::config::{JobOptions, parse_duration};
use crate::store::writer::SubmitError;
pub use channels::{channel_url, enrich_channels};
pub use pipeline::BREAKER;
pub use thumbnails::{alternative_of, check_thumbnails};

/// Why a job could not run (per-entry failures are counted, not errors).
#[derive(Debug)]
pub enum Error {
    /// The database could not be read or written.
    Database(String),
    /// The writer refused the results (it is gone, or the commit failed).
    Write(SubmitError),
    /// A setting is unusable.
    Setting(String),
    /// Too many checks in a row got no answer at all; the run stopped and recorded none of them.
    NoNetwork(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database(e) => write!(f, "{e}"),
            Error::Write(e) => write!(f, "writing results: {e}"),
            Error::Setting(e) => write!(f, "{e}"),
            Error::NoNetwork(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

/// A database failure, as a job error (the jobs do not name SQLite's types).
fn database(e: impl fmt::Display) -> Error {
    Error::Database(e.to_string())
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSummary {
    /// Entries that were due when the run started (after `limit`).
    pub planned: u64,
    /// Entries finished (whatever the outcome).
    pub done: u64,
    /// Thumbnails that load / channels the source knows.
    pub good: u64,
    /// Thumbnails that do not load / channels the source does not know (404).
    pub bad: u64,
    /// Broken thumbnails for which a good alternative was found.
    pub replaced: u64,
    /// Entries given up on after the retries (channels: nothing written for them).
    pub failed: u64,
    /// Rows written.
    pub written: u64,
    /// Time taken.
    pub elapsed: Duration,
    /// Whether the run was stopped before it finished.
    pub stopped: bool,
}

impl fmt::Display for JobSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "planned={} done={} good={} bad={} replaced={} failed={} written={} seconds={:.1}{}",
            self.planned,
            self.done,
            self.good,
            self.bad,
            self.replaced,
            self.failed,
            self.written,
            self.elapsed.as_secs_f64(),
            if self.stopped { " stopped=1" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "d", "7w", "-1s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
