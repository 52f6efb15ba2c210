//! The `/feed/health` answer: the last database [`Facts`] (kept fresh by a
//! background thread in `store::facts`) and the [`Live`] counters the caller
//! reads from `metrics`, so answering a health check costs a lock and a small
//! JSON encode (microseconds), never a query. 200 while the database can be
//! read, 503 with the reason when it cannot.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::Serialize;

/// How often the health thread looks at the database.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What the last look at the database found (read by `store::facts`).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Why the database cannot be read; None when it can.
    pub error: Option<String>,
    /// Rows in `videos`.
    pub rows: i64,
    /// `PRAGMA user_version`.
    pub schema_version: i64,
    /// The search generation.
    pub generation: i64,
    /// The data version (any change).
    pub changes: i64,
    /// Unix seconds of the last write (0 = none recorded).
    pub last_write: i64,
    /// Unix seconds when this was read.
    pub checked_at: i64,
    /// The identity of the file read (see [`crate::store::db::file_id`]).
    pub file: u64,
    /// What the background jobs have recorded (re-read at most every [`JOBS_REFRESH`]).
    pub jobs: JobStats,
    /// Unix seconds when `jobs` was read.
    pub jobs_read_at: i64,
    /// The data version when `jobs` was read.
    pub jobs_version: i64,
    /// The writer's newest heartbeat, Unix milliseconds (0: none ever seen).
    pub heartbeat_ms: i64,
    /// The state `videofeed replica` keeps beside the served file (`<db>.replica.json`),
    /// when one does.
    pub replica: Option<serde_json::Value>,
    /// Workers still answer from the file the path named before (see [`Health::answering_from`]).
    pub answering_previous_file: bool,
}

/// Seconds since the writer's newest heartbeat in `facts` (now − heartbeat, at least
/// 0), with millisecond precision; None when none was ever seen.
pub fn data_age(facts: &Facts) -> Option<f64> {
    if facts.heartbeat_ms <= 0 {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let ms = now.saturating_sub(facts.heartbeat_ms).max(0);
    Some(ms as f64 / 1000.0)
}

/// What `check-thumbnails` and `enrich-channels` have recorded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobStats {
    /// Videos with a thumbnail check.
    pub thumbnails_checked: i64,
    /// Of those, the ones found broken.
    pub thumbnails_broken: i64,
    /// RFC 3339 time of the newest check; null if none.
    pub thumbnails_last_checked: Option<String>,
    /// Unix seconds of the newest check (0 if none).
    #[serde(skip)]
    pub thumbnails_last_checked_unix: i64,
    /// Whether the last thumbnail check run stopped before recording everything (the
    /// network failed, or it would have hidden too much), and why; null when it
    /// finished or none ran.
    pub thumbnails_last_run_stopped: Option<String>,
    /// Channels the enrichment source knows.
    pub channels_known: i64,
    /// RFC 3339 time of the newest channel fetch; null if none.
    pub channels_last_fetched: Option<String>,
}

/// How often the job tables are re-counted (a scan of `thumbnail_checks`; job writes of
/// good results do not move the data version, so a timer, not the version, decides).
pub const JOBS_REFRESH: i64 = 60;

/// What the process itself reports beside the database facts (from `metrics`,
/// passed in so that this module depends on nothing).
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Workers busy with a request now, and workers in all.
    pub workers: (usize, usize),
    /// Time since the process started.
    pub uptime: std::time::Duration,
    /// Jobs waiting for the writer thread.
    pub queue_depth: usize,
    /// The rank index's delta and compaction (None when the index is off).
    pub rank_index: Option<RankIndexLive>,
}

/// The rank index's delta (the rows written since its base) and its compaction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RankIndexLive {
    /// Rows changed since the base snapshot.
    pub delta_rows: usize,
    /// Seconds since the first of them (0 when none).
    pub delta_age_seconds: f64,
    /// The delta's stated bound (rows): past it `status` is `degraded`.
    pub delta_bound_rows: usize,
    /// Seconds the running compaction has run, when one does.
    pub compacting_seconds: Option<f64>,
    /// Why the index is behind the writes, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind: Option<String>,
}

/// The shared, periodically refreshed database facts.
pub struct Health {
    db: PathBuf,
    snapshot: RwLock<Facts>,
    /// Set once the first facts are in (see [`Health::wait_first`]).
    first: (std::sync::Mutex<bool>, std::sync::Condvar),
    /// A database file workers still answer from that is no longer the one at the
    /// path (a replaced file waits for its rank index), with its heartbeat: what the
    /// age is then about ([`Health::answering_from`]).
    behind: std::sync::Mutex<Option<(u64, i64)>>,
}

#[derive(Serialize)]
struct HealthBody<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Seconds since the writer's newest heartbeat; null when none was ever seen.
    data_age_seconds: Option<f64>,
    /// The staleness past which `status` is `degraded` (`VIDEOFEED_MAX_STALENESS`);
    /// null when the age does not count (no replica and no setting, or `off`).
    max_staleness_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replica: Option<&'a serde_json::Value>,
    version: &'a str,
    uptime_seconds: u64,
    database: Database<'a>,
    workers: Workers,
    writer_queue_depth: usize,
    jobs: &'a JobStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    rank_index: Option<&'a RankIndexLive>,
    /// Why `status` is `degraded` (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct Database<'a> {
    path: &'a str,
    rows: i64,
    schema_version: i64,
    generation: i64,
    data_version: i64,
    last_write: Option<String>,
    checked_at: String,
    /// Workers still answer from the file the path named before (a replaced file
    /// waiting for its rank index): the age above is that file's.
    answering_previous_file: bool,
}

#[derive(Serialize)]
struct Workers {
    busy: usize,
    total: usize,
}

impl Health {
    /// Health for the database at `db`, with no facts yet (`store::facts` reads them).
    pub fn new(db: PathBuf) -> Arc<Health> {
        Arc::new(Health {
            db,
            snapshot: RwLock::new(Facts::default()),
            first: (std::sync::Mutex::new(false), std::sync::Condvar::new()),
            behind: std::sync::Mutex::new(None),
        })
    }

    /// A worker says which database file it answers from (inode) and that file's
    /// heartbeat, when the file at the path is another one (None once it switched):
    /// the age and `database.answering_previous_file` then describe what it answers.
    pub fn answering_from(&self, behind: Option<(u64, i64)>) {
        *self.behind.lock().unwrap_or_else(PoisonError::into_inner) = behind;
    }

    /// The database path reported.
    pub fn db(&self) -> &std::path::Path {
        &self.db
    }

    /// The last snapshot: the file at the path, or (its heartbeat, and
    /// `answering_previous_file`) the older file workers still answer from.
    pub fn snapshot(&self) -> Facts {
        let mut facts = self.snapshot.read().unwrap_or_else(PoisonError::into_inner).clone();
        let behind = *self.behind.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, heartbeat)) = behind.filter(|(f, _)| *f != facts.file) {
            facts.heartbeat_ms = heartbeat;
            facts.answering_previous_file = true;
        }
        facts
    }

    /// The health answer: (status, JSON body). 200 when the database can be read, else
    /// 503; `status` is `degraded` when the data is older than `max_staleness` (the
    /// writer's heartbeat), and then `strict` answers 503 too.
    /// `staleness` says whether the age counts at all (see [`crate::config::Staleness`]).
    pub fn answer(
        &self,
        live: &Live,
        max_staleness: Duration,
        staleness: crate::config::Staleness,
        strict: bool,
    ) -> (u16, Vec<u8>) {
        let snap = self.snapshot();
        let (busy, total) = live.workers;
        let path = self.db.display().to_string();
        let age = data_age(&snap);
        let counts = match staleness {
            crate::config::Staleness::Always => true,
            crate::config::Staleness::ReplicasOnly => snap.replica.is_some(),
            crate::config::Staleness::Off => false,
        };
        let stale = counts && age.is_some_and(|a| a > max_staleness.as_secs_f64());
        let mut reasons = Vec::new();
        if let (true, Some(a)) = (stale, age) {
            reasons.push(format!(
                "the data is {a:.0} s old, past VIDEOFEED_MAX_STALENESS ({} s)",
                max_staleness.as_secs()
            ));
        }
        reasons.extend(live.rank_index.as_ref().and_then(|r| r.behind.clone()));
        let status = match (&snap.error, reasons.is_empty()) {
            (Some(_), _) => "unavailable",
            (None, false) => "degraded",
            (None, true) => "ok",
        };
        let body = HealthBody {
            status,
            error: snap.error.as_deref(),
            data_age_seconds: age,
            max_staleness_seconds: counts.then_some(max_staleness.as_secs()),
            replica: snap.replica.as_ref(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: live.uptime.as_secs(),
            database: Database {
                path: &path,
                rows: snap.rows,
                schema_version: snap.schema_version,
                generation: snap.generation,
                data_version: snap.changes,
                last_write: (snap.last_write > 0).then(|| crate::timefmt::rfc3339(snap.last_write)),
                checked_at: crate::timefmt::rfc3339(snap.checked_at),
                answering_previous_file: snap.answering_previous_file,
            },
            workers: Workers { busy, total },
            writer_queue_depth: live.queue_depth,
            jobs: &snap.jobs,
            rank_index: live.rank_index.as_ref(),
            reasons,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"status\":\"unavailable\"}".to_vec());
        (if snap.error.is_none() && !(strict && stale) { 200 } else { 503 }, json)
    }

    /// Replaces the facts (the refresher in `store::facts` calls this).
    pub fn set(&self, facts: Facts) {
        *self.snapshot.write().unwrap_or_else(PoisonError::into_inner) = facts;
        let (done, ready) = &self.first;
        let mut done = done.lock().unwrap_or_else(PoisonError::into_inner);
        if !*done {
            *done = true;
            ready.notify_all();
        }
    }

    /// Waits (at most `limit`) until the first facts are read: the health thread reads
    /// them at start, off the path to the first `/feed` answer (counting a million rows
    /// took 60-80 ms of start-up), and what reports them (`/feed/health`,
    /// `/feed/metrics`) waits for them so its first answer is real. Whether they are in.
    pub fn wait_first(&self, limit: std::time::Duration) -> bool {
        let (done, ready) = &self.first;
        let done = done.lock().unwrap_or_else(PoisonError::into_inner);
        let (done, _) = ready.wait_timeout_while(done, limit, |d| !*d).unwrap_or_else(PoisonError::into_inner);
        *done
    }
}
