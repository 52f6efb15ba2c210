//! JSON Lines → validated rows → the single writer connection, in batched transactions.
//!
//! The import format is the one `shared/bench/gen_corpus.py` writes: one JSON
//! object per line with `id`, `title`, `channel`, `duration_seconds`,
//! `thumbnail`, `region`, and optionally `published_at` and `view_count`.
//! Unknown fields are ignored; blank lines are skipped. Rows are upserted by
//! `id`; a row identical to the stored one is counted as unchanged and does
//! not touch the FTS index. Each batch is one transaction: it is validated
//! first, so a bad line is reported (line number and reason) and never half
//! written. With `strict`, the first bad line stops the import and nothing of
//! its batch is committed; earlier batches stay committed.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::store::db;

/// Longest accepted input line; a longer one is rejected without being buffered whole.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Rows per transaction unless told otherwise.
pub const DEFAULT_BATCH: usize = 10_000;

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

/// One valid video row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Unique id (1..=64 characters, no spaces).
    pub id: String,
    /// Title (non-empty).
    pub title: String,
    /// Channel name (non-empty).
    pub channel: String,
    /// Length in seconds, 0..=1,000,000.
    pub duration_seconds: i64,
    /// Thumbnail URL (http or https).
    pub thumbnail: String,
    /// Two upper-case letters, or `GLOBAL`.
    pub region: String,
    /// When it was published, in UTC (`YYYY-MM-DDTHH:MM:SSZ`), if known.
    pub published_at: Option<String>,
    /// View count, 0 when unknown.
    pub view_count: i64,
}

/// A rejected input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line number.
    pub line: u64,
    /// What was wrong with it.
    pub reason: String,
}

/// Import options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Rows per transaction (at least 1).
    pub batch_size: usize,
    /// Stop at the first bad line.
    pub strict: bool,
    /// Bulk-load an empty database: the whole input in one transaction, the FTS index built
    /// once at the end instead of row by row (about 3x faster). Ignored when rows exist.
    pub bulk_when_empty: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { batch_size: DEFAULT_BATCH, strict: false, bulk_when_empty: true }
    }
}

/// Counts so far; the final one is the import's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Non-blank lines read.
    pub lines: u64,
    /// New videos.
    pub inserted: u64,
    /// Existing videos whose data changed.
    pub updated: u64,
    /// Existing videos sent again unchanged.
    pub unchanged: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// Wall time so far.
    pub elapsed: Duration,
}

impl Summary {
    /// Accepted rows per second.
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        let rows = (self.inserted + self.updated + self.unchanged) as f64;
        if secs > 0.0 { rows / secs } else { rows }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lines={} inserted={} updated={} unchanged={} rejected={} seconds={:.2} rows_per_s={:.0}",
            self.lines,
            self.inserted,
            self.updated,
            self.unchanged,
            self.rejected,
            self.elapsed.as_secs_f64(),
            self.rows_per_second()
        )
    }
}

/// Why an import stopped.
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
        committed: Summary,
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

/// Validates one JSON line into a [`Video`].
///
/// # Errors
/// A reason naming the field and the rule it broke.
pub fn parse_line(line: &str) -> Result<Video, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".into());
    };
    let id = text(&obj, "id", 64)?;
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("id must not contain spaces or control characters".into());
    }
    let title = text(&obj, "title", 1000)?;
    let channel = text(&obj, "channel", 200)?;
    let duration_seconds =
        integer(&obj, "duration_seconds", 1_000_000)?.ok_or_else(|| "duration_seconds is required".to_owned())?;
    let thumbnail = text(&obj, "thumbnail", 2048)?;
    if !(thumbnail.starts_with("https://") || thumbnail.starts_with("http://")) {
        return Err("thumbnail must be an http:// or https:// URL".into());
    }
    let region = text(&obj, "region", 6)?.to_ascii_uppercase();
    if !(region == "GLOBAL" || (region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()))) {
        return Err(format!("region must be two letters or GLOBAL, got {region:?}"));
    }
    let published_at = match obj.get("published_at") {
        None | Some(Value::Null) => None,
        // Stored in UTC, so `sort=recent` can compare the text.
        Some(Value::String(s)) if s.len() > 40 => return Err("published_at is longer than 40 characters".into()),
        Some(Value::String(s)) => match crate::timefmt::parse_rfc3339(s) {
            Ok(unix) => Some(crate::timefmt::rfc3339(unix)),
            Err(why) => return Err(format!("published_at {why} (an RFC 3339 date-time such as 2024-05-01T12:00:00Z)")),
        },
        Some(_) => return Err("published_at must be an RFC 3339 date-time string such as 2024-05-01T12:00:00Z".into()),
    };
    let view_count = integer(&obj, "view_count", i64::MAX)?.unwrap_or(0);
    Ok(Video { id, title, channel, duration_seconds, thumbnail, region, published_at, view_count })
}

fn text(obj: &Map<String, Value>, field: &str, max_chars: usize) -> Result<String, String> {
    match obj.get(field) {
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Err(format!("{field} must not be empty"))
            } else if s.chars().count() > max_chars {
                Err(format!("{field} is longer than {max_chars} characters"))
            } else {
                Ok(s.to_owned())
            }
        }
        None | Some(Value::Null) => Err(format!("{field} is required")),
        Some(_) => Err(format!("{field} must be a string")),
    }
}

fn integer(obj: &Map<String, Value>, field: &str, max: i64) -> Result<Option<i64>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        // 98.0 is a whole number too (PHP's json_encode writes floats that way).
        Some(Value::Number(n)) => match n.as_i64().or_else(|| whole(n.as_f64())) {
            Some(v) if (0..=max).contains(&v) => Ok(Some(v)),
            _ => Err(format!("{field} must be a whole number from 0 to {max}")),
        },
        Some(_) => Err(format!("{field} must be a number")),
    }
}

/// A float with no fraction that fits an i64 exactly, as that integer.
fn whole(f: Option<f64>) -> Option<i64> {
    // 2^53: beyond it not every integer is a float, so the value may not be the one sent.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let f = f.filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)?;
    #[expect(clippy::cast_possible_truncation, reason = "checked: whole and within ±2^53")]
    Some(f as i64)
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

/// One write of a live write request, applied by [`Writer::apply_group`].
#[derive(Debug, Clone)]
pub enum Op {
    /// Upsert these (already validated) videos.
    Upsert(Vec<Video>),
    /// Delete the video with this id.
    Delete(String),
    /// Record thumbnail checks (`videofeed check-thumbnails`).
    Thumbnails(Vec<crate::jobs::ThumbnailCheck>),
    /// Record channel metadata (`videofeed enrich-channels`).
    Channels(Vec<crate::jobs::ChannelRecord>),
}

impl Op {
    /// Rows this op writes, for group-commit bounds.
    pub fn rows(&self) -> usize {
        match self {
            Op::Upsert(v) => v.len(),
            Op::Delete(_) => 1,
            Op::Thumbnails(c) => c.len(),
            Op::Channels(c) => c.len(),
        }
    }
}

/// What one op did: its counts and the regions whose feeds it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows written.
    pub counts: Counts,
    /// Regions whose feeds changed (`GLOBAL` included), sorted, unique: a new video's
    /// region, an updated video's old and new one, a deleted video's; none for a
    /// video sent again unchanged.
    pub regions: Vec<String>,
}

impl Counts {
    fn add_to(self, summary: &mut Summary) {
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
fn upsert_rows(
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

/// Runs `f` again while it fails with SQLITE_BUSY/LOCKED, up to 6 more times (~4 s of
/// back-off on top of each attempt's busy timeout).
fn retry_busy<T>(mut f: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
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

/// The single writer: one read-write connection.
pub struct Writer {
    conn: Connection,
}

impl Writer {
    /// Opens or creates the database at `path` for writing (see [`db::open_writer`]).
    ///
    /// # Errors
    /// [`Error::Db`] when it cannot be opened or is not a videofeed database.
    pub fn open(path: &Path) -> Result<Writer, Error> {
        Ok(Writer { conn: db::open_writer(path).map_err(Error::Db)? })
    }

    /// Applies `ops` as one group commit: one transaction, a savepoint per op.
    /// An op that fails is rolled back alone and answered with its error; the
    /// others commit together. Waits (with retries) while another process holds
    /// the write lock, up to about 30 s.
    ///
    /// # Errors
    /// [`Error::Sql`] when the transaction cannot start or commit: then nothing
    /// of any op was written, and every op should be answered with the error.
    pub fn apply_group(&mut self, ops: &[&Op]) -> Result<Vec<Result<Applied, String>>, Error> {
        retry_busy(|| Ok(self.conn.execute_batch("BEGIN IMMEDIATE")?))?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            self.conn.execute_batch("SAVEPOINT op")?;
            match apply_op(&self.conn, op) {
                Ok(applied) => {
                    self.conn.execute_batch("RELEASE op")?;
                    results.push(Ok(applied));
                }
                Err(e) => {
                    self.conn.execute_batch("ROLLBACK TO op; RELEASE op")?;
                    results.push(Err(e.to_string()));
                }
            }
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(Error::Sql(e));
        }
        Ok(results)
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
    pub fn write_batch(&mut self, videos: &[Video], summary: &mut Summary) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        let counts = upsert_rows(&tx, videos, None, None)?;
        tx.commit()?;
        counts.add_to(summary);
        Ok(())
    }

    /// Imports JSON Lines from `input`.
    ///
    /// Into an empty database (with `bulk_when_empty`) the whole input is one
    /// transaction and the FTS index is built once at the end; otherwise each
    /// batch of `batch_size` rows is one transaction. `on_reject` is called for
    /// every bad line (non-strict mode), `on_progress` after every batch.
    ///
    /// # Errors
    /// [`Error::Read`], [`Error::Sql`] (the transaction in progress rolled back), or
    /// [`Error::Strict`] at the first bad line with `strict`.
    pub fn import<R: BufRead + Send>(
        &mut self,
        input: R,
        opts: Options,
        on_reject: &mut dyn FnMut(&Rejection),
        on_progress: &mut dyn FnMut(&Summary),
    ) -> Result<Summary, Error> {
        // Parsing and validating JSON runs on a second thread, ahead of the writer.
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Parsed>, Error>>(4);
            scope.spawn(move || {
                let mut lines = Lines { input, line_no: 0, raw: Vec::new() };
                loop {
                    let mut chunk = Vec::with_capacity(PARSE_CHUNK);
                    let mut end = false;
                    while chunk.len() < PARSE_CHUNK {
                        match lines.next_video() {
                            Ok(Some(parsed)) => chunk.push(parsed),
                            Ok(None) => {
                                end = true;
                                break;
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    if (!chunk.is_empty() && tx.send(Ok(chunk)).is_err()) || end {
                        return;
                    }
                }
            });
            self.import_parsed(rx.iter(), opts, on_reject, on_progress)
        })
    }

    fn import_parsed(
        &mut self,
        chunks: impl Iterator<Item = Result<Vec<Parsed>, Error>>,
        opts: Options,
        on_reject: &mut dyn FnMut(&Rejection),
        on_progress: &mut dyn FnMut(&Summary),
    ) -> Result<Summary, Error> {
        let started = Instant::now();
        let batch_size = opts.batch_size.max(1);
        let mut parsed = chunks.flat_map(|c| match c {
            Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        });
        let mut summary = Summary::default();
        let mut seen = std::collections::HashSet::new();
        let mut batch: Vec<Video> = Vec::with_capacity(batch_size.min(100_000));
        let bulk = if opts.bulk_when_empty && self.count()? == 0 { Some(BulkLoad::begin(&self.conn)?) } else { None };
        loop {
            let next = parsed.next().transpose()?;
            let done = next.is_none();
            if let Some((line, outcome)) = next {
                summary.lines += 1;
                match outcome {
                    Ok(v) => batch.push(v),
                    Err(reason) => {
                        let rejection = Rejection { line, reason };
                        if opts.strict {
                            summary.elapsed = started.elapsed();
                            // Not committed: the bulk transaction rolls back on drop.
                            let committed = if bulk.is_some() { Summary::default() } else { summary };
                            return Err(Error::Strict { rejection, committed });
                        }
                        summary.rejected += 1;
                        on_reject(&rejection);
                    }
                }
            }
            if batch.len() >= batch_size || (done && !batch.is_empty()) {
                match &bulk {
                    Some(load) => upsert_rows(load.conn, &batch, Some(&mut seen), None)?.add_to(&mut summary),
                    None => {
                        // Another writer (the serving process, another import) may hold the
                        // lock past the busy timeout: retry the whole batch, never give up
                        // with "database is locked" while it keeps making progress.
                        let counts = retry_busy(|| {
                            let tx = self.conn.unchecked_transaction()?;
                            let counts = upsert_rows(&tx, &batch, None, None)?;
                            tx.commit()?;
                            Ok(counts)
                        })?;
                        counts.add_to(&mut summary);
                    }
                }
                batch.clear();
                summary.elapsed = started.elapsed();
                on_progress(&summary);
            }
            if done {
                break;
            }
        }
        if let Some(load) = bulk {
            load.finish()?;
        }
        summary.elapsed = started.elapsed();
        on_progress(&summary);
        Ok(summary)
    }
}

fn apply_op(conn: &Connection, op: &Op) -> Result<Applied, Error> {
    let mut regions: Vec<String> = Vec::new();
    let counts = match op {
        Op::Upsert(videos) => upsert_rows(conn, videos, None, Some(&mut regions))?,
        Op::Delete(id) => {
            let region: Option<String> = conn
                .query_row("SELECT region FROM videos WHERE id = ?1", [id], |r| r.get(0))
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
            let deleted = conn.execute("DELETE FROM videos WHERE id = ?1", [id])?;
            regions.extend(region);
            Counts { deleted: u64::try_from(deleted).unwrap_or(0), ..Counts::default() }
        }
        // Job results touch no video rows; the triggers purge nothing but move the data version.
        Op::Thumbnails(checks) => {
            Counts { updated: crate::jobs::write_thumbnail_checks(conn, checks)?, ..Counts::default() }
        }
        Op::Channels(channels) => Counts { updated: crate::jobs::write_channels(conn, channels)?, ..Counts::default() },
    };
    regions.sort_unstable();
    regions.dedup();
    Ok(Applied { counts, regions })
}

/// A bulk load in progress: one open transaction with the `videos` triggers
/// dropped. [`BulkLoad::finish`] builds the FTS index in one pass, bumps the
/// generation, restores the triggers and commits; dropping it without
/// finishing rolls everything back (triggers included: DDL is transactional).
struct BulkLoad<'c> {
    conn: &'c Connection,
    triggers: Vec<String>,
    open: bool,
}

impl<'c> BulkLoad<'c> {
    fn begin(conn: &'c Connection) -> Result<BulkLoad<'c>, Error> {
        // A large page cache for the one big transaction (random-order id index inserts).
        conn.execute_batch("PRAGMA cache_size = -262144")?;
        retry_busy(|| Ok(conn.execute_batch("BEGIN IMMEDIATE")?))?;
        let mut load = BulkLoad { conn, triggers: Vec::new(), open: true };
        let triggers: Vec<(String, String)> = {
            let mut stmt =
                conn.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'videos'")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
        };
        for (name, sql) in triggers {
            conn.execute_batch(&format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\"")))?;
            load.triggers.push(sql);
        }
        Ok(load)
    }

    fn finish(mut self) -> Result<(), Error> {
        let started = Instant::now();
        self.conn.execute_batch(
            "INSERT INTO videos_fts (videos_fts) VALUES ('rebuild');
             UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
             WHERE key IN ('generation', 'changes', 'last_write');",
        )?;
        log::info!("bulk load: full-text index built in {} ms", started.elapsed().as_millis());
        for sql in &self.triggers {
            self.conn.execute_batch(sql)?;
        }
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for BulkLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            // An error or a --strict stop: nothing of the load stays, the triggers come back.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A line number and the video on it, or why it is not one.
type Parsed = (u64, Result<Video, String>);

/// Lines handed from the parser thread to the writer at a time.
const PARSE_CHUNK: usize = 2000;

/// The input, line by line, validated.
struct Lines<R> {
    input: R,
    line_no: u64,
    raw: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// The next non-blank line as a video or the reason it is not one; `None` at the end.
    fn next_video(&mut self) -> Result<Option<Parsed>, Error> {
        loop {
            self.raw.clear();
            let (read, too_long) = read_line_capped(&mut self.input, &mut self.raw).map_err(Error::Read)?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let outcome = if too_long {
                Err(format!("line is longer than {MAX_LINE_BYTES} bytes"))
            } else {
                match std::str::from_utf8(&self.raw) {
                    Ok(s) if s.trim().is_empty() => continue,
                    Ok(s) => parse_line(s),
                    Err(_) => Err("not valid UTF-8".to_owned()),
                }
            };
            return Ok(Some((self.line_no, outcome)));
        }
    }
}

/// Reads one line (without its `\n`, and `\r` trimmed) into `buf`, buffering at
/// most [`MAX_LINE_BYTES`]; returns the bytes consumed and whether the line was cut.
fn read_line_capped<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    let cap = u64::try_from(MAX_LINE_BYTES + 1).unwrap_or(u64::MAX);
    let n = input.by_ref().take(cap).read_until(b'\n', buf)?;
    let mut total = n;
    let mut too_long = false;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE_BYTES {
        too_long = true;
        // Skip the rest of the line without keeping it.
        let mut sink = Vec::new();
        loop {
            sink.clear();
            let m = input.by_ref().take(64 * 1024).read_until(b'\n', &mut sink)?;
            total += m;
            if m == 0 || sink.last() == Some(&b'\n') {
                break;
            }
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok((total, too_long))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"abc123DEF_-","title":"Lofi Hip Hop","channel":"Chill","duration_seconds":600,"thumbnail":"https://i.ytimg.com/vi/x/hqdefault.jpg","region":"us","published_at":"2024-01-02T03:04:05Z","view_count":12,"extra":true}"#;

    #[test]
    fn good_line_is_normalised() -> Result<(), String> {
        let v = parse_line(GOOD)?;
        assert_eq!(v.region, "US");
        assert_eq!(v.view_count, 12);
        assert_eq!(v.published_at.as_deref(), Some("2024-01-02T03:04:05Z"));
        // A whole number written as a float (PHP's json_encode does) is that number.
        let v = parse_line(&GOOD.replace("600", "600.0").replace(":12,", ":98.0,"))?;
        assert_eq!((v.duration_seconds, v.view_count), (600, 98));
        Ok(())
    }

    #[test]
    fn each_rule_has_a_reason() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"title":"t"}"#, "id is required"),
            (&GOOD.replace("\"Chill\"", "\"  \""), "channel must not be empty"),
            (&GOOD.replace("600", "-1"), "duration_seconds must be a whole number"),
            (&GOOD.replace("600", "600.5"), "duration_seconds must be a whole number"),
            (&GOOD.replace("600", "1e300"), "duration_seconds must be a whole number"),
            (&GOOD.replace("600", "\"600\""), "duration_seconds must be a number"),
            (&GOOD.replace("https://i.ytimg.com/vi/x/hqdefault.jpg", "javascript:alert(1)"), "thumbnail must be"),
            (&GOOD.replace("\"us\"", "\"USA\""), "region must be"),
            (&GOOD.replace("2024-01-02T03:04:05Z", "yesterday"), "published_at is not a date-time"),
            (&GOOD.replace("2024-01-02T03:04:05Z", "2024-13-45T99:99:99Z"), "published_at month 13"),
            (&GOOD.replace("2024-01-02T03:04:05Z", "2023-02-29T00:00:00Z"), "published_at day 29"),
            (&GOOD.replace("2024-01-02T03:04:05Z", "2024-01-02T03:04:05"), "published_at has no time zone"),
            (&GOOD.replace("abc123DEF_-", "a b"), "id must not contain"),
        ];
        for (line, want) in cases {
            match parse_line(line) {
                Err(reason) => assert!(reason.contains(want), "{line}: {reason}"),
                Ok(v) => panic!("accepted {line}: {v:?}"),
            }
        }
    }

    #[test]
    fn long_lines_are_cut_without_buffering_them() -> io::Result<()> {
        let mut input = Vec::new();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        input.extend_from_slice(b"\nnext\r\n");
        let mut r = io::Cursor::new(input);
        let mut buf = Vec::new();
        let (_, cut) = read_line_capped(&mut r, &mut buf)?;
        assert!(cut);
        buf.clear();
        let (n, cut) = read_line_capped(&mut r, &mut buf)?;
        assert_eq!((n, cut, buf.as_slice()), (6, false, b"next".as_slice()));
        Ok(())
    }
}
