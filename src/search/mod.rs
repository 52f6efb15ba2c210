//! Read-only search: one SQLite connection per worker, bm25-ranked.
//!
//! Two paths give the same answer. The SQL path ranks with
//! `bm25(videos_fts, 8.0, 2.0)` (title weighted 8, channel 2), keeps rows
//! whose region is the requested one or `GLOBAL`, and breaks ties by row id
//! so the order is deterministic. The fast path asks the shared in-memory
//! [`RankIndex`] (see [`crate::search::rank`]) for the same top rows, then reads them
//! by row id in the same read transaction in which it checked that the
//! database generation is the one the index was built from; for any other
//! generation, or a query the index cannot rank exactly, the SQL path answers
//! and a rebuild starts in the background. `score` is the negated bm25 (higher
//! is better). Statements are prepared once per connection. No socket I/O; no writes.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::Serialize;

pub mod rank;
pub mod tokenize;

use crate::http::request::{FeedQuery, Sort};
use crate::store::db;
use rank::{Phrase, Snapshot, Vocabulary};

/// What every result row carries besides the video: the last thumbnail check of
/// its current thumbnail and the channel's enrichment data (columns 7-13; column 6
/// is the rank). Joined by primary key, so it costs two lookups per row shown.
const EXTRAS: &str = "t.ok, t.alternative, c.display_name, c.avatar_url, c.verified, c.subscriber_count";
const EXTRA_JOINS: &str = "LEFT JOIN thumbnail_checks t ON t.video_id = v.id AND t.url = v.thumbnail \
     LEFT JOIN channels c ON c.name = v.channel AND c.found = 1";

/// The ranked search. `?1` match expression, `?2` region, `?3` limit, `?4` offset;
/// `{hidden}` is [`ThumbnailPolicy::hidden_sql`].
const FEED_SQL: &str = "\
SELECT v.id, v.title, v.channel, v.duration_seconds, v.thumbnail, v.region,
       bm25(videos_fts, 8.0, 2.0) AS rank, {extras}
FROM videos_fts JOIN videos AS v ON v.rowid = videos_fts.rowid {joins}
WHERE videos_fts MATCH ?1 AND v.region IN (?2, 'GLOBAL') AND NOT {hidden}
ORDER BY rank, v.rowid
LIMIT ?3 OFFSET ?4";

/// The filtered search (channel, durations, order): `?1` match, `?2` region, `?3` limit,
/// `?4` offset, `?5` channel or NULL, `?6` min duration or NULL, `?7` max duration or NULL;
/// `{order}` is one of the fixed ORDER BY clauses below. Always SQL-ranked.
const FILTERED_SQL: &str = "\
SELECT v.id, v.title, v.channel, v.duration_seconds, v.thumbnail, v.region,
       bm25(videos_fts, 8.0, 2.0) AS rank, {extras}
FROM videos_fts JOIN videos AS v ON v.rowid = videos_fts.rowid {joins}
WHERE videos_fts MATCH ?1 AND v.region IN (?2, 'GLOBAL') AND NOT {hidden}
  AND (?5 IS NULL OR v.channel = ?5)
  AND (?6 IS NULL OR v.duration_seconds >= ?6)
  AND (?7 IS NULL OR v.duration_seconds <= ?7)
ORDER BY {order}
LIMIT ?3 OFFSET ?4";

/// How the feed treats a video whose current thumbnail was found broken by
/// `videofeed check-thumbnails` (`VIDEOFEED_FALLBACK_THUMBNAIL`,
/// `VIDEOFEED_BROKEN_THUMBNAILS`). It never shows the broken URL: it shows the
/// same video's alternative checked good (YouTube's `mqdefault`), else the
/// fallback, else leaves the video out; with `omit` it always leaves it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThumbnailPolicy {
    /// The image shown instead of a broken thumbnail without a good alternative.
    pub fallback: Option<String>,
    /// Leave videos with a broken thumbnail out of the feed altogether.
    pub omit: bool,
}

impl ThumbnailPolicy {
    /// The condition on a broken check `h` that makes its video left out; None when no
    /// video is (a fallback image replaces every broken thumbnail).
    fn left_out(&self) -> Option<&'static str> {
        match (self.omit, &self.fallback) {
            (true, _) => Some("h.ok = 0"),
            (false, Some(_)) => None,
            (false, None) => Some("h.ok = 0 AND h.alternative IS NULL"),
        }
    }

    /// An SQL condition over `v` (a `videos` row): true for videos the feed leaves out.
    pub fn hidden_sql(&self) -> String {
        self.left_out().map_or_else(
            || "0".to_owned(),
            |cond| {
                format!(
                    "EXISTS (SELECT 1 FROM thumbnail_checks h WHERE h.video_id = v.id AND h.url = v.thumbnail AND {cond})"
                )
            },
        )
    }

    /// The row ids of the videos left out, driven from the broken checks; None when none are.
    fn hidden_rowids_sql(&self) -> Option<String> {
        self.left_out().map(|cond| {
            format!(
                "SELECT v.rowid FROM thumbnail_checks h \
                 JOIN videos v ON v.id = h.video_id AND v.thumbnail = h.url WHERE {cond}"
            )
        })
    }

    fn sql(&self, template: &str) -> String {
        template.replace("{extras}", EXTRAS).replace("{joins}", EXTRA_JOINS).replace("{hidden}", &self.hidden_sql())
    }
}

/// The database generation (bumped by triggers on every search-relevant change).
const GENERATION_SQL: &str = "SELECT value FROM videofeed_meta WHERE key = 'generation'";

/// The data version and the time of the last write (see `sql/schema.sql`).
const DATA_VERSION_SQL: &str = "SELECT (SELECT value FROM videofeed_meta WHERE key = 'changes'), \
     (SELECT value FROM videofeed_meta WHERE key = 'last_write')";

/// Which data an answer was made from: bumped by any change to any video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataVersion {
    /// The `changes` counter.
    pub changes: i64,
    /// Unix seconds of the last write; 0 when unknown (no write since the schema was created).
    pub last_write: i64,
}

/// One result row by row id, for the fast path.
const ROW_SQL: &str = "SELECT v.id, v.title, v.channel, v.duration_seconds, v.thumbnail, v.region, 0.0, {extras} \
     FROM videos AS v {joins} WHERE v.rowid = ?1";

/// Words the typo fallback replaced: (typed token, known word).
pub type Corrections = Vec<(String, String)>;

/// Default query time limit, in milliseconds.
pub const DEFAULT_QUERY_TIMEOUT_MS: u64 = 2000;

/// The tokenizer of `videos_fts` (sql/schema.sql); queries are tokenized by FTS5 itself with it.
pub const TOKENIZE: &str = "unicode61 remove_diacritics 2";

/// One result row, serialised as-is into the `/feed` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedItem {
    /// The video id.
    pub id: String,
    /// The title.
    pub title: String,
    /// The channel name.
    pub channel: String,
    /// Length in seconds.
    pub duration_seconds: i64,
    /// Thumbnail URL.
    pub thumbnail: String,
    /// The video's region: the requested one or `GLOBAL`.
    pub region: String,
    /// Negated bm25: higher is a better match.
    pub score: f64,
    /// The channel's display name, when the enrichment source knows the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_display_name: Option<String>,
    /// The channel's avatar URL, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_avatar: Option<String>,
    /// Whether the channel is verified, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_verified: Option<bool>,
    /// The channel's subscriber count, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_subscribers: Option<i64>,
}

/// Why a search failed.
#[derive(Debug)]
pub enum Error {
    /// The database could not be opened or is not a videofeed database.
    Open(db::Error),
    /// SQLite was busy or locked past the busy timeout; worth retrying soon.
    Busy(rusqlite::Error),
    /// Any other SQLite failure (I/O error, corruption, a file replaced under us).
    Sql(rusqlite::Error),
    /// The rank index could not be built from the database.
    Index(String),
    /// The query ran past the query time limit and was cut off.
    TimedOut(std::time::Duration),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(e) => write!(f, "{e}"),
            Error::Busy(e) => write!(f, "database busy: {e}"),
            Error::Sql(e) => write!(f, "search failed: {e}"),
            Error::Index(e) => write!(f, "rank index: {e}"),
            Error::TimedOut(limit) => write!(f, "the query ran longer than {} ms and was stopped", limit.as_millis()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open(e) => Some(e),
            Error::Busy(e) | Error::Sql(e) => Some(e),
            Error::Index(_) | Error::TimedOut(_) => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy(e),
            _ => Error::Sql(e),
        }
    }
}

/// What every reader of one database shares: the in-memory rank index (the current
/// snapshot, rebuilt in the background whenever the database generation moves on),
/// the vocabulary the typo correction reads when no current snapshot is at hand, and
/// the set of row ids the thumbnail policy leaves out. With the rank index off
/// ([`RankIndex::disabled`]) no snapshot is ever built and every query is ranked by
/// SQL; answers are the same either way.
pub struct RankIndex {
    db: PathBuf,
    /// Whether snapshots are built at all (`VIDEOFEED_RANK_INDEX`).
    enabled: bool,
    /// The snapshot and the identity of the file it was built from.
    current: Mutex<Option<(u64, Arc<Snapshot>)>>,
    building: AtomicBool,
    /// Videos this policy leaves out are skipped when ranking (see [`RankIndex::hidden`]).
    policy: ThumbnailPolicy,
    /// The row ids `policy` leaves out, for one (file, generation, thumbs).
    hidden: Mutex<Option<(HiddenVersion, Arc<rank::Hidden>)>>,
    /// The vocabulary for one (file, generation), read from `fts5vocab` when needed.
    vocabulary: Mutex<Option<(u64, i64, Arc<Vocabulary>)>>,
    /// The (file, generation) whose build failed: not tried again until either moves.
    failed: Mutex<Option<(u64, i64)>>,
}

/// What the set of videos left out depends on: (file, generation, thumbs).
type HiddenVersion = (u64, i64, i64);

/// Clears the `building` flag however the builder thread ends (a panic included).
struct Building<'a>(&'a AtomicBool);

impl Drop for Building<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl RankIndex {
    /// An empty index for the database at `db`; call [`RankIndex::refresh`] to build it.
    pub fn new(db: PathBuf) -> Arc<RankIndex> {
        RankIndex::with_policy(db, ThumbnailPolicy::default())
    }

    /// As [`RankIndex::new`], leaving out the videos `policy` leaves out.
    pub fn with_policy(db: PathBuf, policy: ThumbnailPolicy) -> Arc<RankIndex> {
        RankIndex::make(db, policy, true)
    }

    /// Shared state without a rank index: every query is ranked by SQL.
    pub fn disabled(db: PathBuf, policy: ThumbnailPolicy) -> Arc<RankIndex> {
        RankIndex::make(db, policy, false)
    }

    fn make(db: PathBuf, policy: ThumbnailPolicy, enabled: bool) -> Arc<RankIndex> {
        Arc::new(RankIndex {
            db,
            enabled,
            current: Mutex::new(None),
            building: AtomicBool::new(false),
            policy,
            hidden: Mutex::new(None),
            vocabulary: Mutex::new(None),
            failed: Mutex::new(None),
        })
    }

    /// Whether snapshots are built.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The row ids the policy leaves out at (`file`, `generation`, `thumbs`), read in
    /// `tx` when the cached set is for another version. `generation` moves when rows
    /// come or go, `thumbs` when a check or a video's thumbnail changes (schema 5), so
    /// the set is always the one SQL's `NOT EXISTS` would give; thumbnail results never
    /// invalidate the index itself (a rebuild costs seconds per million videos), and
    /// reloading this set costs one scan of the broken checks (a partial index).
    fn hidden(&self, tx: &Connection, version: HiddenVersion) -> Result<Arc<rank::Hidden>, Error> {
        let mut cached = self.hidden.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((v, set)) = cached.as_ref() {
            if *v == version {
                return Ok(Arc::clone(set));
            }
        }
        let set = match self.policy.hidden_rowids_sql() {
            None => rank::Hidden::default(),
            Some(sql) => {
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
                rank::Hidden::from_rowids(rows.collect::<Result<Vec<_>, _>>()?)
            }
        };
        let set = Arc::new(set);
        *cached = Some((version, Arc::clone(&set)));
        Ok(set)
    }

    /// The vocabulary at (`file`, `generation`): the cached one, else read in `tx`
    /// (a full pass over FTS5's index: ~0.2 s per million videos, once per generation).
    fn vocabulary(&self, tx: &Connection, file: u64, generation: i64) -> Result<Arc<Vocabulary>, Error> {
        let mut cached = self.vocabulary.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((f, g, v)) = cached.as_ref() {
            if (*f, *g) == (file, generation) {
                return Ok(Arc::clone(v));
            }
        }
        let started = Instant::now();
        let mut stmt = tx.prepare_cached(VOCABULARY_SQL)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut pairs = Vec::new();
        for row in rows {
            let (term, docs) = row?;
            pairs.push((term, u32::try_from(docs).unwrap_or(u32::MAX)));
        }
        let vocabulary = Arc::new(Vocabulary::from_sorted(pairs).map_err(|e| Error::Index(e.to_string()))?);
        log::debug!(
            "vocabulary read generation={generation} terms={} ms={}",
            vocabulary.len(),
            started.elapsed().as_millis()
        );
        *cached = Some((file, generation, Arc::clone(&vocabulary)));
        Ok(vocabulary)
    }

    /// The current snapshot, if one has been built.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|(_, s)| Arc::clone(s))
    }

    /// The snapshot of the file `file` (see [`file_id`]) at `generation`; otherwise
    /// None, and a rebuild starts (when the index is enabled).
    fn snapshot_at(self: &Arc<Self>, file: u64, generation: i64) -> Option<Arc<Snapshot>> {
        if !self.enabled {
            return None;
        }
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match current {
            Some((built_from, snap)) if built_from == file && snap.generation() == generation => Some(snap),
            _ => {
                let failed = *self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if failed != Some((file, generation)) {
                    self.refresh();
                }
                None
            }
        }
    }

    /// Builds the snapshot now, on this thread (benchmarks, tools).
    ///
    /// # Errors
    /// [`Error`] when the database cannot be read.
    pub fn build_now(&self) -> Result<(), Error> {
        let file = file_id(&self.db);
        let snap = load(&self.db)?;
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((file, Arc::new(snap)));
        Ok(())
    }

    /// Starts a background rebuild unless one is running (or the index is disabled).
    /// Queries are ranked by SQL meanwhile, with the same answers.
    pub fn refresh(self: &Arc<Self>) {
        if !self.enabled || self.building.swap(true, Ordering::SeqCst) {
            return;
        }
        let index = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("rank-index".into()).spawn(move || {
            let _building = Building(&index.building);
            // A panic in the loader must not leave the flag set (no rebuild ever again).
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index.rebuild_until_current()));
            if outcome.is_err() {
                log::error!("rank index builder panicked; SQL ranking until the next write");
                let failed = (file_id(&index.db), current_generation(&index.db).unwrap_or(i64::MIN));
                *index.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(failed);
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start the rank index builder: {e}");
            self.building.store(false, Ordering::SeqCst);
        }
    }

    /// Builds snapshots until one matches the database (the builder thread's loop).
    fn rebuild_until_current(&self) {
        loop {
            let started = Instant::now();
            let file = file_id(&self.db);
            #[cfg(feature = "test-hooks")]
            if std::env::var_os("VIDEOFEED_TEST_PANIC_INDEX_BUILD").is_some_and(|v| v == "once")
                && !PANICKED_ONCE.swap(true, Ordering::SeqCst)
            {
                crate::http::handler::test_hook_panic("rank index build");
            }
            match load(&self.db) {
                Ok(snap) => {
                    log::info!(
                        "rank index ready generation={} terms={} postings={} heap_mb={} ms={}",
                        snap.generation(),
                        snap.term_count(),
                        snap.posting_count(),
                        snap.heap_bytes() / (1 << 20),
                        started.elapsed().as_millis()
                    );
                    let generation = snap.generation();
                    *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((file, Arc::new(snap)));
                    crate::sys::trim_heap();
                    // Writes during the build: go again, or stop when up to date. Under a
                    // steady stream of writes, rest as long as a build took between builds,
                    // so rebuilding never takes more than half a core (SQL answers meanwhile).
                    if file_id(&self.db) == file && current_generation(&self.db).is_ok_and(|g| g == generation) {
                        return;
                    }
                    std::thread::sleep(started.elapsed());
                }
                Err(e) => {
                    log::warn!("rank index not built, SQL ranking until the next write: {e}");
                    let generation = current_generation(&self.db).unwrap_or(i64::MIN);
                    *self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((file, generation));
                    return;
                }
            }
        }
    }
}

/// Test hook: the index builder panics once (`VIDEOFEED_TEST_PANIC_INDEX_BUILD=once`).
#[cfg(feature = "test-hooks")]
static PANICKED_ONCE: AtomicBool = AtomicBool::new(false);

/// The identity of the file at `path` (its inode; 0 when it cannot be read). An
/// operator's `mv new.db videos.db` gives the path a new identity.
pub fn file_id(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m))
}

fn open_plain_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    Ok(conn)
}

fn current_generation(path: &Path) -> rusqlite::Result<i64> {
    open_plain_reader(path)?.query_row(GENERATION_SQL, [], |r| r.get(0))
}

/// Builds a snapshot from FTS5's own tokens, in one read transaction.
fn load(path: &Path) -> Result<Snapshot, Error> {
    let conn = open_plain_reader(path)?;
    conn.execute_batch(
        "CREATE VIRTUAL TABLE temp.vf_instances USING fts5vocab(main, 'videos_fts', 'instance');
         CREATE VIRTUAL TABLE temp.vf_terms USING fts5vocab(main, 'videos_fts', 'row');",
    )?;
    let tx = conn.unchecked_transaction()?;
    let generation: i64 = tx.query_row(GENERATION_SQL, [], |r| r.get(0))?;
    let n_rows: i64 = tx.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?;
    let mut builder = rank::Builder::new(generation, n_rows);
    {
        let mut stmt = tx.prepare("SELECT rowid, region FROM videos")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let region: String = row.get(1)?;
            builder.set_region(row.get(0)?, &region).map_err(|e| Error::Index(e.to_string()))?;
        }
    }
    {
        // Token counts per column, as FTS5 stores them (its `D` in bm25).
        let mut stmt = tx.prepare("SELECT id, sz FROM videos_fts_docsize")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let sizes = row.get_ref(1)?.as_blob().map_err(|e| Error::Index(e.to_string()))?;
            let (title, rest) = varint(sizes);
            let (channel, _) = varint(rest);
            builder.set_sizes(row.get(0)?, title, channel).map_err(|e| Error::Index(e.to_string()))?;
        }
    }
    let terms: i64 = tx.query_row("SELECT count(*) FROM temp.vf_terms", [], |r| r.get(0))?;
    builder.begin_terms(usize::try_from(terms).unwrap_or(usize::MAX));
    let mut stmt = tx.prepare("SELECT term, doc, col = 'channel', offset FROM temp.vf_instances")?;
    let mut rows = stmt.query([])?;
    let mut term = String::new();
    let mut instances: Vec<rank::Instance> = Vec::new();
    let mut flush = |term: &str, instances: &mut Vec<rank::Instance>| -> Result<(), Error> {
        if !instances.is_empty() {
            instances.sort_by_key(|i| i.rowid);
            builder.add_term(term, instances).map_err(|e| Error::Index(e.to_string()))?;
            instances.clear();
        }
        Ok(())
    };
    while let Some(row) = rows.next()? {
        let t = row.get_ref(0)?.as_str().map_err(|e| Error::Index(e.to_string()))?;
        if t != term {
            flush(&term, &mut instances)?;
            term.clear();
            term.push_str(t);
        }
        let column = u8::from(row.get::<_, bool>(2)?);
        let offset = u32::try_from(row.get::<_, i64>(3)?).unwrap_or(u32::MAX);
        instances.push(rank::Instance { rowid: row.get(1)?, column, offset });
    }
    flush(&term, &mut instances)?;
    drop(rows);
    drop(stmt);
    Ok(builder.finish())
}

/// Rows to rank for a page: those skipped, those shown, and one more that says a next page exists.
fn wanted(query: &FeedQuery) -> usize {
    usize::try_from(query.offset.saturating_add(query.limit).saturating_add(1)).unwrap_or(usize::MAX)
}

/// The page of `hits` after the skipped ones.
fn page(hits: Vec<rank::Hit>, query: &FeedQuery) -> Vec<rank::Hit> {
    hits.into_iter().skip(usize::try_from(query.offset).unwrap_or(usize::MAX)).collect()
}

/// Time spent in each stage of the fast path (see [`Reader::search_timed`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stages {
    /// Tokenizing the query with FTS5's tokenizer.
    pub tokenize: std::time::Duration,
    /// Opening the read transaction and checking the generation.
    pub generation: std::time::Duration,
    /// Ranking in the in-memory index.
    pub rank: std::time::Duration,
    /// Reading the result rows by row id.
    pub fetch: std::time::Duration,
}

/// A result row (`ROW_SQL`, `FEED_SQL` or `FILTERED_SQL`: the video in columns 0-5,
/// [`EXTRAS`] in 7-12) and its bm25 rank; a broken thumbnail is replaced per `policy`.
fn row_item(r: &rusqlite::Row<'_>, rank: f64, policy: &ThumbnailPolicy) -> rusqlite::Result<FeedItem> {
    let mut thumbnail: String = r.get(4)?;
    if r.get::<_, Option<i64>>(7)? == Some(0) {
        if let Some(replacement) = r.get::<_, Option<String>>(8)?.or_else(|| policy.fallback.clone()) {
            thumbnail = replacement;
        }
    }
    Ok(FeedItem {
        id: r.get(0)?,
        title: r.get(1)?,
        channel: r.get(2)?,
        duration_seconds: r.get(3)?,
        thumbnail,
        region: r.get(5)?,
        score: if rank == 0.0 { 0.0 } else { -rank },
        channel_display_name: r.get(9)?,
        channel_avatar: r.get(10)?,
        channel_verified: r.get::<_, Option<i64>>(11)?.map(|v| v != 0),
        channel_subscribers: r.get(12)?,
    })
}

/// Decodes one SQLite varint (as FTS5 writes `%_docsize`); a short blob gives 0.
fn varint(bytes: &[u8]) -> (u32, &[u8]) {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        if i == 8 {
            value = (value << 8) | u64::from(b);
            return (u32::try_from(value).unwrap_or(u32::MAX), bytes.get(9..).unwrap_or_default());
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return (u32::try_from(value).unwrap_or(u32::MAX), bytes.get(i + 1..).unwrap_or_default());
        }
    }
    (0, &[])
}

/// A worker's read-only connection. `Send`, not `Sync`: one per thread.
pub struct Reader {
    conn: Connection,
    /// The identity of the file this connection opened (see [`file_id`]).
    file: u64,
    /// Query time limit: SQLite's progress handler interrupts a statement past it.
    deadline: Arc<std::sync::atomic::AtomicU64>,
    clock: Instant,
    time_limit: std::time::Duration,
    /// State shared with the other readers of this database (rank index, vocabulary, hidden set).
    index: Arc<RankIndex>,
    /// An in-memory FTS5 table with the same tokenizer, to tokenize queries exactly as FTS5 does.
    tokenizer: Connection,
    /// Correct unknown words (`VIDEOFEED_TYPO_FALLBACK`).
    typo: bool,
    /// Broken thumbnails: what is shown instead, or left out.
    policy: ThumbnailPolicy,
    /// `FEED_SQL` and `ROW_SQL` for `policy`.
    feed_sql: String,
    row_sql: String,
}

/// Which ranking computed an answer (the same answer either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankPath {
    /// The in-memory rank index.
    Index,
    /// FTS5's `bm25()` in SQL.
    Sql,
}

/// One feed answer and the data it was made from, all read in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The page's rows, plus one more when a next page exists.
    pub items: Vec<FeedItem>,
    /// Words the typo correction replaced (typed token → known word), in query order.
    pub corrected: Corrections,
    /// The data version the answer was made from (what ETags and caches are keyed on).
    pub version: DataVersion,
    /// Which ranking answered.
    pub path: RankPath,
}

/// The meta counters of one read transaction.
#[derive(Debug, Clone, Copy)]
struct Meta {
    generation: i64,
    thumbs: i64,
    version: DataVersion,
}

/// Every counter an answer depends on, read in the answer's own transaction.
const META_SQL: &str = "SELECT (SELECT value FROM videofeed_meta WHERE key = 'generation'), \
     (SELECT value FROM videofeed_meta WHERE key = 'thumbs'), \
     (SELECT value FROM videofeed_meta WHERE key = 'changes'), \
     (SELECT value FROM videofeed_meta WHERE key = 'last_write')";

/// Every term of the index with the number of rows holding it, in term order (see `db::open_reader`).
const VOCABULARY_SQL: &str = "SELECT term, doc FROM temp.videofeed_vocab";

/// Whether some row holds a term (or a term starting with it): `?1` the quoted
/// token, with `*` for a prefix. Stops at the first match.
const KNOWN_SQL: &str = "SELECT 1 FROM videos_fts WHERE videos_fts MATCH ?1 LIMIT 1";

/// At most this many unknown words of one query are looked up for a correction
/// (each lookup scans the vocabulary once); later ones stay as typed. A fixed count,
/// not a time budget, so the answer never depends on how busy the machine is.
pub const MAX_CORRECTIONS: usize = 4;

/// Where the typo correction reads the vocabulary: the current snapshot, or FTS5's.
enum Lexicon<'a> {
    Snapshot(&'a Snapshot),
    Sql { tx: &'a Connection, index: &'a RankIndex, file: u64, generation: i64 },
}

impl Lexicon<'_> {
    /// Whether `token` is a term of some row (or the start of one, when `prefix`).
    fn knows(&self, token: &str, prefix: bool) -> Result<bool, Error> {
        match self {
            Lexicon::Snapshot(s) => Ok(s.knows(token, prefix)),
            Lexicon::Sql { tx, .. } => {
                let phrase = Phrase { tokens: vec![token.to_owned()], prefix };
                Ok(tx.prepare_cached(KNOWN_SQL)?.exists([expression(std::slice::from_ref(&phrase))])?)
            }
        }
    }

    fn correct(&self, token: &str, prefix: bool) -> Result<Option<String>, Error> {
        match self {
            Lexicon::Snapshot(s) => Ok(s.correct(token, prefix)),
            Lexicon::Sql { tx, index, file, generation } => {
                Ok(index.vocabulary(tx, *file, *generation)?.correct(token, prefix))
            }
        }
    }
}

impl Reader {
    /// Opens `path` read-only (see [`db::open_reader`]) with state of its own (no rank index).
    ///
    /// # Errors
    /// [`Error::Open`] when the database is missing, unreadable or not videofeed's;
    /// [`Error::Sql`] if the statement cannot be prepared.
    pub fn open_read_only(path: &Path) -> Result<Reader, Error> {
        Reader::with_index(path, RankIndex::disabled(path.to_path_buf(), ThumbnailPolicy::default()))
    }

    /// Opens `path` read-only, sharing `index` (its snapshot when current, its
    /// vocabulary and hidden set) with the other readers.
    ///
    /// # Errors
    /// As for [`Reader::open_read_only`].
    pub fn with_index(path: &Path, index: Arc<RankIndex>) -> Result<Reader, Error> {
        let file = file_id(path);
        let conn = db::open_reader(path).map_err(Error::Open)?;
        conn.prepare_cached(&ThumbnailPolicy::default().sql(FEED_SQL))?;
        let deadline = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let clock = Instant::now();
        let watched = Arc::clone(&deadline);
        // Every 10,000 VM steps (~100 µs), stop the statement once past the deadline.
        conn.progress_handler(
            10_000,
            Some(move || {
                let now = u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
                now > watched.load(Ordering::Relaxed)
            }),
        );
        let tokenizer = Connection::open_in_memory()?;
        tokenizer.execute_batch(&format!(
            "CREATE VIRTUAL TABLE q USING fts5(x, tokenize = '{TOKENIZE}');
             CREATE VIRTUAL TABLE qv USING fts5vocab(q, 'instance');"
        ))?;
        let policy = index.policy.clone();
        Ok(Reader {
            conn,
            file,
            deadline,
            clock,
            time_limit: std::time::Duration::from_millis(DEFAULT_QUERY_TIMEOUT_MS),
            index,
            tokenizer,
            typo: true,
            feed_sql: policy.sql(FEED_SQL),
            row_sql: policy.sql(ROW_SQL),
            policy,
        })
    }

    /// The identity of the database file this reader opened.
    pub fn file(&self) -> u64 {
        self.file
    }

    /// The database generation now (bumped by every search-relevant write).
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Sql`] from SQLite.
    pub fn generation(&self) -> Result<i64, Error> {
        Ok(self.conn.prepare_cached(GENERATION_SQL)?.query_row([], |r| r.get(0))?)
    }

    /// The data version now: what response caches and ETags are keyed on.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Sql`] from SQLite.
    pub fn data_version(&self) -> Result<DataVersion, Error> {
        let (changes, last_write) = self.conn.prepare_cached(DATA_VERSION_SQL)?.query_row([], |r| {
            Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
        })?;
        Ok(DataVersion { changes, last_write })
    }

    /// Page cache hits and misses of this connection since the last call (then reset).
    pub fn take_cache_stats(&self) -> (u64, u64) {
        crate::sys::take_cache_stats(&self.conn)
    }

    /// Sets how broken thumbnails are shown (see [`ThumbnailPolicy`]). The shared
    /// index's hidden set follows the index's own policy: give both the same one.
    pub fn set_thumbnail_policy(&mut self, policy: ThumbnailPolicy) {
        self.feed_sql = policy.sql(FEED_SQL);
        self.row_sql = policy.sql(ROW_SQL);
        self.policy = policy;
    }

    /// Sets the query time limit (`VIDEOFEED_QUERY_TIMEOUT_MS`).
    pub fn set_time_limit(&mut self, limit: std::time::Duration) {
        self.time_limit = limit;
    }

    /// Turns the typo correction on or off (`VIDEOFEED_TYPO_FALLBACK`; on by default).
    pub fn set_typo_correction(&mut self, on: bool) {
        self.typo = on;
    }

    /// The rows of [`Reader::answer`].
    ///
    /// # Errors
    /// As for [`Reader::answer`].
    pub fn search(&self, query: &FeedQuery) -> Result<Vec<FeedItem>, Error> {
        Ok(self.answer(query)?.items)
    }

    /// Answers `query`: the page at `query.offset` (plus one more row when a next
    /// page exists), the typo corrections, and the data version, all read in one
    /// read transaction, so the answer is exactly the one for that version.
    ///
    /// The answer does not depend on how it is computed: the rank index ranks when
    /// its snapshot is of this very generation and the query is unfiltered, SQL
    /// otherwise, with the same ids, order and score bits. Typo correction: every
    /// one-token phrase the vocabulary does not know (up to [`MAX_CORRECTIONS`]) is
    /// replaced by the closest frequent term ([`rank::correct`]), read from the
    /// snapshot or, without one, from FTS5's own vocabulary. A query with an unknown
    /// word matches nothing as typed, so the corrected query is the whole result
    /// list, and pages at any offset are pages of it.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Sql`] from SQLite, [`Error::TimedOut`] past the
    /// query time limit. A match expression from [`crate::search::tokenize::match_expression`]
    /// never causes an FTS5 syntax error.
    pub fn answer(&self, query: &FeedQuery) -> Result<Answer, Error> {
        let start = u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX);
        let limit = u64::try_from(self.time_limit.as_micros()).unwrap_or(u64::MAX);
        self.deadline.store(start.saturating_add(limit), Ordering::Relaxed);
        let result = self.answer_unlimited(query);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        match result {
            Err(Error::Sql(e)) if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => {
                Err(Error::TimedOut(self.time_limit))
            }
            other => other,
        }
    }

    fn answer_unlimited(&self, query: &FeedQuery) -> Result<Answer, Error> {
        let phrases = self.phrases(&query.q)?;
        let tx = self.conn.unchecked_transaction()?;
        let meta = read_meta(&tx)?;
        let snapshot = self.index.snapshot_at(self.file, meta.generation);
        let mut corrected = Vec::new();
        let mut effective = phrases;
        if let (true, Some(phrases)) = (self.typo, effective.as_mut()) {
            let lexicon = match &snapshot {
                Some(s) => Lexicon::Snapshot(s),
                None => Lexicon::Sql { tx: &tx, index: &self.index, file: self.file, generation: meta.generation },
            };
            corrected = correct_phrases(&lexicon, phrases)?;
        }
        let corrected_expr = (!corrected.is_empty()).then(|| effective.as_deref().map(expression)).flatten();
        let match_expr = corrected_expr.as_deref().unwrap_or(&query.match_expr);
        let (items, path) = match (&snapshot, &effective) {
            (Some(snapshot), Some(phrases)) if !query.is_filtered() => {
                (self.ranked(&tx, snapshot, phrases, query, &meta)?, RankPath::Index)
            }
            _ => (self.ranked_by_sql(&tx, match_expr, query)?, RankPath::Sql),
        };
        drop(tx);
        Ok(Answer { items, corrected, version: meta.version, path })
    }

    /// The fast path, timing its stages (for the benchmarks' profile); `None` when
    /// the rank index cannot answer (no current snapshot, or a filtered query).
    ///
    /// # Errors
    /// As for [`Reader::answer`].
    pub fn search_timed(&self, query: &FeedQuery) -> Result<Option<(Vec<FeedItem>, Stages)>, Error> {
        let mut stages = Stages::default();
        let t = Instant::now();
        let Some(phrases) = self.phrases(&query.q)? else { return Ok(None) };
        stages.tokenize = t.elapsed();
        let t = Instant::now();
        let tx = self.conn.unchecked_transaction()?;
        let meta = read_meta(&tx)?;
        stages.generation = t.elapsed();
        let Some(snapshot) = self.index.snapshot_at(self.file, meta.generation) else { return Ok(None) };
        if query.is_filtered() {
            return Ok(None);
        }
        let t = Instant::now();
        let hidden = self.index.hidden(&tx, (self.file, meta.generation, meta.thumbs))?;
        let hits = page(snapshot.top_k_visible(&phrases, &query.region, wanted(query), &hidden), query);
        stages.rank = t.elapsed();
        let t = Instant::now();
        let items = self.fetch(&tx, &hits)?;
        stages.fetch = t.elapsed();
        Ok(Some((items, stages)))
    }

    /// Ranks `phrases` in `snapshot` (of the transaction's generation) and reads the rows in `tx`.
    fn ranked(
        &self,
        tx: &Connection,
        snapshot: &Snapshot,
        phrases: &[Phrase],
        query: &FeedQuery,
        meta: &Meta,
    ) -> Result<Vec<FeedItem>, Error> {
        let hidden = self.index.hidden(tx, (self.file, meta.generation, meta.thumbs))?;
        let hits = page(snapshot.top_k_visible(phrases, &query.region, wanted(query), &hidden), query);
        self.fetch(tx, &hits)
    }

    /// The rows of `hits`, by row id, in order.
    fn fetch(&self, tx: &Connection, hits: &[rank::Hit]) -> Result<Vec<FeedItem>, Error> {
        let mut stmt = tx.prepare_cached(&self.row_sql)?;
        let mut items = Vec::with_capacity(hits.len());
        for hit in hits {
            items.push(stmt.query_row([hit.rowid], |r| row_item(r, hit.rank, &self.policy))?);
        }
        Ok(items)
    }

    /// The query's phrases as FTS5 tokenizes them: one per chunk, its tokens in order;
    /// `None` if a chunk has no token (the SQL path decides what that means).
    fn phrases(&self, q: &str) -> Result<Option<Vec<Phrase>>, Error> {
        let chunks = tokenize::chunks(q);
        let tx = self.tokenizer.unchecked_transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO q (rowid, x) VALUES (?1, ?2)")?;
            for (i, chunk) in chunks.iter().enumerate() {
                insert.execute(rusqlite::params![i64::try_from(i).unwrap_or(i64::MAX), chunk])?;
            }
        }
        let mut tokens: Vec<Vec<String>> = vec![Vec::new(); chunks.len()];
        {
            let mut select = tx.prepare_cached("SELECT doc, term FROM qv ORDER BY doc, offset")?;
            let mut rows = select.query([])?;
            while let Some(row) = rows.next()? {
                let doc = usize::try_from(row.get::<_, i64>(0)?).unwrap_or(usize::MAX);
                if let Some(list) = tokens.get_mut(doc) {
                    list.push(row.get(1)?);
                }
            }
        }
        tx.execute("DELETE FROM q", [])?;
        tx.commit()?;
        if tokens.is_empty() || tokens.iter().any(Vec::is_empty) {
            return Ok(None);
        }
        let last = tokens.len().saturating_sub(1);
        let prefix = tokenize::last_is_prefix(q);
        Ok(Some(
            tokens.into_iter().enumerate().map(|(i, tokens)| Phrase { tokens, prefix: prefix && i == last }).collect(),
        ))
    }

    /// SQL ranking by FTS5's `bm25()` for `match_expr`, with the query's filters and
    /// order (unfiltered queries use the plain statement).
    fn ranked_by_sql(&self, tx: &Connection, match_expr: &str, query: &FeedQuery) -> Result<Vec<FeedItem>, Error> {
        let capacity = usize::try_from(query.limit).unwrap_or(0) + 1;
        let mut items = Vec::with_capacity(capacity);
        if !query.is_filtered() {
            let mut stmt = tx.prepare_cached(&self.feed_sql)?;
            let params =
                rusqlite::params![match_expr, query.region, i64::from(query.limit) + 1, i64::from(query.offset)];
            for row in stmt.query_map(params, |r| row_item(r, r.get(6)?, &self.policy))? {
                items.push(row?);
            }
            return Ok(items);
        }
        let order = match query.sort {
            Sort::Relevance => "rank, v.rowid",
            Sort::Recent => "v.published_at IS NULL, v.published_at DESC, v.rowid",
            Sort::Popular => "v.view_count DESC, v.rowid",
        };
        let sql = self.policy.sql(FILTERED_SQL).replace("{order}", order);
        let mut stmt = tx.prepare_cached(&sql)?;
        let params = rusqlite::params![
            match_expr,
            query.region,
            i64::from(query.limit) + 1,
            i64::from(query.offset),
            query.channel,
            query.min_duration,
            query.max_duration
        ];
        for row in stmt.query_map(params, |r| row_item(r, r.get(6)?, &self.policy))? {
            items.push(row?);
        }
        Ok(items)
    }
}

/// Reads the meta counters in `tx` (absent counters read as 0).
fn read_meta(tx: &Connection) -> Result<Meta, Error> {
    Ok(tx.prepare_cached(META_SQL)?.query_row([], |r| {
        Ok(Meta {
            generation: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
            thumbs: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            version: DataVersion {
                changes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                last_write: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            },
        })
    })?)
}

/// Replaces unknown one-token phrases by their corrections (at most
/// [`MAX_CORRECTIONS`] looked up, in query order); returns (typed, known) pairs.
fn correct_phrases(lexicon: &Lexicon<'_>, phrases: &mut [Phrase]) -> Result<Corrections, Error> {
    let mut corrected = Vec::new();
    let mut looked_up = 0;
    for phrase in phrases.iter_mut() {
        if looked_up >= MAX_CORRECTIONS {
            break;
        }
        let [token] = phrase.tokens.as_slice() else { continue };
        let chars = token.chars().count();
        if !(rank::MIN_TYPO_CHARS..=rank::MAX_TYPO_CHARS).contains(&chars) || lexicon.knows(token, phrase.prefix)? {
            continue;
        }
        looked_up += 1;
        if let Some(known) = lexicon.correct(token, phrase.prefix)? {
            corrected.push((token.clone(), known.clone()));
            *phrase = Phrase { tokens: vec![known], prefix: false };
        }
    }
    Ok(corrected)
}

/// The FTS5 MATCH expression of `phrases` (tokens as FTS5 produced them): each
/// phrase quoted, the last one with `*` when it is a prefix.
fn expression(phrases: &[Phrase]) -> String {
    let mut out = String::new();
    for (i, phrase) in phrases.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        out.push_str(&phrase.tokens.join(" ").replace('"', "\"\""));
        out.push('"');
        if phrase.prefix {
            out.push('*');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn assert_send<T: Send>() {}
    const _: () = assert_send::<Reader>();

    /// Every string, however hostile, goes through the match builder into a
    /// real FTS5 table without an SQLite error.
    #[test]
    fn a_query_past_its_time_limit_is_cut_off() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("vf-timeout-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let db = dir.join("t.db");
        let _ = std::fs::remove_file(&db);
        let mut w = crate::store::import::Writer::open(&db)?;
        let videos: Vec<crate::store::import::Video> = crate::store::demo::videos(3000, 1).collect();
        w.write_batch(&videos, &mut crate::store::import::Summary::default())?;
        drop(w);
        let mut reader = Reader::open_read_only(&db)?;
        let q = crate::http::request::parse("q=the")?;
        assert!(reader.search(&q).is_ok());
        reader.set_time_limit(std::time::Duration::ZERO);
        assert!(matches!(reader.search(&q), Err(Error::TimedOut(_))));
        reader.set_time_limit(std::time::Duration::from_secs(2));
        assert!(reader.search(&q).is_ok(), "the connection works again after an interrupt");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    mod property {
        use proptest::prelude::*;
        use rusqlite::Connection;

        use crate::search::tokenize::match_expression;

        fn table() -> Connection {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(
                "CREATE VIRTUAL TABLE t USING fts5(title, channel, tokenize='unicode61 remove_diacritics 2', prefix='2 3');
                 INSERT INTO t VALUES ('Lofi hip hop radio', 'Chill Beats'), ('C++ in 100 seconds', 'Fireship'),
                 ('Don''t stop me now', 'Queen Official'), ('Café München 4K', 'Reise TV'), ('AND OR NOT NEAR', 'x');",
            )
            .unwrap();
            conn
        }

        fn run(conn: &Connection, q: &str) {
            if let Some(expr) = match_expression(q) {
                let r: rusqlite::Result<i64> = conn.query_row(
                    "SELECT count(*) FROM t WHERE t MATCH ?1 ORDER BY bm25(t, 8.0, 2.0)",
                    [&expr],
                    |r| r.get(0),
                );
                assert!(r.is_ok(), "q={q:?} expr={expr:?} err={r:?}");
            }
        }

        #[test]
        fn hostile_inputs() {
            let conn = table();
            let big = "w".repeat(10 * 1024);
            for q in [
                "\"",
                "\"\"\"",
                "a\"b",
                "AND",
                "OR",
                "NOT",
                "NEAR",
                "NEAR(a b, 2)",
                "a AND",
                "OR b",
                "NOT NOT",
                "*",
                "a*",
                "*a",
                "^a",
                "a^",
                ":",
                "title:x",
                "title : x",
                "{title channel}: x",
                "(",
                ")",
                "(a OR b",
                "a) b(",
                "-a",
                "a - b",
                "+a",
                "🎵",
                "music 🎵",
                "\u{0}",
                "a\u{0}b",
                "\u{0}a",
                big.as_str(),
                "\u{301}",
                "e\u{301}",
                "c++",
                "don't",
                "ac/dc",
                "4k",
                "ﷺ",
                "ⅷ",
                "a\u{200b}b",
                "\\",
                "'",
                "''",
                "%",
                "_",
            ] {
                run(&conn, q);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            #[test]
            fn arbitrary_strings_never_break_fts5(q in "\\PC{0,60}") {
                run_shared(&q);
            }

            #[test]
            fn syntax_soup_never_breaks_fts5(parts in proptest::collection::vec(
                prop_oneof![
                    Just("\""), Just("AND"), Just("OR"), Just("NOT"), Just("NEAR"), Just("*"), Just("^"),
                    Just(":"), Just("("), Just(")"), Just("-"), Just("+"), Just("{"), Just("}"), Just(","),
                    Just("🎵"), Just("\u{0}"), Just(" "), Just("lofi"), Just("c"), Just("é"), Just("title"),
                ], 0..24)) {
                run_shared(&parts.concat());
            }

            #[test]
            fn arbitrary_bytes_as_text_never_break_fts5(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                run_shared(&String::from_utf8_lossy(&bytes));
            }
        }

        thread_local! {
            /// One table per test thread: building it for every case is slow.
            static TABLE: Connection = table();
        }

        fn run_shared(q: &str) {
            TABLE.with(|c| run(c, q));
        }
    }
}
