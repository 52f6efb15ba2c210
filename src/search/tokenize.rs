//! Building an FTS5 MATCH expression from what a user typed, so that nothing
//! they type is FTS5 syntax.
//!
//! Rules (see `docs/decisions/0005-fts5-escaping.md`): the text is split on
//! white space and control characters; a chunk with no letter or digit is
//! dropped; every remaining chunk is quoted as an FTS5 string (a `"` inside is
//! doubled), so `AND`, `NEAR`, `*`, `^`, `:`, `-` and parentheses are plain
//! text; only the last chunk gets a prefix `*` (the word still being typed).
//! Chunks are joined by spaces, which FTS5 reads as AND. Inside a quoted
//! chunk FTS5's own tokenizer splits punctuation, so `c++` searches `c` and
//! `don't` the phrase `don t`. Pure string code: no SQLite here.
//!
//! One-character rule: when the word being typed (the last run of letters and
//! digits of the last chunk) is a single character, it is matched as a whole
//! word, not as a prefix: `t*` would expand to every word starting with t (a
//! tenth of the vocabulary) and rank nothing useful. `lofi h` finds videos
//! with the word `h`; `lofi hi` finds `hip`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// The query text as it is tokenized: NFKC-folded, so full-width and compatibility
/// forms (`ｍｕｓｉｃ`, `ﬁ`, `①`) search as the plain characters they stand for.
/// Unchanged (borrowed) when already in NFKC, the common case.
pub fn normalize(q: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::{IsNormalized, is_nfkc_quick};
    if q.is_ascii() || is_nfkc_quick(q.chars()) == IsNormalized::Yes {
        return std::borrow::Cow::Borrowed(q);
    }
    std::borrow::Cow::Owned(q.nfkc().collect())
}

/// A query phrase: consecutive tokens, the last one whole or as a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// The tokens as FTS5's tokenizer produced them (folded), at least one.
    pub tokens: Vec<String>,
    /// The last token matches every term starting with it.
    pub prefix: bool,
}

/// At most this many chunks go into one expression; later ones are ignored.
pub const MAX_TERMS: usize = 32;

/// The searchable chunks of `q`, in order: what [`match_expression`] quotes.
pub fn chunks(q: &str) -> Vec<&str> {
    q.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|chunk| chunk.chars().any(char::is_alphanumeric))
        .take(MAX_TERMS)
        .collect()
}

/// Whether the last word of `q` is matched as a prefix (see the one-character rule).
pub fn last_is_prefix(q: &str) -> bool {
    chunks(q).last().is_some_and(|chunk| {
        let tail = chunk.chars().rev().skip_while(|c| !c.is_alphanumeric()).take_while(|c| c.is_alphanumeric());
        tail.take(2).count() >= 2
    })
}

/// Each searchable chunk of `q` as search text ([`crate::text::query_text`]: folded,
/// words inside CJK and Thai-like text split apart), and whether it is matched as a
/// prefix: the last chunk by the one-character rule, and any chunk that ends with a
/// lone CJK character (in titles every such character starts a bigram).
pub fn search_chunks(q: &str) -> Vec<(std::borrow::Cow<'_, str>, bool)> {
    let prefix = last_is_prefix(q);
    let chunks = chunks(q);
    let last = chunks.len().saturating_sub(1);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let (text, lone_cjk) = crate::text::query_text(chunk);
            (text, lone_cjk || (i == last && prefix))
        })
        .collect()
}

/// The MATCH expression for `q`, or `None` when `q` holds no letter or digit.
pub fn match_expression(q: &str) -> Option<String> {
    let chunks = search_chunks(q);
    if chunks.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(q.len() + 3 * chunks.len() + 1);
    for (i, (chunk, prefix)) in chunks.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for c in chunk.trim().chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
        if *prefix {
            out.push('*');
        }
    }
    Some(out)
}

/// FTS5's own tokenizer, through an in-memory FTS5 table with the same
/// settings: queries are split exactly as FTS5 splits them. One per reader.
pub struct Tokenizer {
    conn: rusqlite::Connection,
}

impl Tokenizer {
    /// An in-memory FTS5 table with [`TOKENIZE`].
    ///
    /// # Errors
    /// Only if SQLite cannot create an in-memory table.
    pub fn new() -> rusqlite::Result<Tokenizer> {
        let conn = rusqlite::Connection::open_in_memory()?;
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE q USING fts5(x, tokenize = \"{TOKENIZE}\");
             CREATE VIRTUAL TABLE qv USING fts5vocab(q, 'instance');
             CREATE VIRTUAL TABLE r USING fts5(title, channel, tokenize = \"{TOKENIZE}\");
             CREATE VIRTUAL TABLE rv USING fts5vocab(r, 'instance');"
        ))?;
        Ok(Tokenizer { conn })
    }

    /// The tokens of each (title, channel), per column in order, as `videos_fts` holds them.
    ///
    /// # Errors
    /// Only SQLite failures of the in-memory table.
    pub fn row_tokens(&self, rows: &[(&str, &str)]) -> rusqlite::Result<Vec<(Vec<String>, Vec<String>)>> {
        // What the index holds is the search text of each (crate::text), not the text.
        let texts: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> =
            rows.iter().map(|(t, c)| (crate::text::index_text(t), crate::text::index_text(c))).collect();
        let rows: Vec<(&str, &str)> = texts.iter().map(|(t, c)| (t.as_ref(), c.as_ref())).collect();
        let rows = rows.as_slice();
        let rust: Option<Vec<(Vec<String>, Vec<String>)>> = rows
            .iter()
            .map(|(title, channel)| Some((super::unicode61::tokens(title)?, super::unicode61::tokens(channel)?)))
            .collect();
        if let Some(tokens) = rust {
            return Ok(tokens);
        }
        crate::obs::metrics::global().tokenized_by_fts5();
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO r (rowid, title, channel) VALUES (?1, ?2, ?3)")?;
            for (i, (title, channel)) in rows.iter().enumerate() {
                insert.execute(rusqlite::params![i64::try_from(i).unwrap_or(i64::MAX), title, channel])?;
            }
        }
        let mut out: Vec<(Vec<String>, Vec<String>)> = vec![(Vec::new(), Vec::new()); rows.len()];
        {
            let mut select =
                tx.prepare_cached("SELECT doc, col = 'channel', term FROM rv ORDER BY doc, col = 'channel', offset")?;
            let mut found = select.query([])?;
            while let Some(row) = found.next()? {
                let doc = usize::try_from(row.get::<_, i64>(0)?).unwrap_or(usize::MAX);
                if let Some((title, channel)) = out.get_mut(doc) {
                    if row.get::<_, bool>(1)? { channel } else { title }
                        .push(row.get::<_, Option<String>>(2)?.unwrap_or_default());
                }
            }
        }
        tx.execute("DELETE FROM r", [])?;
        tx.commit()?;
        Ok(out)
    }

    /// The query's phrases as FTS5 tokenizes them: one per chunk, its tokens in order;
    /// `None` if a chunk has no token (the SQL path decides what that means).
    /// # Errors
    /// Only SQLite failures of the in-memory table.
    pub fn phrases(&self, q: &str) -> rusqlite::Result<Option<Vec<Phrase>>> {
        let searched = search_chunks(q);
        let chunks: Vec<&str> = searched.iter().map(|(c, _)| c.as_ref()).collect();
        // FTS5's tokenizer in Rust (proven equal by property tests): no SQLite round trip.
        let rust: Option<Vec<Vec<String>>> = chunks.iter().map(|c| super::unicode61::tokens(c)).collect();
        let tokens = match rust {
            Some(tokens) => tokens,
            None => {
                crate::obs::metrics::global().tokenized_by_fts5();
                self.fts5_tokens(&chunks)?
            }
        };
        if tokens.is_empty() || tokens.iter().any(Vec::is_empty) {
            return Ok(None);
        }
        Ok(Some(tokens.into_iter().zip(searched).map(|(tokens, (_, prefix))| Phrase { tokens, prefix }).collect()))
    }

    /// Each chunk's tokens, from FTS5 itself.
    fn fts5_tokens(&self, chunks: &[&str]) -> rusqlite::Result<Vec<Vec<String>>> {
        let tx = self.conn.unchecked_transaction()?;
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
                    list.push(row.get::<_, Option<String>>(1)?.unwrap_or_default());
                }
            }
        }
        tx.execute("DELETE FROM q", [])?;
        tx.commit()?;
        Ok(tokens)
    }
}

/// The tokenizer of `videos_fts` (sql/schema.sql); queries are tokenized by FTS5 itself with it ([`Tokenizer`]).
pub const TOKENIZE: &str = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'";

/// The FTS5 MATCH expression of `phrases` (tokens as FTS5 produced them): each
/// phrase quoted, the last one with `*` when it is a prefix.
pub fn expression(phrases: &[Phrase]) -> String {
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

    #[test]
    fn words_are_quoted_and_only_the_last_is_a_prefix() {
        assert_eq!(match_expression("lofi hip ho").as_deref(), Some(r#""lofi" "hip" "ho"*"#));
        assert_eq!(match_expression("  music  ").as_deref(), Some(r#""music"*"#));
    }

    #[test]
    fn fts5_syntax_is_plain_text() {
        assert_eq!(match_expression("NEAR(a b)").as_deref(), Some(r#""NEAR(a" "b)""#));
        assert_eq!(match_expression(r#"say "hi""#).as_deref(), Some(r#""say" """hi"""*"#));
        assert_eq!(match_expression("a OR bc").as_deref(), Some(r#""a" "OR" "bc"*"#));
        assert_eq!(match_expression("title:x ^y -zz").as_deref(), Some(r#""title:x" "^y" "-zz"*"#));
    }

    #[test]
    fn no_letter_or_digit_means_no_expression() {
        for q in ["", "   ", "***", "\"\"", "( ) -", "🎵 🎶", "\u{0}\u{1}"] {
            assert_eq!(match_expression(q), None, "{q:?}");
        }
        // Punctuation-only chunks are dropped, words kept.
        assert_eq!(match_expression("rock ++ -").as_deref(), Some(r#""rock"*"#));
    }

    #[test]
    fn a_one_character_last_word_is_a_whole_word() {
        assert_eq!(match_expression("lofi h").as_deref(), Some(r#""lofi" "h""#));
        assert_eq!(match_expression("t").as_deref(), Some(r#""t""#));
        assert_eq!(match_expression("don't").as_deref(), Some(r#""don't""#), "the word typed is `t`");
        assert_eq!(match_expression("lofi hi").as_deref(), Some(r#""lofi" "hi"*"#));
        assert_eq!(match_expression("ac/dc").as_deref(), Some(r#""ac/dc"*"#));
        assert_eq!(match_expression("c++").as_deref(), Some(r#""c++""#), "the word is `c`");
        assert_eq!(match_expression("4k").as_deref(), Some(r#""4k"*"#));
        assert_eq!(match_expression("é").as_deref(), Some(r#""é""#));
        assert!(last_is_prefix("music vi") && !last_is_prefix("music v") && !last_is_prefix("x-"));
    }

    #[test]
    fn term_count_is_capped() {
        let q = "w ".repeat(100);
        let expr = match_expression(&q).unwrap_or_default();
        assert_eq!(expr.matches('"').count(), 2 * MAX_TERMS);
    }

    mod property {
        use proptest::prelude::*;
        use rusqlite::Connection;

        use super::super::match_expression;

        fn table() -> Connection {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(&format!(
                "CREATE VIRTUAL TABLE t USING fts5(title, channel, tokenize=\"{}\", prefix='2 3');
                 INSERT INTO t VALUES ('Lofi hip hop radio', 'Chill Beats'), ('C++ in 100 seconds', 'Fireship'),
                 ('Don''t stop me now', 'Queen Official'), ('Café München 4K', 'Reise TV'), ('AND OR NOT NEAR', 'x');",
                super::super::TOKENIZE
            ))
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
