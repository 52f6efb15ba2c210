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
pub const SCHEMA_VERSION: i64 = 9;
/// Upgrades, applied in order to an older database: (version it produces, SQL).
pub const MIGRATIONS: &[(i64, &str)] = &[
    (2, include_str!("../../sql/migrations/002_generation.sql")),
    (3, include_str!("../../sql/migrations/003_changes.sql")),
    (4, include_str!("../../sql/migrations/004_thumbnails_channels.sql")),
    (5, include_str!("../../sql/migrations/005_exact_answers.sql")),
    (6, include_str!("../../sql/migrations/006_change_log.sql")),
    (7, include_str!("../../sql/migrations/007_column_changes.sql")),
    (8, include_str!("../../sql/migrations/008_search_text.sql")),
    (9, include_str!("../../sql/migrations/009_browse.sql")),
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

/// The files this process opened at each database path: (path, the database
/// file's inode, its `-wal` file's inode).
static OPENED: std::sync::Mutex<Vec<(PathBuf, u64, u64)>> = std::sync::Mutex::new(Vec::new());

fn wal_of(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Records the database file and the `-wal` now at `path` as the ones this process reads.
fn note_opened(path: &Path) {
    let (file, wal) = (file_id(path), file_id(&wal_of(path)));
    if file == 0 {
        return;
    }
    let mut opened = OPENED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match opened.iter_mut().find(|(p, _, _)| p == path) {
        Some(entry) => *entry = (path.to_path_buf(), file, wal),
        None => opened.push((path.to_path_buf(), file, wal)),
    }
}

/// Why the file at `path` must not be opened now: another file was renamed over
/// the one this process opened there, while the `-wal` beside it (holding frames)
/// is still the one that belongs to the open file. SQLite would read the new file
/// through the old file's frames and index (a malformed database, and SIGBUS in
/// the processes that map the `-shm`): the open file keeps serving instead, until
/// every process has let go of it (a restart), or the content is put in place with
/// `videofeed restore`. None when the path is safe to open (unchanged, or a new
/// file with no `-wal`, or with one of its own).
pub fn replaced_under_its_wal(path: &Path) -> Option<String> {
    let file = file_id(path);
    let wal = wal_of(path);
    let opened = OPENED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (_, was_file, was_wal) = opened.iter().find(|(p, _, _)| p == path)?;
    let frames = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 32);
    (file != 0 && file != *was_file && *was_wal != 0 && file_id(&wal) == *was_wal && frames).then(|| {
        format!(
            "{} was replaced by another file (a rename over it) while {} still belongs to the file that was there: \
             opening the new file through it would corrupt it, so the open file goes on answering. \
             Put a backup's content in place with `videofeed restore --db {} BACKUP` instead; to serve the renamed \
             file, stop every responder on it and start them again",
            path.display(),
            wal.display(),
            path.display()
        )
    })
}

/// At the end of a process that refused a file renamed over `path` (see
/// [`replaced_under_its_wal`]): removes the `-wal` and `-shm` beside it, which belong
/// to the replaced file, so that the next process opens the new file cleanly. The
/// replaced file itself was unlinked by the rename; what its WAL held is gone with it
/// (the writes this process refused were never acknowledged).
pub fn let_go_of_replaced(path: &Path) {
    if replaced_under_its_wal(path).is_none() {
        return;
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if std::fs::remove_file(&side).is_ok() {
            log::warn!(
                "removed {} (it belonged to the file replaced at {}); the next start opens the new file",
                PathBuf::from(side).display(),
                path.display()
            );
        }
    }
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
    if let Some(reason) = replaced_under_its_wal(path) {
        return Err(Error::NotVideofeed { path: path.into(), reason });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open { path: path.into(), source })?;
    let setup = || -> rusqlite::Result<()> {
        register_functions(&conn)?;
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
    note_opened(path);
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
    if let Some(reason) = replaced_under_its_wal(path) {
        return Err(Error::NotVideofeed { path: path.into(), reason });
    }
    let mut conn = Connection::open(path).map_err(|source| Error::Open { path: path.into(), source })?;
    register_functions(&conn).map_err(|e| not_videofeed(path, &e))?;
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
    index_search_text(&conn, path)?;
    // This database's own identity, for the rank index file (search::index::persist_key).
    conn.execute("INSERT OR IGNORE INTO videofeed_meta (key, value) VALUES ('instance', random())", [])?;
    note_opened(path);
    Ok(conn)
}

/// Registers `videofeed_search_text(text)`, the search text of a title or channel
/// ([`crate::text::index_text`]), which the full-text index's triggers write through.
///
/// # Errors
/// SQLite's, when the function cannot be registered.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::{Value, ValueRef};
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("videofeed_search_text", 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Null => Value::Null,
            ValueRef::Text(bytes) => Value::Text(crate::text::index_text(&String::from_utf8_lossy(bytes)).into_owned()),
            ValueRef::Integer(i) => Value::Text(i.to_string()),
            ValueRef::Real(r) => Value::Text(r.to_string()),
            ValueRef::Blob(bytes) => Value::Text(crate::text::index_text(&String::from_utf8_lossy(bytes)).into_owned()),
        })
    })?;
    // The channel's match key (`channel=`), indexed by `videos_channel_key`.
    conn.create_scalar_function("videofeed_channel_key", 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Null => Value::Null,
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                Value::Text(crate::text::channel_key(&String::from_utf8_lossy(bytes)))
            }
            ValueRef::Integer(i) => Value::Text(i.to_string()),
            ValueRef::Real(r) => Value::Text(r.to_string()),
        })
    })
}

/// The last re-indexing of the search text this process did: (videos, time taken).
static REINDEXED: std::sync::Mutex<Option<(i64, Duration)>> = std::sync::Mutex::new(None);

/// The re-indexing of the search text the last [`open_writer`] did, if it did one
/// (after a migration, or a binary with other rules): (videos, time taken).
pub fn take_reindexed() -> Option<(i64, Duration)> {
    REINDEXED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

/// Fills the full-text index with search text made by this binary's rules
/// ([`crate::text::VERSION`]) when it holds none or another version's: after the
/// migration to schema 8, or an upgrade that changed the rules. One transaction;
/// a new generation, so every responder rebuilds its rank index.
fn index_search_text(conn: &Connection, path: &Path) -> Result<(), Error> {
    let have: Option<i64> = conn
        .query_row("SELECT value FROM videofeed_meta WHERE key = 'search_text'", [], |r| r.get(0))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
    if have == Some(crate::text::VERSION) {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let tx = conn.unchecked_transaction()?;
    let videos: i64 = tx.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?;
    tx.execute_batch(
        "INSERT INTO videos_fts (videos_fts) VALUES ('delete-all');
         DELETE FROM channel_keys;
         INSERT INTO channel_keys (name, key) SELECT channel, videofeed_channel_key(channel) FROM videos GROUP BY channel;",
    )?;
    if videos > 0 {
        tx.execute_batch(
            "INSERT INTO videos_fts (rowid, title, channel)
             SELECT rowid, videofeed_search_text(title), videofeed_search_text(channel) FROM videos;
             UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
             WHERE key IN ('generation', 'changes', 'last_write');",
        )?;
    }
    tx.execute(
        "INSERT INTO videofeed_meta (key, value) VALUES ('search_text', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [crate::text::VERSION],
    )?;
    tx.commit()?;
    let took = started.elapsed();
    if videos > 0 {
        log::info!(
            "search text (rules version {}) indexed: {videos} videos in {:.1} s path={}",
            crate::text::VERSION,
            took.as_secs_f64(),
            path.display()
        );
        *REINDEXED.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((videos, took));
    }
    Ok(())
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

/// Where the thumbnail checker records how its last run ended (`<db>.thumbnails.json`:
/// `finished_unix`, `stopped`, `reason`), read back into `/feed/health` and the metrics.
pub fn thumbnail_run_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".thumbnails.json");
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

/// What the data of the database at `path` is, for telling whether two copies hold
/// the same content: every `videofeed_meta` counter except the writer's heartbeat
/// (generation, changes, thumbs, last_write, instance…: each content change moves
/// one), sorted by key; and the heartbeat (Unix ms, 0 when none).
///
/// # Errors
/// [`Error`] when the file cannot be opened or read (a busy follower: try later).
pub fn data_meta(path: &Path) -> Result<(Vec<(String, i64)>, i64), Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open { path: path.into(), source })?;
    conn.busy_timeout(Duration::from_secs(2))?;
    let mut stmt = conn.prepare("SELECT key, value FROM videofeed_meta ORDER BY key")?;
    let mut meta = Vec::new();
    let mut heartbeat = 0;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (key, value) = row?;
        if key == "heartbeat" {
            heartbeat = value;
        } else {
            meta.push((key, value));
        }
    }
    Ok((meta, heartbeat))
}

/// What [`restore`] did.
#[derive(Debug, Clone, Copy)]
pub struct Restored {
    /// Videos in the database afterwards (the backup's).
    pub videos: i64,
    /// The search generation it now reports: past every generation the live
    /// database or the backup ever had, so no cache, ETag or rank index of the
    /// replaced content can be taken for the restored one.
    pub generation: i64,
}

/// Replaces the content of the live database at `live` with the backup at
/// `backup`, while responders keep serving it. Never renames a file over the
/// live path (its `-wal`/`-shm` belong to the open file, and a new file beside
/// them is read through them: a malformed database, or SIGBUS in the readers).
///
/// 1. `VACUUM INTO` a staged copy beside `live` (one snapshot of the backup, even
///    a backup still being written), upgraded to this binary's schema;
/// 2. in the copy, the data version moves past both files' (`generation`,
///    `changes`, `thumbs`), `last_write` is now, `instance` is new and the change
///    log is emptied: every cached answer, ETag and rank index (in memory or in
///    the index file) of the replaced content is recognised as stale, and
///    responders rebuild their rank index (answering through SQL meanwhile);
/// 3. SQLite's backup API copies the staged pages into `live` in one step: one
///    write transaction through the live file's own WAL, so readers see the old
///    content or the new one, never a mix; writers wait for it;
/// 4. `PRAGMA quick_check` on the result; the staged copy is removed.
///
/// # Errors
/// [`Error::Open`] / [`Error::NotVideofeed`] / [`Error::NewerSchema`] for either
/// file; [`Error::Sql`] when the copy cannot be written (disk full) or the live
/// database stays locked by a writer for 30 s. The live database is unchanged then.
pub fn restore(live: &Path, backup: &Path) -> Result<Restored, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let source =
        Connection::open_with_flags(backup, flags).map_err(|e| Error::Open { path: backup.into(), source: e })?;
    source.busy_timeout(Duration::from_secs(5))?;
    let version = user_version(&source, backup)?;
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema { path: backup.into(), found: version });
    }
    if version == 0 {
        return Err(Error::NotVideofeed { path: backup.into(), reason: "it has no videofeed schema version".into() });
    }
    // The live database must be ours too (and is upgraded if it is older).
    let mut target = open_writer(live)?;
    // An empty file of our own beside the live one (O_EXCL, random name): VACUUM INTO fills it.
    let (_, staged) = crate::sys::create_temp_beside(live, "restore", 0o600).map_err(|e| Error::NotVideofeed {
        path: live.into(),
        reason: format!("cannot create a file beside it: {e}"),
    })?;
    let cleanup = |staged: &Path| {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", staged.display()));
        }
    };
    let result = (|| -> Result<Restored, Error> {
        let staged_str = staged.to_str().ok_or_else(|| Error::NotVideofeed {
            path: staged.clone(),
            reason: "the directory's path is not valid UTF-8".into(),
        })?;
        source.execute("VACUUM INTO ?1", [staged_str])?;
        drop(source);
        let live_meta = |key: &str| -> rusqlite::Result<i64> {
            target
                .query_row("SELECT value FROM videofeed_meta WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(0) } else { Err(e) })
        };
        let (live_generation, live_changes, live_thumbs) =
            (live_meta("generation")?, live_meta("changes")?, live_meta("thumbs")?);
        let page_size: i64 = target.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        // The staged copy: this binary's schema, the live file's page size (the backup
        // API cannot change the page size of a WAL database), a data version past both.
        let copy = open_writer(&staged)?;
        copy.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))?;
        let copy_page: i64 = copy.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        if copy_page != page_size {
            copy.execute_batch(&format!("PRAGMA page_size = {page_size}; VACUUM;"))?;
        }
        copy.execute(
            "UPDATE videofeed_meta SET value = CASE key
                 WHEN 'generation' THEN max(value, ?1) + 1
                 WHEN 'changes' THEN max(value, ?2) + 1
                 WHEN 'thumbs' THEN max(value, ?3) + 1
                 WHEN 'last_write' THEN unixepoch()
                 WHEN 'instance' THEN random()
                 ELSE value END
             WHERE key IN ('generation', 'changes', 'thumbs', 'last_write', 'instance')",
            rusqlite::params![live_generation, live_changes, live_thumbs],
        )?;
        copy.execute("DELETE FROM videofeed_changes", [])?;
        let generation: i64 =
            copy.query_row("SELECT value FROM videofeed_meta WHERE key = 'generation'", [], |r| r.get(0))?;
        let videos: i64 = copy.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?;
        // One step: all pages in one write transaction on the live file.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        {
            let backup = rusqlite::backup::Backup::new(&copy, &mut target)?;
            loop {
                match backup.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                        if std::time::Instant::now() > deadline {
                            return Err(Error::NotVideofeed {
                                path: live.into(),
                                reason: "a writer kept the database locked for 30 s; nothing was restored, try again"
                                    .into(),
                            });
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {}
                }
            }
        }
        drop(copy);
        let ok: String = target.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(Error::NotVideofeed {
                path: live.into(),
                reason: format!("quick_check after the restore: {ok}"),
            });
        }
        Ok(Restored { videos, generation })
    })();
    cleanup(&staged);
    result
}

/// Creates a temporary file beside `path` (the database, its index or state file)
/// exclusively, under a random name, with permission bits `mode`: see
/// `sys::create_temp_beside` (the crate-private implementation).
///
/// # Errors
/// I/O errors creating it.
pub fn create_temp_beside(path: &Path, tag: &str, mode: u32) -> std::io::Result<(std::fs::File, PathBuf)> {
    crate::sys::create_temp_beside(path, tag, mode)
}
