//! Reading the facts `/feed/health` reports, on a background thread: once a
//! second it checks that the database file is still there (and the same file),
//! reads the schema version and the counters in `videofeed_meta` on its own
//! read-only connection, and recounts the rows only when the data version
//! moved (the job tables at most once a minute). Any failure marks the
//! database unreadable (health answers 503 with the reason) and drops the
//! connection, so the next round reopens it: a replaced or repaired file
//! recovers by itself.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use rusqlite::Connection;

use crate::obs::health::{Facts, Health, JOBS_REFRESH, JobStats, REFRESH};

/// Health for the database at `db`, not read yet: [`start`] reads it at once on its
/// thread ([`Health::wait_first`] is how a reader waits for that).
pub fn health(db: std::path::PathBuf) -> Arc<Health> {
    Health::new(db)
}

/// Reads the facts once, on the calling thread (when no health thread can be started).
pub fn read_now(health: &Health) {
    refresh(health, &mut None);
}

/// Starts the thread that reads the facts at once, then every [`REFRESH`] until
/// `stop` is set.
///
/// # Errors
/// The OS error if the thread cannot be started.
pub fn start(health: &Arc<Health>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let health = Arc::clone(health);
    thread::Builder::new().name("health".into()).spawn(move || {
        let mut conn = None;
        refresh(&health, &mut conn);
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(REFRESH);
            refresh(&health, &mut conn);
        }
    })?;
    Ok(())
}

/// Reads the database facts once, reusing (or reopening) `conn`.
fn refresh(health: &Health, conn: &mut Option<(Connection, u64)>) {
    let previous = health.snapshot();
    let next = match read(health.db(), conn, &previous) {
        Ok(snap) => snap,
        Err(error) => {
            *conn = None;
            if previous.error.as_deref() != Some(error.as_str()) {
                log::error!("health: the database cannot be read: {error}");
            }
            Facts { error: Some(error), checked_at: crate::timefmt::now_unix(), ..previous }
        }
    };
    if previous.error.is_some() && next.error.is_none() && previous.checked_at > 0 {
        log::info!("health: the database can be read again");
    }
    health.set(next);
}

fn read(db: &Path, conn: &mut Option<(Connection, u64)>, previous: &Facts) -> Result<Facts, String> {
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
            thumbnails_last_run_stopped: read_thumbnail_run(db),
            channels_known: known.unwrap_or(0),
            channels_last_fetched: last_fetched.map(crate::timefmt::rfc3339),
        };
        (jobs, now, changes)
    };
    let replica = read_replica_state(db);
    Ok(Facts {
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
        heartbeat_ms: meta("heartbeat")?.max(replica_data_heartbeat(replica.as_ref(), file)),
        replica,
        answering_previous_file: false,
    })
}

/// The state `videofeed replica` writes beside the served file, if it does (a file
/// being replaced is read whole or not at all: it is renamed into place).
/// Why the last thumbnail check run stopped, when it did (see `db::thumbnail_run_path`).
fn read_thumbnail_run(db: &Path) -> Option<String> {
    let text = std::fs::read(crate::store::db::thumbnail_run_path(db)).ok()?;
    let state: serde_json::Value = serde_json::from_slice(&text).ok()?;
    state.get("stopped").and_then(serde_json::Value::as_bool).filter(|s| *s)?;
    Some(state.get("reason").and_then(serde_json::Value::as_str).unwrap_or("stopped").to_owned())
}

/// The writer's heartbeat `videofeed replica` saw with the same data as the served
/// file `file` (it takes no copy for a heartbeat alone), or 0.
fn replica_data_heartbeat(state: Option<&serde_json::Value>, file: u64) -> i64 {
    let Some(state) = state else { return 0 };
    if state.get("served_file").and_then(serde_json::Value::as_u64) != Some(file) {
        return 0;
    }
    state.get("data_heartbeat_ms").and_then(serde_json::Value::as_i64).unwrap_or(0)
}

fn read_replica_state(db: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read(crate::store::db::replica_state_path(db)).ok()?;
    serde_json::from_slice(&text).ok()
}
