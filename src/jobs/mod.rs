//! The background jobs that talk to the network, so that `/feed` never does:
//! the thumbnail checker (`videofeed check-thumbnails`, or inside `serve`
//! with `VIDEOFEED_THUMBNAIL_CHECK_EVERY`) and channel enrichment
//! (`videofeed enrich-channels`).
//!
//! Shape of a run: the calling thread plans the work from a read-only
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
//! a failed fetch writes nothing.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::store::import::Op;
use crate::store::writer::{SubmitError, WriterHandle};
use crate::timefmt::now_unix;

/// Results handed to the writer at once.
const FLUSH_ROWS: usize = 200;
/// Longest wait before finished results are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Videos planned per read (keyset pages over `videos.rowid`).
const PLAN_PAGE: i64 = 1000;
/// Largest channel answer read, in bytes.
const MAX_CHANNEL_BODY: u64 = 64 * 1024;
/// Network failures in a row (no HTTP answer at all) after which a thumbnail run stops:
/// the fault is likely ours (network, DNS), and recording them would hide good videos.
pub const BREAKER: usize = 50;
/// First retry delay; doubled for each further retry.
const BACKOFF: Duration = Duration::from_millis(250);

pub use crate::config::{JobOptions, parse_duration};

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

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e.to_string())
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
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

impl fmt::Display for Summary {
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

/// One thumbnail check, as stored in `thumbnail_checks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailCheck {
    /// The video.
    pub video_id: String,
    /// The URL checked (the video's thumbnail at planning time).
    pub url: String,
    /// Whether it loads.
    pub ok: bool,
    /// The final HTTP status, if one came.
    pub status: Option<u16>,
    /// What went wrong, in words.
    pub error: Option<String>,
    /// A same-video URL that loads, when `url` does not.
    pub alternative: Option<String>,
    /// Unix seconds.
    pub checked_at: i64,
}

/// One channel's enrichment data, as stored in `channels`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelRecord {
    /// The channel name as in `videos.channel`.
    pub name: String,
    /// Whether the source knows it.
    pub found: bool,
    /// Display name.
    pub display_name: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Verified flag.
    pub verified: Option<bool>,
    /// Subscriber count.
    pub subscriber_count: Option<i64>,
    /// Unix seconds.
    pub fetched_at: i64,
}

/// Upserts checks (the writer thread's part of [`Op::Thumbnails`]); returns rows written.
///
/// # Errors
/// SQLite errors; the caller's transaction then rolls back.
pub fn write_thumbnail_checks(conn: &Connection, checks: &[ThumbnailCheck]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO thumbnail_checks (video_id, url, ok, status, error, alternative, checked_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM videos WHERE id = ?1)
         ON CONFLICT (video_id) DO UPDATE SET url = excluded.url, ok = excluded.ok, status = excluded.status,
             error = excluded.error, alternative = excluded.alternative, checked_at = excluded.checked_at",
    )?;
    let mut n = 0u64;
    for c in checks {
        n += u64::try_from(stmt.execute(params![
            c.video_id,
            c.url,
            c.ok,
            c.status,
            c.error,
            c.alternative,
            c.checked_at
        ])?)
        .unwrap_or(0);
    }
    Ok(n)
}

/// Upserts channel records (the writer thread's part of [`Op::Channels`]); returns rows written.
///
/// # Errors
/// SQLite errors; the caller's transaction then rolls back.
pub fn write_channels(conn: &Connection, channels: &[ChannelRecord]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO channels (name, found, display_name, avatar_url, verified, subscriber_count, fetched_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE SET found = excluded.found, display_name = excluded.display_name,
             avatar_url = excluded.avatar_url, verified = excluded.verified,
             subscriber_count = excluded.subscriber_count, fetched_at = excluded.fetched_at",
    )?;
    let mut n = 0u64;
    for c in channels {
        n += u64::try_from(stmt.execute(params![
            c.name,
            c.found,
            c.display_name,
            c.avatar_url,
            c.verified,
            c.subscriber_count,
            c.fetched_at
        ])?)
        .unwrap_or(0);
    }
    Ok(n)
}

/// Starts requests no faster than a rate, across threads.
struct RateLimit {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimit {
    fn new(rate: f64) -> RateLimit {
        let interval = (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate));
        RateLimit { interval, next: Mutex::new(Instant::now()) }
    }

    /// Waits for this thread's turn; false when `stop` was set meanwhile.
    fn wait(&self, stop: &AtomicBool) -> bool {
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
fn sleep_until(t: Instant, stop: &AtomicBool) -> bool {
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

/// The HTTP agent both jobs use: status codes are answers, not errors.
fn agent(opts: &JobOptions, what: &str) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(opts.timeout))
        .max_redirects(5)
        .user_agent(format!("videofeed/{} ({what})", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// What one HTTP attempt came to.
enum Attempt {
    /// An answer with this status.
    Status(u16),
    /// No usable answer: timeout, refused, cut off mid-answer, too many redirects.
    Failed(String),
}

impl Attempt {
    fn is_transient(&self) -> bool {
        match self {
            Attempt::Status(s) => *s == 408 || *s == 429 || *s >= 500,
            Attempt::Failed(_) => true,
        }
    }
}

/// Runs `attempt` up to `1 + retries` times while its result is transient, backing off.
fn with_retries<T>(
    opts: &JobOptions,
    limit: &RateLimit,
    stop: &AtomicBool,
    mut attempt: impl FnMut() -> (Attempt, T),
) -> Option<(Attempt, T)> {
    let mut tries = 0u32;
    loop {
        if !limit.wait(stop) {
            return None;
        }
        let (result, value) = attempt();
        if !result.is_transient() || tries >= opts.retries {
            return Some((result, value));
        }
        let delay = BACKOFF.saturating_mul(2u32.saturating_pow(tries));
        tries += 1;
        if !sleep_until(Instant::now() + delay, stop) {
            return Some((result, value));
        }
    }
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::TooManyRedirects => "too many redirects".into(),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        other => other.to_string(),
    }
}

/// HEAD, or a one-byte ranged GET where HEAD is refused (405, 501).
fn probe(agent: &ureq::Agent, url: &str) -> Attempt {
    match agent.head(url).call() {
        Ok(resp) if matches!(resp.status().as_u16(), 405 | 501) => {
            match agent.get(url).header("Range", "bytes=0-0").call() {
                Ok(resp) => Attempt::Status(resp.status().as_u16()),
                Err(e) => Attempt::Failed(describe(&e)),
            }
        }
        Ok(resp) => Attempt::Status(resp.status().as_u16()),
        Err(e) => Attempt::Failed(describe(&e)),
    }
}

/// The same video's `mqdefault` thumbnail for a YouTube-style URL
/// (`…/vi/ID/hqdefault.jpg`, `sddefault`, `maxresdefault`, `hq720`, `default`).
pub fn alternative_of(url: &str) -> Option<String> {
    let (dir, file) = url.rsplit_once('/')?;
    let (stem, ext) = file.split_once('.')?;
    let known = ["hqdefault", "sddefault", "maxresdefault", "hq720", "default"];
    let parent = dir.rsplit_once('/').map(|(p, _)| p)?;
    let is_vi = parent.ends_with("/vi") || parent.ends_with("/vi_webp");
    (is_vi && known.contains(&stem)).then(|| format!("{dir}/mqdefault.{ext}"))
}

/// Checks one thumbnail (and its alternative when broken); None when stopped first.
fn check_one(
    agent: &ureq::Agent,
    opts: &JobOptions,
    limit: &RateLimit,
    stop: &AtomicBool,
    video_id: String,
    url: String,
) -> Option<ThumbnailCheck> {
    let (result, ()) = with_retries(opts, limit, stop, || (probe(agent, &url), ()))?;
    let (ok, status, error) = match result {
        Attempt::Status(s) if (200..300).contains(&s) => (true, Some(s), None),
        Attempt::Status(s) => (false, Some(s), Some(format!("HTTP {s}"))),
        Attempt::Failed(e) => (false, None, Some(e)),
    };
    let mut alternative = None;
    if !ok {
        if let Some(alt) = alternative_of(&url) {
            if let Some((Attempt::Status(s), ())) = with_retries(opts, limit, stop, || (probe(agent, &alt), ())) {
                if (200..300).contains(&s) {
                    alternative = Some(alt);
                }
            }
        }
    }
    Some(ThumbnailCheck { video_id, url, ok, status, error, alternative, checked_at: now_unix() })
}

/// Hands results to the writer in groups; counts what was written.
struct Flusher<'a> {
    writer: &'a WriterHandle,
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

/// Checks every thumbnail that has no check, a check of another URL, or one older
/// than `opts.max_age`, and records the outcome. See the module docs for the shape.
///
/// # Errors
/// [`Error`] when the database cannot be read or the results cannot be written;
/// results written before that stay written.
pub fn check_thumbnails(
    db: &Path,
    opts: &JobOptions,
    stop: &AtomicBool,
    writer: &WriterHandle,
    progress: &mut (dyn FnMut(&Summary) + Send),
) -> Result<Summary, Error> {
    // `halt` stops the workers: set by the caller's `stop` (mirrored below) or by the breaker.
    let halt = AtomicBool::new(false);
    let outer = stop;
    let stop = &halt;
    let started = Instant::now();
    let conn = crate::store::db::open_reader(db).map_err(|e| Error::Database(e.to_string()))?;
    let due_before = now_unix().saturating_sub(i64::try_from(opts.max_age.as_secs()).unwrap_or(i64::MAX));
    let planned: i64 = conn.query_row(
        "SELECT count(*) FROM videos v LEFT JOIN thumbnail_checks t ON t.video_id = v.id
         WHERE t.video_id IS NULL OR t.url IS NOT v.thumbnail OR t.checked_at < ?1",
        [due_before],
        |r| r.get(0),
    )?;
    let planned = u64::try_from(planned).unwrap_or(0).min(opts.limit.map_or(u64::MAX, |l| l as u64));
    let agent = agent(opts, "thumbnail check");
    let limit = RateLimit::new(opts.rate);
    let (task_tx, task_rx) = mpsc::sync_channel::<(String, String)>(opts.concurrency.max(1) * 2);
    let task_rx = Mutex::new(task_rx);
    let (result_tx, result_rx) = mpsc::channel::<ThumbnailCheck>();
    // While true, a helper thread copies the caller's stop into `halt`.
    let collecting = AtomicBool::new(true);
    let summary = thread::scope(|scope| -> Result<Summary, Error> {
        for _ in 0..opts.concurrency.max(1) {
            let (agent, limit, task_rx, result_tx) = (&agent, &limit, &task_rx, result_tx.clone());
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let next = task_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((id, url)) = next else { return };
                    match check_one(agent, opts, limit, stop, id, url) {
                        Some(check) => {
                            if result_tx.send(check).is_err() {
                                return;
                            }
                        }
                        None => return,
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
        let collector = scope.spawn(move || -> Result<Summary, Error> {
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
            let mut s = Summary { planned, ..Summary::default() };
            let mut batch = Vec::new();
            // Checks with no HTTP answer wait here until some check gets one (then the
            // network works and they are real); BREAKER of them in a row stop the run.
            let mut held: Vec<ThumbnailCheck> = Vec::new();
            let mut answered = false;
            let mut tripped: Option<String> = None;
            let mut last_flush = Instant::now();
            loop {
                let next = result_rx.recv_timeout(Duration::from_millis(200));
                let closed = matches!(next, Err(mpsc::RecvTimeoutError::Disconnected));
                if let Ok(check) = next {
                    if tripped.is_some() {
                        continue;
                    }
                    if check.status.is_none() {
                        held.push(check);
                        if held.len() >= BREAKER {
                            let first = held.first().and_then(|c| c.error.clone()).unwrap_or_default();
                            tripped = Some(format!(
                                "{} thumbnail checks in a row got no answer at all (the first: {first}); the network or \
                                 DNS of this machine looks down, so the run stopped and recorded none of them",
                                held.len()
                            ));
                            held.clear();
                            stop.store(true, Ordering::SeqCst);
                        }
                        continue;
                    }
                    answered = true;
                    for c in held.drain(..).chain(std::iter::once(check)) {
                        s.done += 1;
                        if c.ok {
                            s.good += 1;
                        } else {
                            s.bad += 1;
                            s.replaced += u64::from(c.alternative.is_some());
                            s.failed += u64::from(c.status.is_none());
                        }
                        batch.push(c);
                    }
                }
                if closed && answered && tripped.is_none() {
                    for c in held.drain(..) {
                        s.done += 1;
                        s.bad += 1;
                        s.failed += 1;
                        batch.push(c);
                    }
                }
                // On a stop, what is finished is written at once (the process may be about to exit).
                let stopping = stop.load(Ordering::SeqCst);
                if !batch.is_empty()
                    && (batch.len() >= FLUSH_ROWS || last_flush.elapsed() >= FLUSH_EVERY || closed || stopping)
                {
                    flusher.submit(Op::Thumbnails(std::mem::take(&mut batch)))?;
                    last_flush = Instant::now();
                    s.written = flusher.written;
                    s.elapsed = started.elapsed();
                    progress(&s);
                }
                if closed {
                    return match tripped {
                        Some(why) => Err(Error::NoNetwork(format!("{why}; {} checks written before: {s}", s.written))),
                        None => Ok(s),
                    };
                }
            }
        });
        // Plan and feed, a keyset page at a time.
        let mut after = i64::MIN;
        let mut fed = 0u64;
        'feed: while fed < planned && !stop.load(Ordering::SeqCst) {
            let page: Vec<(i64, String, String)> = {
                let mut stmt = conn.prepare_cached(
                    "SELECT v.rowid, v.id, v.thumbnail FROM videos v
                     LEFT JOIN thumbnail_checks t ON t.video_id = v.id
                     WHERE v.rowid > ?1 AND (t.video_id IS NULL OR t.url IS NOT v.thumbnail OR t.checked_at < ?2)
                     ORDER BY v.rowid LIMIT ?3",
                )?;
                let rows =
                    stmt.query_map(params![after, due_before, PLAN_PAGE], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            let Some(last) = page.last() else { break };
            after = last.0;
            for (_, id, url) in page {
                if fed >= planned || stop.load(Ordering::SeqCst) {
                    break 'feed;
                }
                // Never block on a full queue: after a stop the workers are gone.
                let mut task = (id, url);
                loop {
                    match task_tx.try_send(task) {
                        Ok(()) => break,
                        Err(mpsc::TrySendError::Full(back)) if !stop.load(Ordering::SeqCst) => {
                            task = back;
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break 'feed,
                    }
                }
                fed += 1;
            }
        }
        drop(task_tx);
        collector.join().unwrap_or_else(|_| Err(Error::Database("the result collector panicked".into())))
    })?;
    Ok(Summary {
        stopped: stop.load(Ordering::SeqCst) && summary.done < summary.planned,
        elapsed: started.elapsed(),
        ..summary
    })
}

/// The expected answer of an enrichment source (see `docs/operations.md`).
fn parse_channel(name: &str, body: &[u8], fetched_at: i64) -> Result<ChannelRecord, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let text = |field: &str, max: usize| -> Result<Option<String>, String> {
        match obj.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.chars().count() <= max => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(format!("{field} must be a string of at most {max} characters")),
        }
    };
    if let Some(answered) = text("name", 200)? {
        if answered != name {
            return Err(format!("answered for channel {answered:?}, asked for {name:?}"));
        }
    }
    let avatar_url = text("avatar_url", 2048)?;
    if avatar_url.as_deref().is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
        return Err("avatar_url must be an http:// or https:// URL".into());
    }
    let verified = match obj.get("verified") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err("verified must be true or false".into()),
    };
    let subscriber_count = match obj.get("subscriber_count") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(v) if v >= 0 => Some(v),
            _ => return Err("subscriber_count must be a whole number of at least 0".into()),
        },
        Some(_) => return Err("subscriber_count must be a number".into()),
    };
    Ok(ChannelRecord {
        name: name.to_owned(),
        found: true,
        display_name: text("display_name", 200)?,
        avatar_url,
        verified,
        subscriber_count,
        fetched_at,
    })
}

/// The source URL for one channel: `SOURCE?name=<name>` (or `&name=` when SOURCE has a query).
pub fn channel_url(source: &str, name: &str) -> String {
    let sep = if source.contains('?') { '&' } else { '?' };
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("{source}{sep}name={encoded}")
}

/// Fetches one channel: Some(Ok) to write, Some(Err) given up (nothing written), None stopped.
fn fetch_channel(
    agent: &ureq::Agent,
    opts: &JobOptions,
    limit: &RateLimit,
    stop: &AtomicBool,
    source: &str,
    name: &str,
) -> Option<Result<ChannelRecord, String>> {
    let url = channel_url(source, name);
    let (result, parsed) =
        with_retries(opts, limit, stop, || match agent.get(&url).header("Accept", "application/json").call() {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if status != 200 {
                    return (Attempt::Status(status), Err(format!("HTTP {status}")));
                }
                match resp.body_mut().with_config().limit(MAX_CHANNEL_BODY).read_to_vec() {
                    // A garbled answer may be a passing fault (a proxy's error page): retry it too.
                    Ok(body) => match parse_channel(name, &body, now_unix()) {
                        Ok(record) => (Attempt::Status(200), Ok(record)),
                        Err(e) => (Attempt::Failed(e.clone()), Err(e)),
                    },
                    Err(e) => (Attempt::Failed(describe(&e)), Err(describe(&e))),
                }
            }
            Err(e) => (Attempt::Failed(describe(&e)), Err(describe(&e))),
        })?;
    Some(match (result, parsed) {
        (Attempt::Status(404 | 410), _) => Ok(ChannelRecord {
            name: name.to_owned(),
            found: false,
            fetched_at: now_unix(),
            ..ChannelRecord::default()
        }),
        (_, parsed) => parsed,
    })
}

/// Fetches metadata for every channel with no entry or one older than `opts.max_age`
/// from `source` and stores it. A channel whose answer is slow, failing or garbled
/// after the retries gets nothing written (its old entry, if any, stays).
///
/// # Errors
/// As for [`check_thumbnails`], and [`Error::Setting`] for a source that is not an HTTP URL.
pub fn enrich_channels(
    db: &Path,
    source: &str,
    opts: &JobOptions,
    stop: &AtomicBool,
    writer: &WriterHandle,
    progress: &mut (dyn FnMut(&Summary) + Send),
) -> Result<Summary, Error> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return Err(Error::Setting(format!("--source must be an http:// or https:// URL, got {source:?}")));
    }
    let started = Instant::now();
    let conn = crate::store::db::open_reader(db).map_err(|e| Error::Database(e.to_string()))?;
    let due_before = now_unix().saturating_sub(i64::try_from(opts.max_age.as_secs()).unwrap_or(i64::MAX));
    let mut names: Vec<String> = {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT v.channel FROM videos v LEFT JOIN channels c ON c.name = v.channel
             WHERE c.name IS NULL OR c.fetched_at < ?1 ORDER BY v.channel",
        )?;
        let rows = stmt.query_map([due_before], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    if let Some(l) = opts.limit {
        names.truncate(l);
    }
    let planned = u64::try_from(names.len()).unwrap_or(u64::MAX);
    let agent = agent(opts, "channel enrichment");
    let limit = RateLimit::new(opts.rate);
    let next = Mutex::new(names.into_iter());
    let (result_tx, result_rx) = mpsc::channel::<Result<ChannelRecord, String>>();
    let summary = thread::scope(|scope| -> Result<Summary, Error> {
        for _ in 0..opts.concurrency.max(1) {
            let (agent, limit, next, result_tx) = (&agent, &limit, &next, result_tx.clone());
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(name) = next.lock().unwrap_or_else(PoisonError::into_inner).next() else { return };
                    let Some(outcome) = fetch_channel(agent, opts, limit, stop, source, &name) else { return };
                    if let Err(e) = &outcome {
                        log::warn!("enrich-channels: {name:?}: {e}; nothing written for it");
                    }
                    if result_tx.send(outcome).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_tx);
        let mut flusher = Flusher { writer, written: 0 };
        let mut s = Summary { planned, ..Summary::default() };
        let mut batch = Vec::new();
        let mut last_flush = Instant::now();
        loop {
            let next = result_rx.recv_timeout(Duration::from_millis(200));
            let closed = matches!(next, Err(mpsc::RecvTimeoutError::Disconnected));
            match next {
                Ok(Ok(record)) => {
                    s.done += 1;
                    if record.found {
                        s.good += 1;
                    } else {
                        s.bad += 1;
                    }
                    batch.push(record);
                }
                Ok(Err(_)) => {
                    s.done += 1;
                    s.failed += 1;
                }
                Err(_) => {}
            }
            let stopping = stop.load(Ordering::SeqCst);
            if !batch.is_empty()
                && (batch.len() >= FLUSH_ROWS || last_flush.elapsed() >= FLUSH_EVERY || closed || stopping)
            {
                flusher.submit(Op::Channels(std::mem::take(&mut batch)))?;
                last_flush = Instant::now();
                s.written = flusher.written;
                s.elapsed = started.elapsed();
                progress(&s);
            }
            if closed {
                return Ok(s);
            }
        }
    })?;
    Ok(Summary {
        stopped: stop.load(Ordering::SeqCst) && summary.done < summary.planned,
        elapsed: started.elapsed(),
        ..summary
    })
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

    #[test]
    fn youtube_alternatives() {
        assert_eq!(
            alternative_of("https://i.ytimg.com/vi/abc/hqdefault.jpg").as_deref(),
            Some("https://i.ytimg.com/vi/abc/mqdefault.jpg")
        );
        assert_eq!(
            alternative_of("https://i.ytimg.com/vi_webp/abc/maxresdefault.webp").as_deref(),
            Some("https://i.ytimg.com/vi_webp/abc/mqdefault.webp")
        );
        assert_eq!(alternative_of("https://i.ytimg.com/vi/abc/mqdefault.jpg"), None);
        assert_eq!(alternative_of("https://cdn.example.com/thumbs/abc.jpg"), None);
    }

    #[test]
    fn channel_answers_are_validated() {
        let ok = parse_channel(
            "Lofi Girl",
            br#"{"name":"Lofi Girl","display_name":"Lofi Girl","avatar_url":"https://a/x.png","verified":true,"subscriber_count":14000000}"#,
            5,
        )
        .unwrap();
        assert_eq!((ok.verified, ok.subscriber_count, ok.fetched_at), (Some(true), Some(14_000_000), 5));
        assert!(parse_channel("A", br#"{"verified":null}"#, 0).is_ok());
        for (body, why) in [
            (&b"<html>"[..], "not JSON"),
            (br#"[1]"#, "not a JSON object"),
            (br#"{"name":"B"}"#, "asked for"),
            (br#"{"avatar_url":"javascript:x"}"#, "avatar_url"),
            (br#"{"verified":"yes"}"#, "verified"),
            (br#"{"subscriber_count":-3}"#, "subscriber_count"),
        ] {
            let e = parse_channel("A", body, 0).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(channel_url("http://s/c", "Lofi Girl"), "http://s/c?name=Lofi+Girl");
        assert_eq!(channel_url("http://s/c?key=1", "a&b"), "http://s/c?key=1&name=a%26b");
    }

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
