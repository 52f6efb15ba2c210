//! Opening the SQLite database: the embedded schema, its version check, and
//! the two ways to open (read-only for serving, one writer for imports).
//!
//! Only `store`, `search` (and the FFI counters in `sys`) use rusqlite. Serving code gets
//! read-only connections from [`open_reader`]; [`open_writer`] is for the
//! admin commands (`init`, `import`, `demo`) and creates the schema when the
//! file is new. The schema version lives in `PRAGMA user_version`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rusqlite::Connection;
use rusqlite::OpenFlags;

/// The schema, applied as one transaction to a new database.
pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");
/// The `user_version` this binary writes and expects.
pub const SCHEMA_VERSION: i64 = 7;
/// Upgrades, applied in order to an older database: (version it produces, SQL).
pub const MIGRATIONS: &[(i64, &str)] = &[
    (2, include_str!("../../sql/migrations/002_generation.sql")),
    (3, include_str!("../../sql/migrations/003_changes.sql")),
    (4, include_str!("../../sql/migrations/004_thumbnails_channels.sql")),
    (5, include_str!("../../sql/migrations/005_exact_answers.sql")),
    (6, include_str!("../../sql/migrations/006_change_log.sql")),
    (7, include_str!("../../sql/migrations/007_column_changes.sql")),
];

/// Page cache per read-only connection, in KiB (SQLite's negative `cache_size`).
pub const READER_CACHE_KIB: i64 = 2048;

/// Why a database could not be opened or is not usable.
#[derive(Debug)]
pub enum Error {
    /// SQLite could not open the file at all.
    Open {
        /// The database path.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file opened but is not a videofeed database (or is corrupt).
    NotVideofeed {
        /// The database path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A read-only user cannot create the `-shm`/`-wal` files a WAL database needs beside it.
    SharedMemoryNotWritable {
        /// The database path.
        path: PathBuf,
    },
    /// The file was written by a newer videofeed.
    NewerSchema {
        /// The database path.
        path: PathBuf,
        /// The `user_version` found.
        found: i64,
    },
    /// A statement failed while creating or checking the schema.
    Sql(rusqlite::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open { path, source } => write!(
                f,
                "cannot open database {}: {source} (check the path and permissions, or create it with `videofeed init --db {}`)",
                path.display(),
                path.display()
            ),
            Error::NotVideofeed { path, reason } => write!(
                f,
                "{} is not a usable videofeed database: {reason} (point --db/VIDEOFEED_DB at the right file, or create one with `videofeed init --db PATH`)",
                path.display()
            ),
            Error::SharedMemoryNotWritable { path } => {
                let dir = path.parent().map_or_else(|| ".".into(), |d| d.display().to_string());
                write!(
                    f,
                    "cannot read {}: it is in WAL mode and this user cannot create its -shm/-wal files in {dir} (give the serving user write access to that directory, e.g. `chgrp nogroup {dir} && chmod g+rwx {dir}`)",
                    path.display()
                )
            }
            Error::NewerSchema { path, found } => write!(
                f,
                "{} has schema version {found}, this videofeed knows only up to {SCHEMA_VERSION}: upgrade videofeed",
                path.display()
            ),
            Error::Sql(e) => write!(f, "database error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open { source, .. } => Some(source),
            Error::Sql(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sql(e)
    }
}

/// The identity of the file at `path` (its inode; 0 when it cannot be read). An
/// operator's `mv new.db videos.db` gives the path a new identity.
pub fn file_id(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// Opens `path` read-only for serving and checks that it is a videofeed database.
///
/// The connection is `SQLITE_OPEN_READ_ONLY` with `query_only` on, keeps a
/// 2 MiB page cache (the OS page cache holds the rest of the file; a memory map
/// per connection would count the file once per worker in resident memory),
/// and waits briefly rather than failing while a writer checkpoints.
///
/// # Errors
/// [`Error::Open`] when the file is missing or unreadable; [`Error::NotVideofeed`]
/// or [`Error::NewerSchema`] when it is not a database this binary can serve.
pub fn open_reader(path: &Path) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open { path: path.into(), source })?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(Duration::from_millis(500))?;
        // FTS5's vocabulary (term, rows), for the typo correction; a temp table must
        // be created before query_only forbids it.
        conn.execute_batch("CREATE VIRTUAL TABLE temp.videofeed_vocab USING fts5vocab(main, 'videos_fts', 'row')")?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(())
    };
    setup().map_err(|e| not_videofeed(path, &e))?;
    check(&conn, path)?;
    Ok(conn)
}

/// Opens (creating if needed) `path` as the single writer and makes sure the schema is there.
///
/// WAL mode, `synchronous=FULL` (every commit is fsynced to the WAL before it
/// returns, so an acknowledged write survives a power cut; with group commit that
/// is one sync per group, measured in `docs/benchmarks.md` §12), and
/// a 5 s busy timeout so a concurrent writer makes this one wait, not fail.
///
/// # Errors
/// As for [`open_reader`], plus [`Error::Sql`] when the schema cannot be written.
pub fn open_writer(path: &Path) -> Result<Connection, Error> {
    let mut conn = Connection::open(path).map_err(|source| Error::Open { path: path.into(), source })?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(|e| not_videofeed(path, &e))?;
    let mode: String =
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(|e| not_videofeed(path, &e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("journal_mode is {mode}, not wal: readers may wait on writers");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let version = user_version(&conn, path)?;
    if version == 0 {
        let has_tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if has_tables > 0 {
            return Err(Error::NotVideofeed {
                path: path.into(),
                reason: "it already holds other tables and no videofeed schema version".into(),
            });
        }
        let tx = conn.transaction()?;
        tx.execute_batch(SCHEMA_SQL)?;
        tx.commit()?;
        log::info!("schema created path={} version={SCHEMA_VERSION}", path.display());
    } else if version < SCHEMA_VERSION {
        for (target, sql) in MIGRATIONS.iter().filter(|(target, _)| *target > version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.commit()?;
            log::info!("schema migrated path={} version={target}", path.display());
        }
    }
    check(&conn, path)?;
    // This database's own identity, for the rank index file (search::index::persist_key).
    conn.execute("INSERT OR IGNORE INTO videofeed_meta (key, value) VALUES ('instance', random())", [])?;
    Ok(conn)
}

/// Stamps the writer's heartbeat (Unix milliseconds) in `videofeed_meta`: what a
/// replica's `/feed/health` measures the age of its data by (`data_age_seconds`).
/// Not a change to any video: no generation, data version, ETag or cache moves.
///
/// # Errors
/// SQLite's, e.g. busy past the busy timeout.
pub fn stamp_heartbeat(conn: &Connection) -> rusqlite::Result<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    conn.execute(
        "INSERT INTO videofeed_meta (key, value) VALUES ('heartbeat', ?1) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [now],
    )?;
    Ok(now)
}

/// Where `videofeed replica` keeps its state for `/feed/health`: `<db>.replica.json`.
pub fn replica_state_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".replica.json");
    std::path::PathBuf::from(name)
}

/// Stamps the heartbeat of the database at `path` every `every` until `stop` is set
/// (or once, when `every` is zero); a failure is logged (the first, and then each
/// change of error) and retried at the next beat. Returns the stamps written.
pub fn heartbeat_loop(path: &Path, every: Duration, stop: &std::sync::atomic::AtomicBool) -> u64 {
    use std::sync::atomic::Ordering;
    let mut conn: Option<Connection> = None;
    let mut last_error = String::new();
    let mut stamps = 0;
    loop {
        if conn.is_none() {
            match open_writer(path) {
                Ok(c) => conn = Some(c),
                Err(e) if e.to_string() != last_error => {
                    log::warn!("heartbeat: cannot open {} for writing: {e}", path.display());
                    last_error = e.to_string();
                }
                Err(_) => {}
            }
        }
        if let Some(c) = &conn {
            match stamp_heartbeat(c) {
                Ok(_) => {
                    stamps += 1;
                    last_error.clear();
                }
                Err(e) => {
                    if e.to_string() != last_error {
                        log::warn!("heartbeat: cannot stamp {}: {e}", path.display());
                        last_error = e.to_string();
                    }
                    conn = None;
                }
            }
        }
        if every.is_zero() {
            return stamps;
        }
        let until = std::time::Instant::now() + every;
        while std::time::Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return stamps;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// How often a writer stamps the heartbeat (`serve` with the write API on, `videofeed heartbeat`).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

fn not_videofeed(path: &Path, e: &rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
        return Error::SharedMemoryNotWritable { path: path.into() };
    }
    Error::NotVideofeed { path: path.into(), reason: e.to_string() }
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| not_videofeed(path, &e))
}

/// Checks the schema version and that the tables the feed needs exist.
fn check(conn: &Connection, path: &Path) -> Result<(), Error> {
    let version = user_version(conn, path)?;
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema { path: path.into(), found: version });
    }
    if version < SCHEMA_VERSION {
        return Err(Error::NotVideofeed {
            path: path.into(),
            reason: format!(
                "schema version {version} is older than {SCHEMA_VERSION}: upgrade it in place with `videofeed init --db {}`",
                path.display()
            ),
        });
    }
    conn.query_row("SELECT count(*) FROM videos_fts WHERE videos_fts MATCH 'x' LIMIT 1", [], |r| r.get::<_, i64>(0))
        .map_err(|e| not_videofeed(path, &e))?;
    conn.query_row("SELECT rowid FROM videos LIMIT 1", [], |_| Ok(()))
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(()) } else { Err(e) })
        .map_err(|e| not_videofeed(path, &e))?;
    Ok(())
}

/// Writes a consistent copy of the database at `path` to `out` with `VACUUM INTO`,
/// while it serves and while imports run (a read transaction sees one snapshot).
///
/// # Errors
/// [`Error::Open`] or [`Error::NotVideofeed`] for the source; [`Error::Sql`] when `out`
/// exists already or cannot be written.
pub fn backup(path: &Path, out: &Path) -> Result<(), Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open { path: path.into(), source })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    check(&conn, path)?;
    let target = out
        .to_str()
        .ok_or_else(|| Error::NotVideofeed { path: out.into(), reason: "the backup path is not valid UTF-8".into() })?;
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(())
}
