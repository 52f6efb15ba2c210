//! JSON Lines → validated rows → the [`Store`], in batched transactions.
//!
//! Rows are upserted by `id`; a row identical to the stored one is counted as
//! unchanged and does not touch the FTS index. Each batch is one transaction:
//! it is validated first, so a bad line is reported (line number and reason)
//! and never half written. With `strict`, the first bad line stops the import
//! and nothing of its batch is committed; earlier batches stay committed. Into
//! an empty database the whole input is one bulk transaction with the FTS
//! index built once at the end. JSON is parsed on a second thread.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::video::{ParseRules, Video, parse_line_with};
use super::{Counts, Error, Store, retry_busy, upsert_rows};

/// Longest accepted input line; a longer one is rejected without being buffered whole.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Page cache of an import's connection into a live catalogue, in KiB.
pub const IMPORT_CACHE_KIB: i64 = 65_536;
/// Rows per transaction unless told otherwise.
pub const DEFAULT_BATCH: usize = 10_000;

/// A rejected input line, or (with [`ParseRules::lenient`]) a line imported without a bad
/// optional field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line number.
    pub line: u64,
    /// What was wrong with it.
    pub reason: String,
    /// The row was imported anyway, without the field the reason names.
    pub kept: bool,
}

/// Import options.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Rows per transaction (at least 1).
    pub batch_size: usize,
    /// Stop at the first bad line.
    pub strict: bool,
    /// Bulk-load an empty database: the whole input in one transaction, the FTS index built
    /// once at the end instead of row by row (about 3x faster). Ignored when rows exist.
    pub bulk_when_empty: bool,
    /// How dates and numbers of real exports are read (`--assume-utc`, `--lenient`).
    pub rules: ParseRules,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions { batch_size: DEFAULT_BATCH, strict: false, bulk_when_empty: true, rules: ParseRules::default() }
    }
}

/// Counts so far; the final one is the import's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
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
    /// Lines imported without a bad optional field ([`ParseRules::lenient`]).
    pub kept_without: u64,
    /// Wall time so far.
    pub elapsed: Duration,
}

impl ImportSummary {
    /// Accepted rows per second.
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        let rows = (self.inserted + self.updated + self.unchanged) as f64;
        if secs > 0.0 { rows / secs } else { rows }
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lines={} inserted={} updated={} unchanged={} rejected={}{} seconds={:.2} rows_per_s={:.0}",
            self.lines,
            self.inserted,
            self.updated,
            self.unchanged,
            self.rejected,
            if self.kept_without > 0 { format!(" kept_without_a_field={}", self.kept_without) } else { String::new() },
            self.elapsed.as_secs_f64(),
            self.rows_per_second()
        )
    }
}

impl Store {
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
        opts: ImportOptions,
        on_reject: &mut dyn FnMut(&Rejection),
        on_progress: &mut dyn FnMut(&ImportSummary),
    ) -> Result<ImportSummary, Error> {
        // Parsing and validating JSON runs on a second thread, ahead of the writer.
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Parsed>, Error>>(4);
            scope.spawn(move || {
                let mut lines = Lines { input, line_no: 0, raw: Vec::new(), rules: opts.rules };
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
        opts: ImportOptions,
        on_reject: &mut dyn FnMut(&Rejection),
        on_progress: &mut dyn FnMut(&ImportSummary),
    ) -> Result<ImportSummary, Error> {
        let started = Instant::now();
        let batch_size = opts.batch_size.max(1);
        let mut parsed = chunks.flat_map(|c| match c {
            Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        });
        let mut summary = ImportSummary::default();
        let mut seen = std::collections::HashSet::new();
        let mut batch: Vec<Video> = Vec::with_capacity(batch_size.min(100_000));
        let bulk = if opts.bulk_when_empty && self.count()? == 0 { Some(BulkLoad::begin(&self.conn)?) } else { None };
        if bulk.is_none() {
            // Batches into a live catalogue touch the table and its seven indexes at
            // random places: a 64 MiB page cache for this connection keeps their upper
            // levels in memory (docs/benchmarks.md §23: 50,000 new videos into 1M).
            self.conn.execute_batch(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))?;
        }
        loop {
            let next = parsed.next().transpose()?;
            let done = next.is_none();
            if let Some((line, outcome)) = next {
                summary.lines += 1;
                match outcome {
                    Ok((v, warnings)) => {
                        batch.push(v);
                        for reason in warnings {
                            summary.kept_without += 1;
                            on_reject(&Rejection { line, reason, kept: true });
                        }
                    }
                    Err(reason) => {
                        let rejection = Rejection { line, reason, kept: false };
                        if opts.strict {
                            summary.elapsed = started.elapsed();
                            // Not committed: the bulk transaction rolls back on drop.
                            let committed = if bulk.is_some() { ImportSummary::default() } else { summary };
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

/// What `import --sync` found before changing anything: the ids the input holds,
/// its bad lines, and the videos the catalogue holds that the input does not.
#[derive(Debug, Default)]
pub struct SyncPlan {
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines that are not valid videos (then nothing is deleted).
    pub rejected: u64,
    /// Videos in the catalogue before the sync.
    pub catalogue: u64,
    /// What the upserts would do (only when asked for: a dry run).
    pub would: Option<Counts>,
    /// Ids in the catalogue and not in the input, in id order: what the sync deletes.
    pub to_delete: Vec<String>,
}

/// Ids deleted per transaction by [`Store::delete_ids`]: short write locks, so a
/// serving responder's writes and its readers' catch-ups interleave with a sync.
pub const DELETE_BATCH: usize = 2_000;

impl Store {
    /// Reads `input` (the file a sync makes the catalogue equal to) without writing:
    /// its ids, its bad lines (each passed to `on_reject`), and the catalogue's ids it
    /// does not hold; with `compare`, what upserting it would do (each row compared
    /// with the stored one).
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Sql`].
    pub fn sync_plan<R: BufRead>(
        &self,
        input: R,
        rules: ParseRules,
        compare: bool,
        on_reject: &mut dyn FnMut(&Rejection),
    ) -> Result<SyncPlan, Error> {
        let mut lines = Lines { input, line_no: 0, raw: Vec::new(), rules };
        let mut ids: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut plan = SyncPlan { would: compare.then(Counts::default), ..SyncPlan::default() };
        while let Some((line, outcome)) = lines.next_video()? {
            plan.lines += 1;
            match outcome {
                Ok((video, _)) => {
                    if let Some(would) = plan.would.as_mut() {
                        if !ids.contains(&video.id) {
                            match super::stored_video(&self.conn, &video.id)? {
                                None => would.inserted += 1,
                                Some(stored) if stored == video => would.unchanged += 1,
                                Some(_) => would.updated += 1,
                            }
                        }
                    }
                    ids.insert(video.id);
                }
                Err(reason) => {
                    plan.rejected += 1;
                    on_reject(&Rejection { line, reason, kept: false });
                }
            }
        }
        let mut stmt = self.conn.prepare("SELECT id FROM videos ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            plan.catalogue += 1;
            let id: String = row.get(0)?;
            if !ids.contains(&id) {
                plan.to_delete.push(id);
            }
        }
        if let Some(would) = plan.would.as_mut() {
            would.deleted = u64::try_from(plan.to_delete.len()).unwrap_or(u64::MAX);
        }
        Ok(plan)
    }

    /// Deletes the videos `ids`, [`DELETE_BATCH`] per transaction (each retried while
    /// another process holds the write lock), calling `on_progress` with the number
    /// deleted so far after each; ids already gone are skipped. Returns how many went.
    ///
    /// # Errors
    /// [`Error::Sql`]: the batch in progress rolled back, the earlier ones committed.
    pub fn delete_ids(&mut self, ids: &[String], on_progress: &mut dyn FnMut(u64)) -> Result<u64, Error> {
        let mut deleted = 0u64;
        for batch in ids.chunks(DELETE_BATCH) {
            let n = retry_busy(|| {
                let tx = self.conn.unchecked_transaction()?;
                let mut n = 0u64;
                {
                    let mut stmt = tx.prepare_cached("DELETE FROM videos WHERE id = ?1")?;
                    for id in batch {
                        n += u64::try_from(stmt.execute([id])?).unwrap_or(0);
                    }
                }
                tx.commit()?;
                Ok(n)
            })?;
            deleted += n;
            on_progress(deleted);
        }
        Ok(deleted)
    }
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
            "INSERT INTO videos_fts (videos_fts) VALUES ('delete-all');
             INSERT INTO videos_fts (rowid, title, channel)
             SELECT rowid, videofeed_search_text(title), videofeed_search_text(channel) FROM videos;
             INSERT OR IGNORE INTO channel_keys (name, key)
             SELECT channel, videofeed_channel_key(channel) FROM videos GROUP BY channel;
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
type Parsed = (u64, Result<(Video, Vec<String>), String>);
/// Lines handed from the parser thread to the writer at a time.
const PARSE_CHUNK: usize = 2000;

/// The input, line by line, validated.
struct Lines<R> {
    input: R,
    line_no: u64,
    raw: Vec<u8>,
    rules: ParseRules,
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
                    Ok(s) => parse_line_with(s, self.rules),
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
