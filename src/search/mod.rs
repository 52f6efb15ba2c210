//! Read-only search: one SQLite connection per worker, bm25-ranked, one read
//! transaction per answer.
//!
//! Two paths give the same answer, byte for byte ([`Reader::answer`]). The SQL
//! path ([`sql`]) ranks with FTS5's `bm25()` ([`bm25`]: title weighted 8,
//! channel 2), keeps rows whose region is the requested one or `GLOBAL`, and
//! breaks ties by row id. The fast path asks the shared in-memory rank index
//! ([`index`]) for the same top rows when it is at the transaction's
//! generation (a base snapshot and the delta since), filtered and re-ordered
//! queries included (`channel`, durations, `sort`), then reads them by row id
//! in that transaction. Queries are
//! NFKC-folded and tokenized as FTS5 tokenizes ([`tokenize`], [`unicode61`]);
//! unknown words are corrected by one rule ([`typo`]); when the words together
//! fill less than the page, words are dropped and the shorter queries' rows
//! appended (`Reader::relaxed`); `highlight=1` marks the matched words
//! ([`highlight`]). `score` is the negated bm25 (higher is better). No socket
//! I/O; no writes.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

pub mod bm25;
pub mod highlight;
pub mod index;
mod query;
pub mod sql;
pub mod tokenize;
pub mod typo;
pub mod unicode61;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rusqlite::{Connection, ErrorCode};
use serde::Serialize;

pub use crate::config::ThumbnailPolicy;
use crate::store::db::{self, file_id};
pub use index::RankIndex;
pub use query::{FeedQuery, Sort};
use sql::{DATA_VERSION_SQL, FEED_SQL, Meta, ROW_SQL, read_meta, row_item};
use tokenize::{Phrase, Tokenizer, expression};
pub use typo::{Corrections, MAX_CORRECTIONS};
use typo::{Lexicon, correct_phrases};

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
    /// When the video was published (RFC 3339 in UTC, as stored), or null.
    pub published_at: Option<String>,
    /// Its view count.
    pub view_count: i64,
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
    /// With `highlight=1`: the title HTML-escaped, matched words in `<mark>`…`</mark>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_highlighted: Option<String>,
    /// With `highlight=1`: the channel, marked the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_highlighted: Option<String>,
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
    /// A rank index build was given up on purpose (a low-priority compaction that
    /// fell behind the writes is started again at normal priority).
    Abandoned,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(e) => write!(f, "{e}"),
            Error::Busy(e) => write!(f, "database busy: {e}"),
            Error::Sql(e) => write!(f, "search failed: {e}"),
            Error::Index(e) => write!(f, "rank index: {e}"),
            Error::TimedOut(limit) => write!(f, "the query ran longer than {} ms and was stopped", limit.as_millis()),
            Error::Abandoned => write!(f, "rank index build given up (restarted at normal priority)"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open(e) => Some(e),
            Error::Busy(e) | Error::Sql(e) => Some(e),
            Error::Index(_) | Error::TimedOut(_) | Error::Abandoned => None,
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

/// Which data an answer was made from: bumped by any change to any video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataVersion {
    /// The `changes` counter.
    pub changes: i64,
    /// Unix seconds of the last write; 0 when unknown (no write since the schema was created).
    pub last_write: i64,
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
    tokenizer: Tokenizer,
    /// Correct unknown words (`VIDEOFEED_TYPO_FALLBACK`).
    typo: bool,
    /// Drop words when all of them fill less than the page (`VIDEOFEED_RELAX`).
    relax: bool,
    /// Count the matches of every answer (`VIDEOFEED_TOTALS`).
    totals: bool,
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
    /// Words dropped to fill the page (word dropping), in the order they were dropped.
    pub relaxed: Vec<String>,
    /// The query's phrases as searched (typo corrections applied): what highlights mark.
    pub phrases: Vec<Phrase>,
    /// The data version the answer was made from (what ETags and caches are keyed on).
    pub version: DataVersion,
    /// Which ranking answered.
    pub path: RankPath,
    /// Videos the query matches (region or GLOBAL, filters, thumbnail policy), counted
    /// up to [`TOTAL_CAP`] (with word dropping, those of the shortest query the answer
    /// used: the list the pages walk), and whether that is the exact count (false:
    /// there are more than [`TOTAL_CAP`]). None when totals are off (`VIDEOFEED_TOTALS`).
    pub total: Option<(usize, bool)>,
}

/// Matches are counted exactly up to this many; past it `total` is this number and
/// `total_is_exact` false (as Elasticsearch's `track_total_hits`).
pub const TOTAL_CAP: usize = 10_000;

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
        conn.prepare_cached(&sql::statement(FEED_SQL, &ThumbnailPolicy::default()))?;
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
        let tokenizer = Tokenizer::new()?;
        let policy = index.policy.clone();
        Ok(Reader {
            conn,
            file,
            deadline,
            clock,
            time_limit: crate::config::DEFAULT_QUERY_TIMEOUT,
            index,
            tokenizer,
            typo: true,
            relax: true,
            totals: true,
            feed_sql: sql::statement(FEED_SQL, &policy),
            row_sql: sql::statement(ROW_SQL, &policy),
            policy,
        })
    }

    /// The writer's heartbeat (Unix ms) in the file this reader reads; 0 when none.
    pub fn heartbeat_ms(&self) -> i64 {
        self.conn
            .query_row("SELECT value FROM videofeed_meta WHERE key = 'heartbeat'", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
    }

    /// The stored video `id` with every field (`GET /feed/admin/videos/{id}`); None when absent.
    ///
    /// # Errors
    /// [`Error::Sql`] when the row cannot be read.
    pub fn video(&self, id: &str) -> Result<Option<crate::store::Video>, Error> {
        Ok(crate::store::stored_video(&self.conn, id)?)
    }

    /// The identity of the database file this reader opened.
    pub fn file(&self) -> u64 {
        self.file
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
        self.feed_sql = sql::statement(FEED_SQL, &policy);
        self.row_sql = sql::statement(ROW_SQL, &policy);
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

    /// Turns the counting of `total` on or off (`VIDEOFEED_TOTALS`; on by default).
    pub fn set_totals(&mut self, on: bool) {
        self.totals = on;
    }

    /// Turns word dropping on or off (`VIDEOFEED_RELAX`; on by default).
    pub fn set_relax(&mut self, on: bool) {
        self.relax = on;
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
    /// otherwise, with the same ids, order and score bits. The query is NFKC-folded;
    /// every one-token phrase the vocabulary does not know (up to [`MAX_CORRECTIONS`])
    /// is replaced by a known neighbour ([`typo::candidates`], tried against the rest
    /// of the query), read from the snapshot or, without one, from FTS5's own
    /// vocabulary; when the words together fill less than the page, words are dropped
    /// (`Reader::relaxed`). Pages at any offset are pages of that one combined list.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Sql`] from SQLite, [`Error::TimedOut`] past the
    /// query time limit. A match expression from [`crate::search::tokenize::match_expression`]
    /// never causes an FTS5 syntax error.
    pub fn answer(&self, query: &FeedQuery) -> Result<Answer, Error> {
        let start = u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX);
        let limit = u64::try_from(self.time_limit.as_micros()).unwrap_or(u64::MAX);
        self.deadline.store(start.saturating_add(limit), Ordering::Relaxed);
        let result = self.answer_checked(query);
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        match result {
            Err(Error::Sql(e)) if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => {
                Err(Error::TimedOut(self.time_limit))
            }
            other => other,
        }
    }

    /// [`Reader::answer_in_transaction`], thrown away and answered again by SQL when
    /// the rank index file it read was changed in place meanwhile (a panic from
    /// reading such a file included); an index file found damaged before is let go
    /// of before answering (see [`RankIndex::drop_if_damaged`]).
    fn answer_checked(&self, query: &FeedQuery) -> Result<Answer, Error> {
        self.index.drop_if_damaged();
        // (Another worker may let go of this snapshot meanwhile: ask it, not the current one.)
        let used = self.index.snapshot();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer_in_transaction(query)));
        let used_was_damaged = used.is_some_and(|s| s.damage().is_some());
        if self.index.drop_if_damaged() || used_was_damaged {
            log::warn!("an answer read a rank index file changed under it; answered again by SQL");
            return self.answer_in_transaction(query);
        }
        outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    fn answer_in_transaction(&self, query: &FeedQuery) -> Result<Answer, Error> {
        let folded = tokenize::normalize(&query.q);
        let phrases = if query.is_browse() { None } else { self.tokenizer.phrases(&folded)? };
        let tx = self.conn.unchecked_transaction()?;
        let meta = read_meta(&tx)?;
        let resolved = resolve_channel(&tx, query)?;
        let query = resolved.as_ref();
        if query.is_browse() {
            let hidden = self.index.hidden(&tx, (self.file, meta.generation, meta.thumbs))?;
            let items = self.browse(&tx, query, &hidden)?;
            let counted = if self.totals { Some(self.browse_count(&tx, query, &hidden)?) } else { None };
            drop(tx);
            return Ok(Answer {
                items,
                corrected: Vec::new(),
                relaxed: Vec::new(),
                phrases: Vec::new(),
                version: meta.version,
                path: RankPath::Sql,
                total: counted.map(capped),
            });
        }
        let view = self.index.view_at(&tx, self.file, meta.generation, &self.tokenizer)?;
        let lexicon = match &view {
            Some(v) => Lexicon::Index(v),
            None => Lexicon::Sql { tx: &tx, index: &self.index, file: self.file, generation: meta.generation },
        };
        // NFKC folded the query (`ｍｕｓｉｃ` → `music`), but titles are stored as
        // written: when every word as typed is a known term (`º` in a title; folded it
        // is `o`), the words are searched as typed; otherwise folded.
        let mut as_typed_ok = true;
        let phrases = match (&folded, phrases) {
            (std::borrow::Cow::Owned(_), Some(folded_phrases)) => match self.tokenizer.phrases(&query.q)? {
                Some(raw) if all_known(&lexicon, &raw)? => {
                    as_typed_ok = false;
                    Some(raw)
                }
                _ => Some(folded_phrases),
            },
            (_, phrases) => phrases,
        };
        let mut corrected = Vec::new();
        let mut effective = phrases;
        if let (true, Some(phrases)) = (self.typo, effective.as_mut()) {
            // The probe query is made only when a word is unknown (not on every request).
            let matches = |p: &[Phrase]| {
                let probe = FeedQuery { offset: 0, limit: 0, ..query.clone() };
                Ok(!self.group(&tx, view.as_ref(), p, None, &probe, &meta)?.is_empty())
            };
            corrected = correct_phrases(&lexicon, phrases, matches)?;
        }
        let rows = match &effective {
            Some(phrases) => {
                let as_typed = (corrected.is_empty() && as_typed_ok).then_some(query.match_expr.as_str());
                self.group(&tx, view.as_ref(), phrases, as_typed, query, &meta)?
            }
            None => Rows::Items(self.ranked_by_sql(&tx, &query.match_expr, query)?),
        };
        let path = if matches!(rows, Rows::Hits(_)) { RankPath::Index } else { RankPath::Sql };
        let mut relaxed = Vec::new();
        let page_rows = wanted(query).saturating_sub(usize::try_from(query.offset).unwrap_or(usize::MAX));
        let rows = match (self.relax, effective.as_deref()) {
            (true, Some(phrases)) if rows.len() < page_rows && phrases.len() >= 2 => {
                let (rows, dropped) = self.relaxed(&tx, view.as_ref(), &lexicon, phrases, query, &meta, rows)?;
                relaxed = dropped;
                rows
            }
            _ => rows,
        };
        // The total: of the phrases the last rows came from (those left after dropping).
        let counted = match &effective {
            _ if !self.totals => None,
            Some(phrases) => {
                let mut kept = phrases.clone();
                for word in &relaxed {
                    if let Some(at) = kept.iter().position(|p| p.tokens.join(" ") == *word) {
                        kept.remove(at);
                    }
                }
                let as_typed =
                    (corrected.is_empty() && as_typed_ok && relaxed.is_empty()).then_some(query.match_expr.as_str());
                Some(self.count(&tx, view.as_ref(), &kept, as_typed, query, &meta, path)?)
            }
            None => Some(self.sql_count(&tx, &query.match_expr, query)?),
        };
        let mut items = match rows {
            Rows::Hits(hits) => self.fetch(&tx, &hits)?,
            Rows::Items(items) => items,
        };
        drop(view);
        drop(tx);
        if query.highlight {
            let marker = highlight::Marker::new(effective.as_deref().unwrap_or_default());
            for item in &mut items {
                item.title_highlighted = Some(marker.mark(&item.title));
                item.channel_highlighted = Some(marker.mark(&item.channel));
            }
        }
        Ok(Answer {
            items,
            corrected,
            relaxed,
            phrases: effective.unwrap_or_default(),
            version: meta.version,
            path,
            total: counted.map(capped),
        })
    }

    /// The rows of `query`'s page for `phrases`: ranked by the index when its view is
    /// current and can answer (row ids and ranks, not read yet), by SQL otherwise
    /// (`as_typed`: the match expression the query string gave, when `phrases` are
    /// exactly its words).
    fn group(
        &self,
        tx: &Connection,
        view: Option<&index::View>,
        phrases: &[Phrase],
        as_typed: Option<&str>,
        query: &FeedQuery,
        meta: &Meta,
    ) -> Result<Rows, Error> {
        if let Some(view) = view {
            let hidden = self.index.hidden(tx, (self.file, meta.generation, meta.thumbs))?;
            if let Some(hits) = rank(view, phrases, query, &hidden) {
                return Ok(Rows::Hits(page(hits, query)));
            }
        }
        let expr = match as_typed {
            Some(e) => std::borrow::Cow::Borrowed(e),
            None => std::borrow::Cow::Owned(expression(phrases)),
        };
        Ok(Rows::Items(self.ranked_by_sql(tx, &expr, query)?))
    }

    /// Word dropping (`VIDEOFEED_RELAX`), when the query's words together fill less
    /// than the page: the words that matter least are dropped ([`Reader::least_needed`]),
    /// the rows the shorter query adds come after the ones before (each group in its own
    /// bm25 order, no row twice), and so on down to one word or a full page. The
    /// combined list is the same whatever the page, so `offset` walks it without gaps or
    /// repeats. Returns the page (one row more when another follows) and the dropped
    /// words, in order, up to the last drop that added a row.
    #[allow(clippy::too_many_arguments)]
    fn relaxed(
        &self,
        tx: &Connection,
        view: Option<&index::View>,
        lexicon: &Lexicon<'_>,
        phrases: &[Phrase],
        query: &FeedQuery,
        meta: &Meta,
        page_rows: Rows,
    ) -> Result<(Rows, Vec<String>), Error> {
        let want = wanted(query);
        // The whole list up to the end of this page (and one more row), from the top.
        let whole = FeedQuery { offset: 0, limit: query.offset.saturating_add(query.limit), ..query.clone() };
        let mut list = if query.offset == 0 { page_rows } else { self.group(tx, view, phrases, None, &whole, meta)? };
        let mut seen: std::collections::HashSet<Key> = list.keys().collect();
        let mut kept = phrases.to_vec();
        let mut dropped = Vec::new();
        let mut useful = 0;
        while list.len() < want && kept.len() >= 2 {
            let (drop, found) = self.least_needed(tx, view, lexicon, &kept, &whole, meta)?;
            if drop.is_empty() || drop.iter().any(|i| *i >= kept.len()) {
                break;
            }
            dropped.extend(drop.iter().filter_map(|i| kept.get(*i)).map(|p| p.tokens.join(" ")));
            kept = kept.into_iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, p)| p).collect();
            let found = match found {
                Some(rows) => rows,
                None => self.group(tx, view, &kept, None, &whole, meta)?,
            };
            let before = list.len();
            list.append_new(found, &mut seen);
            if list.len() > before {
                useful = dropped.len();
            }
        }
        dropped.truncate(useful);
        crate::obs::metrics::global().relaxed(useful > 0);
        list.skip(usize::try_from(query.offset).unwrap_or(usize::MAX));
        Ok((list, dropped))
    }

    /// Which of `kept` (two or more phrases) to drop next, in ascending order (one
    /// phrase, or two at once), with the rows of the query left when a probe found them.
    ///
    /// Candidates are every query left by removing one phrase and, for queries of up to
    /// [`MAX_PAIR_WORDS`] phrases, by removing two; of those that match some row (of
    /// the region, with the filters), the one whose best row scores highest wins: bm25
    /// decides, so the rare, distinctive words that go together are kept and words no
    /// video has with them are dropped. Ties go to the fewer dropped, then the later
    /// words. A query left with one phrase is not ranked unless it is the rarest such
    /// phrase that matches a row: a one-phrase query's best row scores about
    /// (k1 + 1) × the phrase's IDF whatever the phrase, so a more common one cannot win,
    /// and it is the common words and short prefixes whose ranking costs most. When no
    /// candidate matches, the phrase held by most rows (the least distinctive: lowest
    /// IDF) is dropped. Queries of more than [`MAX_PROBED_WORDS`] phrases drop by rows
    /// alone. `whole` is the query of the combined list (probes rank as many rows, so
    /// the winner's are reused).
    fn least_needed(
        &self,
        tx: &Connection,
        view: Option<&index::View>,
        lexicon: &Lexicon<'_>,
        kept: &[Phrase],
        whole: &FeedQuery,
        meta: &Meta,
    ) -> Result<Dropping, Error> {
        let n = kept.len();
        let rows: Vec<usize> = kept.iter().map(|p| lexicon.phrase_docs(p)).collect::<Result<_, _>>()?;
        if n <= MAX_PROBED_WORDS {
            let mut candidates: Vec<Vec<usize>> = (0..n).rev().map(|i| vec![i]).collect();
            if (3..=MAX_PAIR_WORDS).contains(&n) {
                for i in (0..n).rev() {
                    for j in (i + 1..n).rev() {
                        candidates.push(vec![i, j]);
                    }
                }
            }
            let rest_of = |drop: &[usize]| -> Vec<Phrase> {
                kept.iter().enumerate().filter(|(j, _)| !drop.contains(j)).map(|(_, p)| p.clone()).collect()
            };
            // (top score, candidate order, the drop, its rows): the best so far.
            let mut best: Option<(f64, usize, Vec<usize>, Rows)> = None;
            let mut offer = |top: f64, order: usize, drop: Vec<usize>, found: Rows| {
                let better =
                    best.as_ref().is_none_or(|(score, at, _, _)| top > *score || (top == *score && order < *at));
                if better {
                    best = Some((top, order, drop, found));
                }
            };
            // Queries left with one phrase: only the rarest that matches a row is ranked.
            let mut single: Vec<(usize, Vec<usize>)> =
                candidates.iter().cloned().enumerate().filter(|(_, d)| d.len() + 1 == n).collect();
            let left = |drop: &[usize]| (0..n).find(|j| !drop.contains(j)).unwrap_or(0);
            single.sort_by_key(|(order, drop)| (rows.get(left(drop)).copied().unwrap_or(usize::MAX), *order));
            let rarest_only = index::thresholds::get().rarest_single_only;
            let singles = single.len();
            for (tried, (order, drop)) in single.into_iter().enumerate() {
                let found = self.group(tx, view, &rest_of(&drop), None, whole, meta)?;
                if let Some(top) = found.top_score() {
                    offer(top, order, drop, found);
                    if rarest_only {
                        crate::obs::metrics::global().singles_skipped(singles - tried - 1);
                        break;
                    }
                }
            }
            for (order, drop) in candidates.into_iter().enumerate().filter(|(_, d)| d.len() + 1 < n) {
                let found = self.group(tx, view, &rest_of(&drop), None, whole, meta)?;
                if let Some(top) = found.top_score() {
                    offer(top, order, drop, found);
                }
            }
            if let Some((_, _, drop, found)) = best {
                return Ok((drop, Some(found)));
            }
        }
        let mut most = (0usize, 0usize); // (rows, index)
        for (i, r) in rows.iter().enumerate() {
            if *r >= most.0 {
                most = (*r, i);
            }
        }
        Ok((vec![most.1], None))
    }

    /// The fast path, timing its stages (for the benchmarks' profile); `None` when
    /// the rank index cannot answer (no current snapshot, or a filtered query).
    ///
    /// # Errors
    /// As for [`Reader::answer`].
    pub fn search_timed(&self, query: &FeedQuery) -> Result<Option<(Vec<FeedItem>, Stages)>, Error> {
        let mut stages = Stages::default();
        let t = Instant::now();
        let Some(phrases) = self.tokenizer.phrases(&tokenize::normalize(&query.q))? else { return Ok(None) };
        stages.tokenize = t.elapsed();
        let t = Instant::now();
        let tx = self.conn.unchecked_transaction()?;
        let meta = read_meta(&tx)?;
        let resolved = resolve_channel(&tx, query)?;
        let query = resolved.as_ref();
        stages.generation = t.elapsed();
        let Some(view) = self.index.view_at(&tx, self.file, meta.generation, &self.tokenizer)? else {
            return Ok(None);
        };
        let t = Instant::now();
        let hidden = self.index.hidden(&tx, (self.file, meta.generation, meta.thumbs))?;
        let Some(hits) = rank(&view, &phrases, query, &hidden) else { return Ok(None) };
        let hits = page(hits, query);
        stages.rank = t.elapsed();
        let t = Instant::now();
        let items = self.fetch(&tx, &hits)?;
        stages.fetch = t.elapsed();
        Ok(Some((items, stages)))
    }

    /// The rows of `hits`, by row id, in order.
    fn fetch(&self, tx: &Connection, hits: &[index::Hit]) -> Result<Vec<FeedItem>, Error> {
        let mut stmt = tx.prepare_cached(&self.row_sql)?;
        let mut items = Vec::with_capacity(hits.len());
        for hit in hits {
            items.push(stmt.query_row([hit.rowid], |r| row_item(r, hit.rank, &self.policy))?);
        }
        Ok(items)
    }

    /// The matches of `phrases` counted up to one past [`TOTAL_CAP`]: by the index when
    /// it ranked the answer (`path`) and can count with the filters, by SQL otherwise
    /// (`as_typed`: the query string's own match expression, when `phrases` are its words).
    #[allow(clippy::too_many_arguments)]
    fn count(
        &self,
        tx: &Connection,
        view: Option<&index::View>,
        phrases: &[Phrase],
        as_typed: Option<&str>,
        query: &FeedQuery,
        meta: &Meta,
        path: RankPath,
    ) -> Result<usize, Error> {
        if let (Some(view), RankPath::Index) = (view, path) {
            let hidden = self.index.hidden(tx, (self.file, meta.generation, meta.thumbs))?;
            let filter = index_filter(query);
            if let Some(n) = view.count(phrases, &query.region, TOTAL_CAP + 1, &hidden, filter.as_ref()) {
                crate::obs::metrics::global().counted(true);
                return Ok(n);
            }
        }
        let expr = match as_typed {
            Some(e) => std::borrow::Cow::Borrowed(e),
            None => std::borrow::Cow::Owned(expression(phrases)),
        };
        self.sql_count(tx, &expr, query)
    }

    /// The matches of `match_expr` with `query`'s filters, counted by SQL up to one
    /// past [`TOTAL_CAP`].
    fn sql_count(&self, tx: &Connection, match_expr: &str, query: &FeedQuery) -> Result<usize, Error> {
        crate::obs::metrics::global().counted(false);
        let names = query.channel_names.as_ref().map(serde_json::to_string).transpose().unwrap_or_default();
        let cap = i64::try_from(TOTAL_CAP + 1).unwrap_or(i64::MAX);
        let mut stmt = tx.prepare_cached(&sql::counting(sql::COUNT_SQL, &self.policy))?;
        let params = rusqlite::params![match_expr, query.region, cap, names, query.min_duration, query.max_duration];
        let n: i64 = stmt.query_row(params, |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The walks of a browse: (channel name or None, region) for the query's region
    /// and GLOBAL (once when the region is GLOBAL), for each channel name asked.
    fn walks(query: &FeedQuery) -> Vec<(Option<&str>, &str)> {
        let regions: Vec<&str> =
            if query.region == "GLOBAL" { vec!["GLOBAL"] } else { vec![query.region.as_str(), "GLOBAL"] };
        match &query.channel_names {
            Some(names) => names.iter().flat_map(|n| regions.iter().map(move |r| (Some(n.as_str()), *r))).collect(),
            None => regions.into_iter().map(|r| (None, r)).collect(),
        }
    }

    /// A page of browsing (no query): the region's (and GLOBAL's) videos, or a
    /// channel's, in the asked order. Each (channel, region) is one walk of an index
    /// in that order ([`sql::walk`]), read only up to the page's end and without the
    /// videos the thumbnail policy leaves out; the walks are merged here (ties by row
    /// id, as one ORDER BY would), and the page's rows read by row id.
    fn browse(&self, tx: &Connection, query: &FeedQuery, hidden: &index::Hidden) -> Result<Vec<FeedItem>, Error> {
        use std::cmp::Reverse;
        let wanted = wanted(query);
        let mut stmt = tx.prepare_cached(&sql::walk(query.sort, query.channel_names.is_some()))?;
        // (undated, views, date, row id): ascending is the page's order.
        type Key = (bool, Reverse<i64>, Reverse<String>, i64);
        let mut rows: Vec<Key> = Vec::new();
        let visible = |rowid: i64| !hidden.contains_row(rowid);
        for (channel, region) in Self::walks(query) {
            let params =
                rusqlite::params![channel, region, rusqlite::types::Null, query.min_duration, query.max_duration];
            let mut walked = stmt.query(params)?;
            let mut taken = 0;
            while taken < wanted {
                let Some(r) = walked.next()? else { break };
                let rowid: i64 = r.get(0)?;
                if !visible(rowid) {
                    continue;
                }
                taken += 1;
                rows.push(match query.sort {
                    Sort::Popular => (false, Reverse(r.get(1)?), Reverse(String::new()), rowid),
                    // Stored dates are UTC `YYYY-MM-DDTHH:MM:SSZ`: text order is time order.
                    Sort::Recent | Sort::Relevance => {
                        let published: Option<String> = r.get(1)?;
                        (published.is_none(), Reverse(0), Reverse(published.unwrap_or_default()), rowid)
                    }
                });
            }
        }
        rows.sort_unstable();
        let hits: Vec<index::Hit> = rows
            .into_iter()
            .take(wanted)
            .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
            .map(|(_, _, _, rowid)| index::Hit { rowid, rank: 0.0 })
            .collect();
        crate::obs::metrics::global().browsed(query.channel.is_some());
        self.fetch(tx, &hits)
    }

    /// The videos a browse lists, counted up to one past [`TOTAL_CAP`] from the
    /// indexes alone: each walk's rows counted up to the cap plus the videos the
    /// thumbnail policy leaves out, less those of them the browse holds.
    fn browse_count(&self, tx: &Connection, query: &FeedQuery, hidden: &index::Hidden) -> Result<usize, Error> {
        crate::obs::metrics::global().counted(false);
        let hidden_sql = sql::hidden_rowids(&self.policy);
        let hidden_all = i64::try_from(hidden.len()).unwrap_or(i64::MAX);
        let cap = i64::try_from(TOTAL_CAP + 1).unwrap_or(i64::MAX);
        let limit = cap.saturating_add(hidden_all);
        let mut stmt = tx.prepare_cached(&sql::walk_count(query.channel_names.is_some()))?;
        let mut raw = 0i64;
        for (channel, region) in Self::walks(query) {
            let params = rusqlite::params![channel, region, limit, query.min_duration, query.max_duration];
            let n: i64 = stmt.query_row(params, |r| r.get(0))?;
            if n >= limit {
                return Ok(TOTAL_CAP + 1);
            }
            raw += n;
        }
        let hidden_here: i64 = match hidden_sql {
            Some(rowids) if hidden_all > 0 => {
                let names = query.channel_names.as_ref().map(serde_json::to_string).transpose().unwrap_or_default();
                let params = rusqlite::params![
                    names,
                    query.region,
                    rusqlite::types::Null,
                    query.min_duration,
                    query.max_duration
                ];
                tx.prepare_cached(&sql::HIDDEN_IN_SQL.replace("{rowids}", &rowids))?.query_row(params, |r| r.get(0))?
            }
            _ => 0,
        };
        Ok(usize::try_from(raw - hidden_here).unwrap_or(0))
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
        let mut stmt = tx.prepare_cached(&sql::filtered(query.sort, &self.policy))?;
        let params = rusqlite::params![
            match_expr,
            query.region,
            i64::from(query.limit) + 1,
            i64::from(query.offset),
            query.channel_names.as_ref().map(serde_json::to_string).transpose().unwrap_or_default(),
            query.min_duration,
            query.max_duration
        ];
        for row in stmt.query_map(params, |r| row_item(r, r.get(6)?, &self.policy))? {
            items.push(row?);
        }
        Ok(items)
    }
}

/// A count made up to one past [`TOTAL_CAP`] as the answer gives it: (total, exact).
fn capped(counted: usize) -> (usize, bool) {
    (counted.min(TOTAL_CAP), counted <= TOTAL_CAP)
}

/// `query` with the stored channel names its `channel` matches (by key: case,
/// accents, spacing and punctuation folded), read in the answer's transaction; as
/// it is when it has no channel.
fn resolve_channel<'q>(tx: &Connection, query: &'q FeedQuery) -> Result<std::borrow::Cow<'q, FeedQuery>, Error> {
    let Some(asked) = &query.channel else { return Ok(std::borrow::Cow::Borrowed(query)) };
    let key = crate::text::channel_key(asked);
    let mut stmt = tx.prepare_cached(sql::CHANNEL_NAMES_SQL)?;
    let names = stmt.query_map([key], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(std::borrow::Cow::Owned(FeedQuery { channel_names: Some(names), ..query.clone() }))
}

/// The first rows of `query`'s order in `view` (skipped ones included), with its filters;
/// None when a column a filter reads holds a value the index cannot compare as SQL does.
fn rank(view: &index::View, phrases: &[Phrase], query: &FeedQuery, hidden: &index::Hidden) -> Option<Vec<index::Hit>> {
    match index_filter(query) {
        None => Some(view.top_k(phrases, &query.region, wanted(query), hidden)),
        Some(filter) => view.top_k_filtered(phrases, &query.region, wanted(query), hidden, &filter),
    }
}

/// `query`'s filters as the index applies them; None when it has none.
fn index_filter(query: &FeedQuery) -> Option<index::Filter<'_>> {
    query.is_filtered().then_some(index::Filter {
        channel: query.channel_names.as_deref(),
        min_duration: query.min_duration,
        max_duration: query.max_duration,
        sort: query.sort,
    })
}

/// Whether every token of every phrase is a known term (the last one as a prefix when it is one).
fn all_known(lexicon: &Lexicon<'_>, phrases: &[Phrase]) -> Result<bool, Error> {
    for phrase in phrases {
        let last = phrase.tokens.len().saturating_sub(1);
        for (i, token) in phrase.tokens.iter().enumerate() {
            if !lexicon.knows(token, phrase.prefix && i == last)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// A group's rows in order: ranked by the index (row ids and ranks, read at the end,
/// only those on the page) or read by SQL. One answer's groups are all of one kind
/// (the view and the filters decide, not the words).
/// What word dropping drops next (indexes into the phrases kept, ascending), with the
/// rows of the query left when they were ranked to decide.
type Dropping = (Vec<usize>, Option<Rows>);

enum Rows {
    Hits(Vec<index::Hit>),
    Items(Vec<FeedItem>),
}

/// What tells two rows of one answer apart: the row id, or the video id for SQL rows.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    Row(i64),
    Id(String),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Hits(h) => h.len(),
            Rows::Items(i) => i.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first row's `score` as the answer shows it (negated bm25).
    fn top_score(&self) -> Option<f64> {
        match self {
            Rows::Hits(h) => h.first().map(|h| if h.rank == 0.0 { 0.0 } else { -h.rank }),
            Rows::Items(i) => i.first().map(|i| i.score),
        }
    }

    fn keys(&self) -> Box<dyn Iterator<Item = Key> + '_> {
        match self {
            Rows::Hits(h) => Box::new(h.iter().map(|h| Key::Row(h.rowid))),
            Rows::Items(i) => Box::new(i.iter().map(|i| Key::Id(i.id.clone()))),
        }
    }

    /// Appends the rows of `more` not in `seen` (and records them there).
    fn append_new(&mut self, more: Rows, seen: &mut std::collections::HashSet<Key>) {
        match (self, more) {
            (Rows::Hits(list), Rows::Hits(more)) => {
                list.extend(more.into_iter().filter(|h| seen.insert(Key::Row(h.rowid))));
            }
            (Rows::Items(list), Rows::Items(more)) => {
                list.extend(more.into_iter().filter(|i| seen.insert(Key::Id(i.id.clone()))));
            }
            // Cannot happen (one answer's groups are of one kind); nothing is added.
            (Rows::Hits(_), Rows::Items(_)) | (Rows::Items(_), Rows::Hits(_)) => {}
        }
    }

    /// Drops the first `n` rows (the pages before this one).
    fn skip(&mut self, n: usize) {
        match self {
            Rows::Hits(h) => drop(h.drain(..n.min(h.len()))),
            Rows::Items(i) => drop(i.drain(..n.min(i.len()))),
        }
    }
}

/// At most this many phrases are tried one by one when word dropping picks the next
/// word to drop (see `Reader::least_needed`); longer queries drop by rows alone.
pub const MAX_PROBED_WORDS: usize = 8;

/// Queries of up to this many phrases also try dropping two at once (see
/// `Reader::least_needed`): 15 more probes at 6.
pub const MAX_PAIR_WORDS: usize = 4;

/// Rows to rank for a page: those skipped, those shown, and one more that says a next page exists.
fn wanted(query: &FeedQuery) -> usize {
    usize::try_from(query.offset.saturating_add(query.limit).saturating_add(1)).unwrap_or(usize::MAX)
}

/// The page of `hits` after the skipped ones.
fn page(hits: Vec<index::Hit>, query: &FeedQuery) -> Vec<index::Hit> {
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
        let mut w = crate::store::Store::open(&db)?;
        let videos: Vec<crate::store::Video> = crate::store::demo::videos(3000, 1).collect();
        w.write_batch(&videos, &mut crate::store::ImportSummary::default())?;
        drop(w);
        let mut reader = Reader::open_read_only(&db)?;
        let q = FeedQuery {
            q: "the".into(),
            match_expr: tokenize::match_expression("the").unwrap_or_default(),
            region: "US".into(),
            limit: 24,
            offset: 0,
            channel: None,
            channel_names: None,
            min_duration: None,
            max_duration: None,
            sort: Sort::Relevance,
            highlight: false,
        };
        assert!(reader.search(&q).is_ok());
        reader.set_time_limit(std::time::Duration::ZERO);
        assert!(matches!(reader.search(&q), Err(Error::TimedOut(_))));
        reader.set_time_limit(std::time::Duration::from_secs(2));
        assert!(reader.search(&q).is_ok(), "the connection works again after an interrupt");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
