//! The pipeline both network jobs run on.
//!
//! The calling thread feeds tasks (planned from a read-only connection) into a
//! bounded queue; `concurrency` worker threads share one blocking HTTP agent
//! (ureq) and a global rate limit, each request with a time limit and bounded
//! retries with exponential back-off (`with_retries`); one collector thread
//! counts the outcomes (`Tally`) and hands rows, 200 at a time or every
//! second, to the single writer. A stop (SIGTERM) ends a run at any time: no
//! new request starts, the ones in flight finish within their time limit, and
//! every finished result is written before the run returns. A job's own rule
//! may stop the run too (the thumbnail checker's breaker), and then what it
//! held back is not written.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::{Error, JobOptions, JobSummary};
use crate::store::Op;
use crate::store::writer::{SubmitError, WriterThread};

/// Results handed to the writer at once.
const FLUSH_ROWS: usize = 200;
/// Longest wait before finished results are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Network failures in a row (no HTTP answer at all) after which a thumbnail run stops:
/// the fault is likely ours (network, DNS), and recording them would hide good videos.
pub const BREAKER: usize = 50;
/// First retry delay; doubled for each further retry.
const BACKOFF: Duration = Duration::from_millis(250);

/// What the workers share: the HTTP agent, the settings, the rate limit, the stop flag.
pub(super) struct Tools<'a> {
    /// One agent for all workers (its connection pool is shared).
    pub agent: ureq::Agent,
    /// The run's settings.
    pub opts: &'a JobOptions,
    /// Starts requests no faster than `opts.rate`.
    pub limit: RateLimit,
    /// Set when the run must stop.
    pub stop: &'a AtomicBool,
    /// Requests go through a proxy while only public addresses may be fetched: the
    /// guard checks each target (and each redirect) itself ([`super::guard::check_target`]),
    /// and redirects are followed by the caller, not by ureq.
    pub guard_targets: bool,
}

/// A job's work on one task, run by the worker threads.
pub(super) trait Work: Sync {
    /// One unit of work (a video's thumbnail, a channel name).
    type Task: Send;
    /// What a worker makes of a task.
    type Outcome: Send;
    /// Works one task (requests with retries under the rate limit); None when stopped first.
    fn work(&self, tools: &Tools<'_>, task: Self::Task) -> Option<Self::Outcome>;
}

/// A job's counting and writing, run by the collector thread.
pub(super) trait Tally: Send {
    /// What a worker made of a task.
    type Outcome;
    /// A row to write.
    type Row: Send;
    /// Counts `outcome` into `summary` and moves the rows to write into `batch`;
    /// `Err(why)` stops the run, and what the tally held back is not written.
    fn take(
        &mut self,
        outcome: Self::Outcome,
        summary: &mut JobSummary,
        batch: &mut Vec<Self::Row>,
    ) -> Result<(), String>;
    /// Every worker is done and the run was not stopped by [`Tally::take`]: the last rows.
    fn finish(&mut self, summary: &mut JobSummary, batch: &mut Vec<Self::Row>);
    /// The writer op for a batch of rows.
    fn op(rows: Vec<Self::Row>) -> Op;
}

/// The settings of one run.
pub(super) struct Run<'a> {
    /// For the HTTP user agent and messages ("thumbnail check").
    pub what: &'static str,
    /// Concurrency, rate, time limit, retries.
    pub opts: &'a JobOptions,
    /// The caller's stop flag (SIGTERM).
    pub stop: &'a AtomicBool,
    /// The single writer.
    pub writer: &'a WriterThread,
    /// Fetch only public addresses ([`super::guard::PublicOnly`]).
    pub public_only: bool,
}

/// Runs `planned` tasks from `tasks` through `work` and `tally`; see the module docs.
///
/// # Errors
/// The first error of the task source or the writer, or the tally's reason to
/// stop ([`Error::NoNetwork`]); what was written before stays written.
pub(super) fn run<W, T>(
    run: &Run<'_>,
    work: &W,
    mut tally: T,
    tasks: impl Iterator<Item = Result<W::Task, Error>>,
    planned: u64,
    progress: &mut (dyn FnMut(&JobSummary) + Send),
) -> Result<JobSummary, Error>
where
    W: Work,
    T: Tally<Outcome = W::Outcome>,
{
    // `halt` stops the workers: set by the caller's stop (mirrored below) or by the tally.
    let halt = AtomicBool::new(false);
    let stop = &halt;
    let started = Instant::now();
    let tools = Tools {
        agent: agent(run.opts, run.what, run.public_only),
        opts: run.opts,
        limit: RateLimit::new(run.opts.rate),
        stop,
        guard_targets: run.public_only && run.opts.proxy.is_some(),
    };
    let (task_tx, task_rx) = mpsc::sync_channel::<W::Task>(run.opts.concurrency.max(1) * 2);
    let task_rx = Mutex::new(task_rx);
    let (result_tx, result_rx) = mpsc::channel::<W::Outcome>();
    // While true, a helper thread copies the caller's stop into `halt`.
    let collecting = AtomicBool::new(true);
    let (outer, writer) = (run.stop, run.writer);
    let summary = thread::scope(|scope| -> Result<JobSummary, Error> {
        for _ in 0..run.opts.concurrency.max(1) {
            let (tools, task_rx, result_tx) = (&tools, &task_rx, result_tx.clone());
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let next = task_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(task) = next else { return };
                    let Some(outcome) = work.work(tools, task) else { return };
                    if result_tx.send(outcome).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_tx);
        let collecting = &collecting;
        scope.spawn(move || {
            while collecting.load(Ordering::SeqCst) {
                if outer.load(Ordering::SeqCst) {
                    stop.store(true, Ordering::SeqCst);
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        let collector = scope.spawn(move || -> Result<JobSummary, Error> {
            // However the collector ends (an error included), the helper thread ends and
            // the feeder and workers stop.
            struct Ended<'a>(&'a AtomicBool, &'a AtomicBool);
            impl Drop for Ended<'_> {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::SeqCst);
                    self.1.store(true, Ordering::SeqCst);
                }
            }
            let _ended = Ended(collecting, stop);
            let mut flusher = Flusher { writer, written: 0 };
            let mut s = JobSummary { planned, ..JobSummary::default() };
            let mut batch = Vec::new();
            let mut tripped: Option<String> = None;
            let mut last_flush = Instant::now();
            loop {
                let next = result_rx.recv_timeout(Duration::from_millis(200));
                let closed = matches!(next, Err(mpsc::RecvTimeoutError::Disconnected));
                if let (Ok(outcome), None) = (next, &tripped) {
                    if let Err(why) = tally.take(outcome, &mut s, &mut batch) {
                        tripped = Some(why);
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                if closed && tripped.is_none() {
                    tally.finish(&mut s, &mut batch);
                }
                // On a stop, what is finished is written at once (the process may be about to exit).
                let stopping = stop.load(Ordering::SeqCst);
                if !batch.is_empty()
                    && (batch.len() >= FLUSH_ROWS || last_flush.elapsed() >= FLUSH_EVERY || closed || stopping)
                {
                    flusher.submit(T::op(std::mem::take(&mut batch)))?;
                    last_flush = Instant::now();
                    s.written = flusher.written;
                    s.elapsed = started.elapsed();
                    progress(&s);
                }
                if closed {
                    return match tripped {
                        Some(why) => Err(Error::NoNetwork(format!("{why}; {} written before: {s}", s.written))),
                        None => Ok(s),
                    };
                }
            }
        });
        let fed = feed(tasks, planned, &task_tx, stop);
        if fed.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        drop(task_tx);
        let collected =
            collector.join().unwrap_or_else(|_| Err(Error::Database("the result collector panicked".into())));
        fed.and(collected)
    })?;
    Ok(JobSummary {
        stopped: stop.load(Ordering::SeqCst) && summary.done < summary.planned,
        elapsed: started.elapsed(),
        ..summary
    })
}

/// Feeds up to `planned` tasks into the queue until the source ends or a stop.
fn feed<Task>(
    tasks: impl Iterator<Item = Result<Task, Error>>,
    planned: u64,
    queue: &mpsc::SyncSender<Task>,
    stop: &AtomicBool,
) -> Result<(), Error> {
    let limit = usize::try_from(planned).unwrap_or(usize::MAX);
    for task in tasks.take(limit) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Never block on a full queue: after a stop the workers are gone.
        let mut task = task?;
        loop {
            match queue.try_send(task) {
                Ok(()) => break,
                Err(mpsc::TrySendError::Full(back)) if !stop.load(Ordering::SeqCst) => {
                    task = back;
                    thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// Starts requests no faster than a rate, across threads.
pub(super) struct RateLimit {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimit {
    pub(super) fn new(rate: f64) -> RateLimit {
        let interval = (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate));
        RateLimit { interval, next: Mutex::new(Instant::now()) }
    }

    /// Waits for this thread's turn; false when `stop` was set meanwhile.
    pub(super) fn wait(&self, stop: &AtomicBool) -> bool {
        let Some(interval) = self.interval else { return !stop.load(Ordering::SeqCst) };
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = (*next).max(Instant::now());
            *next = slot + interval;
            slot
        };
        sleep_until(slot, stop)
    }
}

/// Sleeps until `t`, waking every 50 ms to look at `stop`; false when stopped.
pub(super) fn sleep_until(t: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= t {
            return true;
        }
        thread::sleep((t - now).min(Duration::from_millis(50)));
    }
}

/// The HTTP agent both jobs use: status codes are answers, not errors; with
/// `public_only`, hosts (redirects' too) that resolve to internal addresses are refused.
/// The environment's proxy variables are ignored: only `opts.proxy` names one. Through
/// a proxy ureq resolves only the proxy's host, so with `public_only` redirects are not
/// followed here: the caller checks each target and follows them ([`Tools::guard_targets`]).
fn agent(opts: &JobOptions, what: &str, public_only: bool) -> ureq::Agent {
    let proxy = opts.proxy.as_deref().and_then(|p| ureq::Proxy::new(p).ok());
    let through_proxy = proxy.is_some();
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(opts.timeout))
        .max_redirects(if through_proxy && public_only { 0 } else { 5 })
        .proxy(proxy)
        .user_agent(format!("videofeed/{} ({what})", env!("CARGO_PKG_VERSION")))
        .build();
    if public_only && !through_proxy {
        let connector = ureq::unversioned::transport::DefaultConnector::default();
        ureq::Agent::with_parts(config, connector, super::guard::PublicOnly::default())
    } else {
        config.into()
    }
}

/// What one HTTP attempt came to.
pub(super) enum Attempt {
    /// An answer with this status.
    Status(u16),
    /// No usable answer: timeout, refused, cut off mid-answer, too many redirects.
    Failed(String),
    /// Not asked: the host is not a public address ([`super::guard`]). Final, no retry.
    Refused(String),
}

impl Attempt {
    fn is_transient(&self) -> bool {
        match self {
            Attempt::Status(s) => *s == 408 || *s == 429 || *s >= 500,
            Attempt::Failed(_) => true,
            Attempt::Refused(_) => false,
        }
    }
}

/// Runs `attempt` up to `1 + retries` times while its result is transient, backing off.
pub(super) fn with_retries<T>(tools: &Tools<'_>, mut attempt: impl FnMut() -> (Attempt, T)) -> Option<(Attempt, T)> {
    let mut tries = 0u32;
    loop {
        if !tools.limit.wait(tools.stop) {
            return None;
        }
        let (result, value) = attempt();
        if !result.is_transient() || tries >= tools.opts.retries {
            return Some((result, value));
        }
        let delay = BACKOFF.saturating_mul(2u32.saturating_pow(tries));
        tries += 1;
        if !sleep_until(Instant::now() + delay, tools.stop) {
            return Some((result, value));
        }
    }
}

/// The attempt a request error comes to: refused by the guard, or failed.
pub(super) fn failed(e: &ureq::Error) -> Attempt {
    match super::guard::refusal(e) {
        Some(r) => Attempt::Refused(r.to_string()),
        None => Attempt::Failed(describe(e)),
    }
}

pub(super) fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::TooManyRedirects => "too many redirects".into(),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        other => other.to_string(),
    }
}

/// Hands results to the writer in groups; counts what was written.
struct Flusher<'a> {
    writer: &'a WriterThread,
    written: u64,
}

impl Flusher<'_> {
    /// Writes `op`; a full queue (shared with the write API inside serve) is waited
    /// out, never answered by dropping finished results.
    fn submit(&mut self, op: Op) -> Result<(), Error> {
        let mut op = op;
        loop {
            let rows = op.rows();
            match self.writer.submit_returning(op) {
                Ok(_) => {
                    self.written += u64::try_from(rows).unwrap_or(0);
                    return Ok(());
                }
                Err((SubmitError::QueueFull, Some(back))) => {
                    op = back;
                    thread::sleep(Duration::from_millis(100));
                }
                Err((e, _)) => return Err(Error::Write(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_spaces_starts() {
        let stop = AtomicBool::new(false);
        let limit = RateLimit::new(50.0);
        let t = Instant::now();
        for _ in 0..6 {
            assert!(limit.wait(&stop));
        }
        assert!(t.elapsed() >= Duration::from_millis(95), "{:?}", t.elapsed());
        stop.store(true, Ordering::SeqCst);
        assert!(!limit.wait(&stop));
    }
}
