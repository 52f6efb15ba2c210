//! Building an FTS5 MATCH expression from what a user typed, so that nothing
//! they type is FTS5 syntax.
//!
//! Rules (see `docs/decisions.md`, "FTS5 escaping"): the text is split on
//! white space and control characters; a chunk with no letter or digit is
//! dropped; every remaining chunk is quoted as an FTS5 string (a `"` inside is
//! doubled), so `AND`, `NEAR`, `*`, `^`, `:`, `-` and parentheses are plain
//! text; only the last chunk gets a prefix `*` (the word still being typed).
//! Chunks are joined by spaces, which FTS5 reads as AND. Inside a quoted
//! chunk FTS5's own tokenizer splits punctuation, so `c++` searches `c` and
//! `don't` the phrase `don t`. Pure string code: no SQLite here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// At most this many chunks go into one expression; later ones are ignored.
pub const MAX_TERMS: usize = 32;

/// The searchable chunks of `q`, in order: what [`match_expression`] quotes.
pub fn chunks(q: &str) -> Vec<&str> {
    q.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|chunk| chunk.chars().any(char::is_alphanumeric))
        .take(MAX_TERMS)
        .collect()
}

/// The MATCH expression for `q`, or `None` when `q` holds no letter or digit.
pub fn match_expression(q: &str) -> Option<String> {
    let chunks = chunks(q);
    let last = chunks.len().checked_sub(1)?;
    let mut out = String::with_capacity(q.len() + 3 * chunks.len() + 1);
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for c in chunk.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
        if i == last {
            out.push('*');
        }
    }
    Some(out)
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
        assert_eq!(match_expression("NEAR(a b)").as_deref(), Some(r#""NEAR(a" "b)"*"#));
        assert_eq!(match_expression(r#"say "hi""#).as_deref(), Some(r#""say" """hi"""*"#));
        assert_eq!(match_expression("a OR b").as_deref(), Some(r#""a" "OR" "b"*"#));
        assert_eq!(match_expression("title:x ^y -z").as_deref(), Some(r#""title:x" "^y" "-z"*"#));
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
    fn term_count_is_capped() {
        let q = "w ".repeat(100);
        let expr = match_expression(&q).unwrap_or_default();
        assert_eq!(expr.matches('"').count(), 2 * MAX_TERMS);
    }
}
