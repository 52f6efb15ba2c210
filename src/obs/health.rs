//! The database facts `/feed/health` reports, kept fresh by one background
//! thread so that answering a health check costs a lock and a small JSON
//! encode (microseconds), never a query.
//!
//! Once a second the thread checks that the database file is still there
//! (and the same file), reads the schema version and the counters in
//! `videofeed_meta` on its own read-only connection, and recounts the rows
//! only when the data version moved (the job tables at most once a minute). Any failure marks the database
//! unreadable (health answers 503 with the reason) and drops the connection,
//! so the next round reopens it: a replaced or repaired file recovers by itself.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

use crate::obs::metrics;

/// How often the health thread looks at the database.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What the last look at the database found.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
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
    /// The identity of the file read (see [`search::file_id`]).
    pub file: u64,
    /// What the background jobs have recorded (re-read at most every [`JOBS_REFRESH`]).
    pub jobs: JobStats,
    /// Unix seconds when `jobs` was read.
    pub jobs_read_at: i64,
    /// The data version when `jobs` was read.
    pub jobs_version: i64,
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
    /// Channels the enrichment source knows.
    pub channels_known: i64,
    /// RFC 3339 time of the newest channel fetch; null if none.
    pub channels_last_fetched: Option<String>,
}

/// How often the job tables are re-counted (a scan of `thumbnail_checks`; job writes of
/// good results do not move the data version, so a timer, not the version, decides).
pub const JOBS_REFRESH: i64 = 60;

/// The shared, periodically refreshed database facts.
pub struct Health {
    db: PathBuf,
    snapshot: RwLock<Snapshot>,
}

#[derive(Serialize)]
struct Answer<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    version: &'a str,
    uptime_seconds: u64,
    database: Database<'a>,
    workers: Workers,
    writer_queue_depth: usize,
    jobs: &'a JobStats,
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
}

#[derive(Serialize)]
struct Workers {
    busy: usize,
    total: usize,
}

impl Health {
    /// Health for the database at `db`, read once now (so the first answer is real).
    pub fn new(db: PathBuf) -> Arc<Health> {
        let health = Arc::new(Health { db, snapshot: RwLock::new(Snapshot::default()) });
        let mut conn = None;
        health.refresh(&mut conn);
        health
    }

    /// The last snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The health answer: (status, JSON body). 200 when the database can be read, else 503.
    pub fn answer(&self) -> (u16, Vec<u8>) {
        let snap = self.snapshot();
        let m = metrics::global();
        let (busy, total) = m.workers();
        let path = self.db.display().to_string();
        let body = Answer {
            status: if snap.error.is_none() { "ok" } else { "unavailable" },
            error: snap.error.as_deref(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: m.uptime().as_secs(),
            database: Database {
                path: &path,
                rows: snap.rows,
                schema_version: snap.schema_version,
                generation: snap.generation,
                data_version: snap.changes,
                last_write: (snap.last_write > 0).then(|| crate::timefmt::rfc3339(snap.last_write)),
                checked_at: crate::timefmt::rfc3339(snap.checked_at),
            },
            workers: Workers { busy, total },
            writer_queue_depth: m.queue_depth(),
            jobs: &snap.jobs,
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"status\":\"unavailable\"}".to_vec());
        (if snap.error.is_none() { 200 } else { 503 }, json)
    }

    /// Starts the thread that refreshes the snapshot every [`REFRESH`] until `stop` is set.
    ///
    /// # Errors
    /// The OS error if the thread cannot be started.
    pub fn start(self: &Arc<Health>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
        let health = Arc::clone(self);
        thread::Builder::new().name("health".into()).spawn(move || {
            let mut conn = None;
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(REFRESH);
                health.refresh(&mut conn);
            }
        })?;
        Ok(())
    }

    /// Reads the database facts once, reusing (or reopening) `conn`.
    fn refresh(&self, conn: &mut Option<(Connection, u64)>) {
        let previous = self.snapshot();
        let next = match read(&self.db, conn, &previous) {
            Ok(snap) => snap,
            Err(error) => {
                *conn = None;
                if previous.error.as_deref() != Some(error.as_str()) {
                    log::error!("health: the database cannot be read: {error}");
                }
                Snapshot { error: Some(error), checked_at: crate::timefmt::now_unix(), ..previous }
            }
        };
        if previous.error.is_some() && next.error.is_none() && previous.checked_at > 0 {
            log::info!("health: the database can be read again");
        }
        *self.snapshot.write().unwrap_or_else(PoisonError::into_inner) = next;
    }
}

fn read(db: &Path, conn: &mut Option<(Connection, u64)>, previous: &Snapshot) -> Result<Snapshot, String> {
    let file = crate::store::db::file_id(db);
    if file == 0 {
        return Err(format!("{} does not exist or cannot be read", db.display()));
    }
    if conn.as_ref().is_some_and(|(_, f)| *f != file) {
        *conn = None;
    }
    if conn.is_none() {
        *conn = Some((crate::store::db::open_reader(db).map_err(|e| e.to_string())?, file));
    }
    let Some((c, _)) = conn.as_ref() else { return Err("no connection".into()) };
    let sql_err = |e: rusqlite::Error| format!("reading {}: {e}", db.display());
    let schema_version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql_err)?;
    let meta = |key: &str| -> Result<i64, String> {
        c.query_row("SELECT value FROM videofeed_meta WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(0) } else { Err(e) })
            .map_err(sql_err)
    };
    let (generation, changes, last_write) = (meta("generation")?, meta("changes")?, meta("last_write")?);
    let unchanged =
        previous.error.is_none() && previous.checked_at > 0 && previous.file == file && previous.changes == changes;
    let rows = if unchanged {
        previous.rows
    } else {
        c.query_row("SELECT count(*) FROM videos", [], |r| r.get(0)).map_err(sql_err)?
    };
    let now = crate::timefmt::now_unix();
    // A scan of thumbnail_checks: at most every 10 s while the data moves, else every minute.
    let age = now - previous.jobs_read_at;
    let fresh = previous.jobs_read_at > 0
        && previous.file == file
        && age < JOBS_REFRESH
        && (previous.jobs_version == changes || age < 10);
    let (jobs, jobs_read_at, jobs_version) = if fresh {
        (previous.jobs.clone(), previous.jobs_read_at, previous.jobs_version)
    } else {
        let (checked, broken, last_checked): (i64, Option<i64>, Option<i64>) = c
            .query_row("SELECT count(*), sum(ok = 0), max(checked_at) FROM thumbnail_checks", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sql_err)?;
        let (known, last_fetched): (Option<i64>, Option<i64>) = c
            .query_row("SELECT sum(found), max(fetched_at) FROM channels", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_err)?;
        let jobs = JobStats {
            thumbnails_checked: checked,
            thumbnails_broken: broken.unwrap_or(0),
            thumbnails_last_checked: last_checked.map(crate::timefmt::rfc3339),
            thumbnails_last_checked_unix: last_checked.unwrap_or(0),
            channels_known: known.unwrap_or(0),
            channels_last_fetched: last_fetched.map(crate::timefmt::rfc3339),
        };
        (jobs, now, changes)
    };
    Ok(Snapshot {
        error: None,
        rows,
        schema_version,
        generation,
        changes,
        last_write,
        checked_at: now,
        file,
        jobs,
        jobs_read_at,
        jobs_version,
    })
}
