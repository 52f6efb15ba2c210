//! What `check-thumbnails` and `enrich-channels` share: their flags, and a run
//! with SIGTERM/SIGINT as "stop", its own single writer, and progress on a terminal.

use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use videofeed::jobs::{self, JobOptions, JobSummary};
use videofeed::server;
use videofeed::store::Store;
use videofeed::store::writer::WriterThread;

use super::{Args, Fatal, fatal, say};

/// Reads the job flags shared by check-thumbnails and enrich-channels.
pub(super) fn job_options(a: &Args, defaults: JobOptions) -> Result<JobOptions, Fatal> {
    let duration = |name: &str, default: Duration| -> Result<Duration, Fatal> {
        match a.get(name) {
            None => Ok(default),
            Some(v) => videofeed::jobs::parse_duration(&v)
                .ok_or_else(|| fatal(format!("{name} must be a duration such as 90s, 15m, 12h or 7d, got {v:?}"))),
        }
    };
    let concurrency: usize = a.number("--concurrency", defaults.concurrency)?;
    if !(1..=256).contains(&concurrency) {
        return Err(fatal(format!("--concurrency must be from 1 to 256, got {concurrency}")));
    }
    let rate = match a.get("--rate") {
        None => defaults.rate,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| fatal(format!("--rate must be requests per second (0 = no limit), got {v:?}")))?,
    };
    let timeout = duration("--timeout", defaults.timeout)?;
    if timeout.is_zero() {
        return Err(fatal("--timeout must be more than 0"));
    }
    Ok(JobOptions {
        concurrency,
        rate,
        timeout,
        retries: a.number("--retries", defaults.retries)?,
        max_age: duration("--max-age", defaults.max_age)?,
        limit: a.get("--limit").map(|_| a.number("--limit", 0usize)).transpose()?,
        private_hosts: videofeed::config::private_hosts_allowed(
            std::env::var("VIDEOFEED_CHECK_PRIVATE_HOSTS").ok().as_deref(),
        ),
        proxy: videofeed::config::check_proxy(std::env::var("VIDEOFEED_CHECK_PROXY").ok().as_deref()).map_err(fatal)?,
        max_hide: match a.get("--allow-hide") {
            Some(_) => None,
            None => {
                videofeed::config::max_hide(std::env::var("VIDEOFEED_CHECK_MAX_HIDE").ok().as_deref()).map_err(fatal)?
            }
        },
    })
}

/// Runs a job with SIGTERM/SIGINT as "stop", its own single writer, and progress on a terminal.
pub(super) fn run_job(
    name: &str,
    db: &std::path::Path,
    job: impl FnOnce(&AtomicBool, &WriterThread, &mut (dyn FnMut(&JobSummary) + Send)) -> Result<JobSummary, jobs::Error>,
) -> Result<u8, Fatal> {
    let stop = Arc::new(AtomicBool::new(false));
    server::install_signal_handlers(&stop)?;
    // Creates or upgrades the schema first, so the jobs' tables exist.
    drop(Store::open(db)?);
    let writer = WriterThread::start(db, 16)?;
    let tty = io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut progress = move |s: &JobSummary| {
        if tty && last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            eprint!(
                "\r{name}: {} of {} done, {} good, {} bad, {} failed   ",
                s.done, s.planned, s.good, s.bad, s.failed
            );
        }
    };
    let summary = job(&stop, &writer, &mut progress);
    if tty {
        eprintln!();
    }
    let summary = summary.map_err(|e| fatal(format!("{name}: {e}")))?;
    say(&format!("{name} {}: {summary}", db.display()));
    Ok(0)
}
