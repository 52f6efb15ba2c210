//! The write side and the database file: opening and migrating it ([`db`]),
//! validating videos ([`video`]), imports ([`import`]), the serving process's
//! single writer thread ([`writer`]), the job tables ([`job_tables`]), the demo
//! corpus ([`demo`]) and the facts the health answer reports ([`facts`]).
//!
//! [`Store`] is the one read-write connection; only this module opens the
//! database for writing (request workers hand writes to the writer thread).

pub mod db;
pub mod demo;
pub mod facts;
pub mod import;
pub mod job_tables;
pub mod video;
pub mod writer;

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

pub use import::{DEFAULT_BATCH, DELETE_BATCH, ImportOptions, ImportSummary, MAX_LINE_BYTES, Rejection, SyncPlan};
pub use video::{ParseRules, Video, parse_line, parse_line_with};
pub use writer::{Applied, Op};

const UPSERT_SQL: &str = "\
INSERT INTO videos (id, title, channel, duration_seconds, thumbnail, region, published_at, view_count)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (id) DO UPDATE SET
    title = excluded.title, channel = excluded.channel, duration_seconds = excluded.duration_seconds,
    thumbnail = excluded.thumbnail, region = excluded.region, published_at = excluded.published_at,
    view_count = excluded.view_count
WHERE (title, channel, duration_seconds, thumbnail, region, published_at, view_count)
      IS NOT (excluded.title, excluded.channel, excluded.duration_seconds, excluded.thumbnail,
              excluded.region, excluded.published_at, excluded.view_count)";

/// Why a write or an import stopped.
#[derive(Debug)]
pub enum Error {
    /// The database could not be opened or created.
    Db(db::Error),
    /// A write failed; the batch in progress was rolled back.
    Sql(rusqlite::Error),
    /// Reading the input failed.
    Read(io::Error),
    /// `--strict` and a bad line; its batch was rolled back.
    Strict {
        /// The first bad line.
        rejection: Rejection,
        /// What was committed before it.
        committed: ImportSummary,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db(e) => write!(f, "{e}"),
            Error::Sql(e) => write!(f, "write failed, the batch in progress was rolled back: {e}"),
            Error::Read(e) => write!(f, "cannot read the input: {e}"),
            Error::Strict { rejection, committed } => write!(
                f,
                "line {}: {} (--strict: stopped; nothing of this batch was written; earlier batches committed: {} inserted, {} updated)",
                rejection.line, rejection.reason, committed.inserted, committed.updated
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Db(e) => Some(e),
            Error::Sql(e) => Some(e),
            Error::Read(e) => Some(e),
            Error::Strict { .. } => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sql(e)
    }
}

/// Rows written by one batch or one [`Op`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// New videos.
    pub inserted: u64,
    /// Existing videos whose data changed.
    pub updated: u64,
    /// Existing videos sent again unchanged.
    pub unchanged: u64,
    /// Videos removed.
    pub deleted: u64,
}

impl Counts {
    fn add_to(self, summary: &mut ImportSummary) {
        summary.inserted += self.inserted;
        summary.updated += self.updated;
        summary.unchanged += self.unchanged;
    }
}

/// Upserts `videos` inside the caller's transaction. `seen`, when given, holds
/// every id written so far into a table that was empty (a bulk load), and
/// replaces the per-row lookup that tells an insert from an update. `regions`,
/// when given, collects the regions whose feeds changed: a new video's region, an
/// updated video's old and new region, nothing for an unchanged one.
pub(crate) fn upsert_rows(
    conn: &Connection,
    videos: &[Video],
    mut seen: Option<&mut std::collections::HashSet<String>>,
    mut regions: Option<&mut Vec<String>>,
) -> Result<Counts, Error> {
    let mut counts = Counts::default();
    let mut old_region = conn.prepare_cached("SELECT region FROM videos WHERE id = ?1")?;
    let mut upsert = conn.prepare_cached(UPSERT_SQL)?;
    for v in videos {
        let existed: Option<String> = match seen.as_deref_mut() {
            Some(seen) => (!seen.insert(v.id.clone())).then(String::new),
            None => old_region
                .query_row([&v.id], |r| r.get(0))
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?,
        };
        let changed = upsert.execute(rusqlite::params![
            v.id,
            v.title,
            v.channel,
            v.duration_seconds,
            v.thumbnail,
            v.region,
            v.published_at,
            v.view_count
        ])?;
        match (&existed, changed) {
            (None, _) => counts.inserted += 1,
            (Some(_), 0) => counts.unchanged += 1,
            (Some(_), _) => counts.updated += 1,
        }
        if let Some(regions) = regions.as_deref_mut() {
            if existed.is_none() || changed > 0 {
                regions.extend(existed.filter(|r| !r.is_empty()));
                regions.push(v.region.clone());
            }
        }
    }
    Ok(counts)
}

/// The stored video `id`, every field of the import format; None when there is none.
///
/// # Errors
/// The SQLite error when the row cannot be read.
pub fn stored_video(conn: &Connection, id: &str) -> rusqlite::Result<Option<Video>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT id, title, channel, duration_seconds, thumbnail, region, published_at, view_count
         FROM videos WHERE id = ?1",
        [id],
        |r| {
            Ok(Video {
                id: r.get(0)?,
                title: r.get(1)?,
                channel: r.get(2)?,
                duration_seconds: r.get(3)?,
                thumbnail: r.get(4)?,
                region: r.get(5)?,
                published_at: r.get(6)?,
                view_count: r.get(7)?,
            })
        },
    )
    .optional()
}

/// Runs `f` again while it fails with SQLITE_BUSY/LOCKED, up to 6 more times (~4 s of
/// back-off on top of each attempt's busy timeout).
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let mut attempt = 0u64;
    loop {
        match f() {
            Err(Error::Sql(e)) if is_busy(&e) && attempt < 6 => {
                attempt += 1;
                log::warn!("database busy (another writer); retrying the batch ({attempt})");
                std::thread::sleep(Duration::from_millis(200 * attempt));
            }
            other => return other,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// The single writer: the one read-write connection (imports, the demo, the writer thread).
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens or creates the database at `path` for writing (see [`db::open_writer`]).
    ///
    /// # Errors
    /// [`Error::Db`] when it cannot be opened or is not a videofeed database.
    pub fn open(path: &Path) -> Result<Store, Error> {
        Ok(Store { conn: db::open_writer(path).map_err(Error::Db)? })
    }

    /// Number of videos stored.
    ///
    /// # Errors
    /// [`Error::Sql`] if the count fails.
    pub fn count(&self) -> Result<i64, Error> {
        Ok(self.conn.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?)
    }

    /// Upserts `videos` in one transaction, adding to `summary`.
    ///
    /// # Errors
    /// [`Error::Sql`]; nothing of the batch is committed then.
    pub fn write_batch(&mut self, videos: &[Video], summary: &mut ImportSummary) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        let counts = upsert_rows(&tx, videos, None, None)?;
        tx.commit()?;
        counts.add_to(summary);
        Ok(())
    }
}
