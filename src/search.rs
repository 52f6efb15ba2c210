//! Read-only search: one SQLite connection per worker, a bm25-ranked FTS5 query.
//!
//! The SQL ranks with `bm25(videos_fts, 8.0, 2.0)` (title weighted 8, channel
//! 2), keeps rows whose region is the requested one or `GLOBAL`, breaks ties
//! by video id so the order is deterministic, and reports `score` as the
//! negated bm25 (higher is better). The statement is prepared once per
//! connection (`prepare_cached`). No socket I/O; no writes.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::path::Path;

use rusqlite::{Connection, ErrorCode};
use serde::Serialize;

use crate::db;
use crate::request::FeedQuery;

/// The ranked search. `?1` match expression, `?2` region, `?3` limit.
const FEED_SQL: &str = "\
SELECT v.id, v.title, v.channel, v.duration_seconds, v.thumbnail, v.region,
       bm25(videos_fts, 8.0, 2.0) AS rank
FROM videos_fts JOIN videos AS v ON v.rowid = videos_fts.rowid
WHERE videos_fts MATCH ?1 AND v.region IN (?2, 'GLOBAL')
ORDER BY rank, v.id
LIMIT ?3";

/// One result row, serialised as-is into the `/feed` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(e) => write!(f, "{e}"),
            Error::Busy(e) => write!(f, "database busy: {e}"),
            Error::Sql(e) => write!(f, "search failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open(e) => Some(e),
            Error::Busy(e) | Error::Sql(e) => Some(e),
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

/// A worker's read-only connection. `Send`, not `Sync`: one per thread.
pub struct Reader {
    conn: Connection,
}

impl Reader {
    /// Opens `path` read-only (see [`db::open_reader`]) and prepares the feed statement.
    ///
    /// # Errors
    /// [`Error::Open`] when the database is missing, unreadable or not videofeed's;
    /// [`Error::Sql`] if the statement cannot be prepared.
    pub fn open_read_only(path: &Path) -> Result<Reader, Error> {
        let conn = db::open_reader(path).map_err(Error::Open)?;
        conn.prepare_cached(FEED_SQL)?;
        Ok(Reader { conn })
    }

    /// Runs the ranked search for `query`.
    ///
    /// # Errors
    /// [`Error::Busy`] or [`Error::Sql`] from SQLite. A match expression from
    /// [`crate::fts::match_expression`] never causes an FTS5 syntax error.
    pub fn search(&self, query: &FeedQuery) -> Result<Vec<FeedItem>, Error> {
        let mut stmt = self.conn.prepare_cached(FEED_SQL)?;
        let rows = stmt.query_map(rusqlite::params![query.match_expr, query.region, i64::from(query.limit)], |r| {
            let rank: f64 = r.get(6)?;
            Ok(FeedItem {
                id: r.get(0)?,
                title: r.get(1)?,
                channel: r.get(2)?,
                duration_seconds: r.get(3)?,
                thumbnail: r.get(4)?,
                region: r.get(5)?,
                score: if rank == 0.0 { 0.0 } else { -rank },
            })
        })?;
        let mut items = Vec::with_capacity(usize::try_from(query.limit).unwrap_or(0));
        for row in rows {
            items.push(row?);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn assert_send<T: Send>() {}
    const _: () = assert_send::<Reader>();

    /// Every string, however hostile, goes through the match builder into a
    /// real FTS5 table without an SQLite error.
    mod property {
        use proptest::prelude::*;
        use rusqlite::Connection;

        use crate::fts::match_expression;

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
