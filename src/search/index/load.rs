//! Loading a [`Snapshot`] from the database: FTS5's own tokens (the
//! `fts5vocab` instance table), row sizes (`%_docsize`) and regions, read in
//! one read transaction on a connection of its own.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::build::{Builder, Instance};
use super::columns::{Cols, Inexact};
use super::snapshot::Snapshot;
use crate::search::Error;
use crate::search::sql::GENERATION_SQL;

fn open_plain_reader(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(reason) = crate::store::db::replaced_under_its_wal(path) {
        let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN);
        return Err(rusqlite::Error::SqliteFailure(code, Some(reason)));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    Ok(conn)
}

pub(super) fn current_generation(path: &Path) -> rusqlite::Result<i64> {
    open_plain_reader(path)?.query_row(GENERATION_SQL, [], |r| r.get(0))
}

/// Whether the change log holds every generation after `from` up to the current
/// one, so a base snapshot at `from` can be brought up to date from it.
pub(super) fn log_reaches(path: &Path, from: i64) -> bool {
    let check = || -> rusqlite::Result<bool> {
        let conn = open_plain_reader(path)?;
        let tx = conn.unchecked_transaction()?;
        let now: i64 = tx.query_row(GENERATION_SQL, [], |r| r.get(0))?;
        if from >= now {
            return Ok(from == now);
        }
        let (entries, lowest): (i64, Option<i64>) =
            tx.query_row(crate::search::sql::CHANGES_COUNT_SQL, [from, now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(entries == now - from && lowest == Some(from + 1))
    };
    check().unwrap_or(false)
}

/// Builds a snapshot from FTS5's own tokens, in one read transaction.
pub(super) fn load(path: &Path) -> Result<Snapshot, Error> {
    load_unless(path, &|| false)
}

/// Rows read between two looks at `abandon`.
const ABANDON_CHECK_EVERY: u64 = 1 << 16;

/// As [`load`], giving up with [`Error::Abandoned`] as soon as `abandon` says so
/// (looked at every [`ABANDON_CHECK_EVERY`] rows read): a low-priority compaction
/// that fell behind the writes is started again at normal priority.
pub(super) fn load_unless(path: &Path, abandon: &dyn Fn() -> bool) -> Result<Snapshot, Error> {
    let mut read = 0u64;
    let mut check = || -> Result<(), Error> {
        read += 1;
        if read % ABANDON_CHECK_EVERY == 0 && abandon() { Err(Error::Abandoned) } else { Ok(()) }
    };
    let conn = open_plain_reader(path)?;
    conn.execute_batch(
        "CREATE VIRTUAL TABLE temp.vf_instances USING fts5vocab(main, 'videos_fts', 'instance');
         CREATE VIRTUAL TABLE temp.vf_terms USING fts5vocab(main, 'videos_fts', 'row');",
    )?;
    let tx = conn.unchecked_transaction()?;
    let generation: i64 = tx.query_row(GENERATION_SQL, [], |r| r.get(0))?;
    let n_rows: i64 = tx.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?;
    let mut builder = Builder::new(generation, n_rows);
    {
        let mut stmt =
            tx.prepare("SELECT rowid, region, duration_seconds, published_at, view_count, channel FROM videos")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            check()?;
            let region: String = row.get(1)?;
            builder.set_region(row.get(0)?, &region).map_err(|e| Error::Index(e.to_string()))?;
            let (cols, inexact) = cols_of(row, 2)?;
            builder.set_cols(row.get(0)?, &cols, inexact).map_err(|e| Error::Index(e.to_string()))?;
        }
    }
    {
        // Token counts per column, as FTS5 stores them (its `D` in bm25).
        let mut stmt = tx.prepare("SELECT id, sz FROM videos_fts_docsize")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            check()?;
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
    let mut instances: Vec<Instance> = Vec::new();
    let mut flush = |term: &str, instances: &mut Vec<Instance>| -> Result<(), Error> {
        if !instances.is_empty() {
            instances.sort_by_key(|i| i.rowid);
            builder.add_term(term, instances).map_err(|e| Error::Index(e.to_string()))?;
            instances.clear();
        }
        Ok(())
    };
    while let Some(row) = rows.next()? {
        check()?;
        let t = row.get_ref(0)?.as_str().map_err(|e| Error::Index(e.to_string()))?;
        if t != term {
            flush(&term, &mut instances)?;
            term.clear();
            term.push_str(t);
        }
        let column = u8::from(row.get::<_, bool>(2)?);
        let offset = u32::try_from(row.get::<_, i64>(3)?).unwrap_or(u32::MAX);
        instances.push(Instance { rowid: row.get(1)?, column, offset });
    }
    flush(&term, &mut instances)?;
    drop(rows);
    drop(stmt);
    Ok(builder.finish())
}

/// A row's filter and sort columns from `duration_seconds, published_at, view_count,
/// channel` at columns `at..at + 4`, with the ones SQL would compare differently marked.
///
/// # Errors
/// A column index out of range (a bug in the statement).
pub(super) fn cols_of(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<(Cols, Inexact)> {
    use rusqlite::types::ValueRef;
    let mut inexact = Inexact::default();
    let duration = match row.get_ref(at)? {
        ValueRef::Integer(i) => i,
        _ => {
            inexact.duration = true;
            0
        }
    };
    let published = match row.get_ref(at + 1)? {
        ValueRef::Null => None,
        ValueRef::Text(t) => {
            let canonical = std::str::from_utf8(t).ok().and_then(canonical_time);
            inexact.published |= canonical.is_none();
            canonical
        }
        _ => {
            inexact.published = true;
            None
        }
    };
    let views = match row.get_ref(at + 2)? {
        ValueRef::Integer(i) => i,
        _ => {
            inexact.views = true;
            0
        }
    };
    let channel = match row.get_ref(at + 3)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => {
            inexact.channel = true;
            String::new()
        }
    };
    Ok((Cols { duration, published, views, channel }, inexact))
}

/// Unix seconds of a canonical `YYYY-MM-DDTHH:MM:SSZ` (the form imports store), where
/// text order is time order; None for any other text.
fn canonical_time(text: &str) -> Option<i64> {
    let unix = crate::timefmt::parse_rfc3339(text).ok()?;
    (text.len() == 20 && crate::timefmt::rfc3339(unix) == text).then_some(unix)
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
