//! FTS5's `unicode61 remove_diacritics 2 categories 'L* N* Co M*'` tokenizer (the table's) in Rust, so a
//! query is tokenized without the round trip through an in-memory FTS5 table.
//!
//! How FTS5 does it (`fts5_tokenize.c`), code point by code point: a token
//! starts at an alphanumeric code point (categories L*, N*, Co); inside a token
//! alphanumerics and diacritics (combining marks) continue it; each is folded
//! (lower case, diacritics removed: `é` → `e`, a combining mark → nothing);
//! anything else ends it. So two facts per code point describe it: what it
//! does at the start of a token and inside one, and what it folds to.
//!
//! Those facts are not copied from SQLite's source: they were read off the
//! bundled FTS5 itself, for every code point, by probing `"{c}b"` and `"a{c}b"`
//! (`tests::regenerate_the_table`, run on a SQLite upgrade), and stored as
//! ranges in `unicode61_table.rs`. A code point the probes could not classify
//! is marked [`Class::Unknown`]: a string holding one is tokenized by FTS5
//! instead ([`tokens`] returns None), and that is counted. Property tests
//! compare both tokenizers on random text of every script.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// What a code point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Ends a token (or is skipped between tokens).
    Separator,
    /// Starts or continues a token, folded.
    Alnum,
    /// A combining mark that folds to nothing (`remove_diacritics`): it continues a
    /// token, and starts one (empty unless more follows: FTS5 indexes it).
    Diacritic,
    /// Not classified: leave the string to FTS5.
    Unknown,
}

/// One run of code points `start..=end` of the same class whose fold is `c + delta`
/// (`NO_FOLD`: folds to nothing).
struct Range {
    start: u32,
    end: u32,
    class: u8,
    delta: i32,
}

/// `delta` of a range whose code points fold to nothing.
const NO_FOLD: i32 = i32::MIN;

const SEPARATOR: u8 = 0;
const ALNUM: u8 = 1;
const DIACRITIC: u8 = 2;
const UNKNOWN: u8 = 3;

include!("unicode61_table.rs");

/// The class of `c` and what it folds to (None: nothing).
pub fn classify(c: char) -> (Class, Option<char>) {
    let cp = u32::from(c);
    if cp < 128 {
        return match c {
            'A'..='Z' => (Class::Alnum, Some(c.to_ascii_lowercase())),
            'a'..='z' | '0'..='9' => (Class::Alnum, Some(c)),
            _ => (Class::Separator, None),
        };
    }
    let at = TABLE.partition_point(|r| r.end < cp);
    let Some(range) = TABLE.get(at).filter(|r| r.start <= cp) else { return (Class::Separator, None) };
    let class = match range.class {
        SEPARATOR => Class::Separator,
        ALNUM => Class::Alnum,
        DIACRITIC => Class::Diacritic,
        UNKNOWN => Class::Unknown,
        _ => Class::Unknown, // a table from a newer generator: leave it to FTS5
    };
    let fold = if range.delta == NO_FOLD {
        None
    } else {
        i64::from(cp).checked_add(i64::from(range.delta)).and_then(|f| u32::try_from(f).ok()).and_then(char::from_u32)
    };
    (class, fold)
}

/// The tokens of `text` exactly as FTS5's `unicode61 remove_diacritics 2` makes
/// them; None when `text` holds a code point this table cannot vouch for.
pub fn tokens(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for c in text.chars() {
        let (class, fold) = classify(c);
        match (class, current.as_mut()) {
            (Class::Unknown, _) => return None,
            (Class::Alnum, Some(token)) | (Class::Diacritic, Some(token)) => token.extend(fold),
            // With combining marks in the token categories (M*), a diacritic starts a
            // token too; alone it is an empty one, which FTS5 indexes as such.
            (Class::Alnum | Class::Diacritic, None) => current = Some(fold.map(String::from).unwrap_or_default()),
            (Class::Separator, None) => {}
            (Class::Separator, Some(_)) => out.extend(current.take()),
        }
    }
    out.extend(current);
    Some(out)
}

/// The tokens of `text` with their byte ranges in it (a token's range runs from its
/// first code point to its last, diacritics included), as [`tokens`] makes them; a
/// code point the table cannot vouch for counts as a separator here. For marking
/// matched words (highlights), where a best effort is right.
pub fn spans(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize, String)> = None;
    for (at, c) in text.char_indices() {
        let (class, fold) = classify(c);
        let end = at + c.len_utf8();
        match (class, current.as_mut()) {
            (Class::Alnum | Class::Diacritic, Some((_, e, token))) => {
                token.extend(fold);
                *e = end;
            }
            (Class::Alnum | Class::Diacritic, None) => {
                current = Some((at, end, fold.map(String::from).unwrap_or_default()));
            }
            (Class::Separator | Class::Unknown, None) => {}
            (Class::Separator | Class::Unknown, Some(_)) => {
                out.extend(current.take().filter(|(_, _, t)| !t.is_empty()).map(|(s, e, t)| (s..e, t)));
            }
        }
    }
    out.extend(current.filter(|(_, _, t)| !t.is_empty()).map(|(s, e, t)| (s..e, t)));
    out
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::indexing_slicing, clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// FTS5's own tokens of each string (the table's tokenizer, bundled SQLite).
    fn fts5_tokens(texts: &[String]) -> Vec<Vec<String>> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "CREATE VIRTUAL TABLE q USING fts5(x, tokenize = \"{}\");
             CREATE VIRTUAL TABLE qv USING fts5vocab(q, 'instance');",
            super::super::tokenize::TOKENIZE
        ))
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut insert = tx.prepare("INSERT INTO q (rowid, x) VALUES (?1, ?2)").unwrap();
            for (i, t) in texts.iter().enumerate() {
                insert.execute(rusqlite::params![i as i64, t]).unwrap();
            }
        }
        let mut out = vec![Vec::new(); texts.len()];
        let mut select = tx.prepare("SELECT doc, term FROM qv ORDER BY doc, offset").unwrap();
        let mut rows = select.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let doc: i64 = row.get(0).unwrap();
            out[doc as usize].push(row.get::<_, Option<String>>(1).unwrap().unwrap_or_default());
        }
        out
    }

    /// Code points of every kind: ASCII, Latin with diacritics, combining marks,
    /// Greek, Cyrillic, CJK, full-width forms, emoji, private use, unassigned,
    /// and anything at all.
    fn any_char() -> impl Strategy<Value = char> {
        prop_oneof![
            4 => proptest::char::range(' ', '~'),
            3 => proptest::char::range('\u{c0}', '\u{24f}'),
            2 => proptest::char::range('\u{300}', '\u{36f}'),
            2 => proptest::char::range('\u{370}', '\u{52f}'),
            1 => proptest::char::range('\u{590}', '\u{fff}'),
            2 => proptest::char::range('\u{3000}', '\u{9fff}'),
            2 => proptest::char::range('\u{ff00}', '\u{ffef}'),
            1 => proptest::char::range('\u{1f300}', '\u{1faff}'),
            1 => proptest::char::range('\u{e000}', '\u{f8ff}'),
            1 => proptest::char::range('\u{e0000}', '\u{10ffff}'),
            3 => any::<char>(),
        ]
    }

    proptest! {
        // VIDEOFEED_PROPTEST_CASES raises it (CI: 40 x 8 = 320 cases of up to 40 strings).
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("VIDEOFEED_PROPTEST_CASES").ok().and_then(|v| v.parse::<u32>().ok()).map_or(64, |n| n * 8)
        ))]
        #[test]
        fn the_rust_tokenizer_is_fts5s(texts in proptest::collection::vec(proptest::collection::vec(any_char(), 0..24), 1..40)) {
            let texts: Vec<String> = texts.into_iter().map(|cs| cs.into_iter().collect()).collect();
            let expected = fts5_tokens(&texts);
            for (text, want) in texts.iter().zip(expected) {
                if let Some(got) = tokens(text) {
                    prop_assert_eq!(got, want, "{:?}", text);
                }
            }
        }
    }

    #[test]
    fn known_cases() {
        assert_eq!(tokens("Café au LAIT").unwrap(), ["cafe", "au", "lait"]);
        assert_eq!(tokens("don't c++").unwrap(), ["don", "t", "c"]);
        assert_eq!(tokens("ｍｕｓｉｃ").unwrap(), fts5_tokens(&["ｍｕｓｉｃ".to_owned()])[0]);
        assert_eq!(tokens("").unwrap(), Vec::<String>::new());
    }

    /// A sample of the whole table against FTS5 (the exhaustive check is the
    /// regeneration below, which reads every code point off FTS5).
    #[test]
    fn every_97th_code_point_is_classified_as_fts5_does() {
        let sample: Vec<char> = (0x80u32..0x11_0000).step_by(97).filter_map(char::from_u32).collect();
        let texts: Vec<String> =
            sample.iter().flat_map(|c| [format!("{c}b"), format!("a{c}b"), format!("a{c} b")]).collect();
        let expected = fts5_tokens(&texts);
        for (text, want) in texts.iter().zip(expected) {
            if let Some(got) = tokens(text) {
                assert_eq!(got, want, "{text:?}");
            }
        }
    }

    /// Reads every code point's behaviour off the bundled FTS5 and writes
    /// `src/search/unicode61_table.rs`. Run after a SQLite upgrade:
    /// `cargo test --release --lib regenerate_the_table -- --ignored`.
    #[test]
    #[ignore = "regenerates src/search/unicode61_table.rs (about a minute in release)"]
    fn regenerate_the_table() {
        let cps: Vec<u32> = (0x80u32..0x11_0000).filter(|&c| char::from_u32(c).is_some()).collect();
        let mut facts: Vec<(u32, u8, i32)> = Vec::with_capacity(cps.len());
        for block in cps.chunks(50_000) {
            let texts: Vec<String> = block
                .iter()
                .filter_map(|&c| char::from_u32(c))
                .flat_map(|c| [format!("{c}b"), format!("a{c}b")])
                .collect();
            let got = fts5_tokens(&texts);
            for (k, &cp) in block.iter().enumerate() {
                let (start, inside) = (&got[2 * k], &got[2 * k + 1]);
                let one = |v: &Vec<String>| if v.len() == 1 { Some(v[0].clone()) } else { None };
                let fold_of = |s: &str, prefix: &str, suffix: &str| -> Option<Option<char>> {
                    let mid = s.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    let mut chars = mid.chars();
                    match (chars.next(), chars.next()) {
                        (None, _) => Some(None),
                        (Some(f), None) => Some(Some(f)),
                        _ => None,
                    }
                };
                let fact = match (one(start), one(inside)) {
                    // Skipped at the start of a token.
                    (Some(s), Some(i)) if s == "b" => match fold_of(&i, "a", "b") {
                        Some(fold) => (DIACRITIC, fold),
                        None => (UNKNOWN, None),
                    },
                    (Some(s), Some(i)) => match (fold_of(&s, "", "b"), fold_of(&i, "a", "b")) {
                        (Some(Some(f)), Some(Some(g))) if f == g => (ALNUM, Some(f)),
                        _ => (UNKNOWN, None),
                    },
                    (Some(s), None) if s == "b" && *inside == ["a", "b"] => (SEPARATOR, None),
                    _ => (UNKNOWN, None),
                };
                let delta = fact.1.map_or(NO_FOLD, |f| u32::from(f) as i32 - cp as i32);
                facts.push((cp, fact.0, if fact.0 == SEPARATOR { NO_FOLD } else { delta }));
            }
        }
        // Runs of consecutive code points with the same class and delta.
        let mut ranges: Vec<(u32, u32, u8, i32)> = Vec::new();
        for (cp, class, delta) in facts {
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == cp && last.2 == class && last.3 == delta => last.1 = cp,
                _ => ranges.push((cp, cp, class, delta)),
            }
        }
        // Separators are the default: leave them out.
        ranges.retain(|r| r.2 != SEPARATOR);
        let mut src = String::from(
            "// Generated by `cargo test --release --lib regenerate_the_table -- --ignored`\n\
             // from the bundled SQLite's FTS5 (unicode61 remove_diacritics 2 categories 'L* N* Co M*'). Do not edit.\n\
             // Code points not listed are separators.\n\
             static TABLE: &[Range] = &[\n",
        );
        for (start, end, class, delta) in &ranges {
            let delta = if *delta == NO_FOLD { "NO_FOLD".to_owned() } else { delta.to_string() };
            src.push_str(&format!(
                "    Range {{ start: 0x{start:x}, end: 0x{end:x}, class: {class}, delta: {delta} }},\n"
            ));
        }
        src.push_str("];\n");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/search/unicode61_table.rs");
        std::fs::write(path, src).unwrap();
        eprintln!("{} ranges", ranges.len());
    }
}
