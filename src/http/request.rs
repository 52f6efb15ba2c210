//! The `/feed` query string → a validated [`FeedQuery`].
//!
//! Decoding is `application/x-www-form-urlencoded`: `+` is a space, percent
//! escapes are decoded; a parameter we read whose decoded bytes (raw or
//! percent-encoded) are not UTF-8 is a 400 naming it. Rules:
//! `q` is 1..=120 characters after trimming, with at least one letter or
//! digit; it is required unless the request browses (`sort=recent|popular` or
//! `channel` given, issue 35), where a missing or empty `q` means "no query";
//! `region` is two ASCII letters or `GLOBAL` (only the videos shown
//! everywhere), any case, answered in upper case, default `US`; `sort` and `highlight` values are
//! case-insensitive too; `limit` is an integer 1..=100, default 24;
//! `offset` is an integer 0..=1000, default 0 (results to skip). An
//! empty `region=` or `limit=` means "not given". A repeated parameter: the
//! last one wins (as PHP's `$_GET` does). Unknown parameters are ignored.
//! No I/O here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;

use crate::search::tokenize;
pub use crate::search::{FeedQuery, Sort};

/// Longest `q`, in characters (Unicode scalar values), after trimming.
pub const MAX_Q_CHARS: usize = 120;
/// `region` when none is given.
pub const DEFAULT_REGION: &str = "US";
/// `limit` when none is given.
pub const DEFAULT_LIMIT: u32 = 24;
/// Largest `limit`.
pub const MAX_LIMIT: u32 = 100;
/// Largest `offset` (deep pages are for crawlers, not people).
pub const MAX_OFFSET: u32 = 1000;

/// Longest duration filter accepted, in seconds (matches the import rule).
pub const MAX_DURATION: i64 = 1_000_000;

/// A parameter that broke a rule: answered as a 400 naming both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter name.
    pub param: &'static str,
    /// The rule, in words a PHP developer can act on.
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter {}: {}", self.param, self.message)
    }
}

impl std::error::Error for ParamError {}

fn bad(param: &'static str, message: impl Into<String>) -> ParamError {
    ParamError { param, message: message.into() }
}

/// Parses and validates a `QUERY_STRING` given as text.
///
/// # Errors
/// [`ParamError`] naming the first parameter that breaks its rule.
pub fn parse(query_string: &str) -> Result<FeedQuery, ParamError> {
    parse_bytes(query_string.as_bytes())
}

/// The parameters [`parse_bytes`] reads (any other is ignored, whatever its bytes).
const KNOWN: [&str; 9] =
    ["q", "region", "limit", "offset", "channel", "min_duration", "max_duration", "sort", "highlight"];

/// Splits a raw query string into decoded `(name, value)` pairs, in order: `&`
/// separates pairs, the first `=` a name from its value, `+` is a space and
/// `%XX` a byte (a `%` not followed by two hex digits stays as it is). A known
/// parameter whose value is not UTF-8 is an error naming it; names that are
/// not UTF-8 are nobody we know.
///
/// # Errors
/// [`ParamError`] for the first known parameter whose value is not UTF-8.
pub fn pairs(query_string: &[u8]) -> Result<Vec<(String, String)>, ParamError> {
    let mut out = Vec::new();
    for piece in query_string.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match piece.iter().position(|b| *b == b'=') {
            Some(at) => (piece.get(..at).unwrap_or_default(), piece.get(at + 1..).unwrap_or_default()),
            None => (piece, &[][..]),
        };
        let Ok(name) = String::from_utf8(percent_decode(name)) else { continue };
        match String::from_utf8(percent_decode(value)) {
            Ok(value) => out.push((name, value)),
            Err(_) => {
                if let Some(known) = KNOWN.iter().find(|k| **k == name) {
                    return Err(bad(known, "is not valid UTF-8: send the text UTF-8 encoded (and percent-encoded)"));
                }
            }
        }
    }
    Ok(out)
}

/// `+` → space, `%XX` → the byte; anything else as is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match (b, input.get(i + 1).copied().and_then(hex), input.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Parses and validates a raw `QUERY_STRING` (bytes as the web server sent them).
///
/// # Errors
/// [`ParamError`] naming the first parameter that breaks its rule.
pub fn parse_bytes(query_string: &[u8]) -> Result<FeedQuery, ParamError> {
    let mut q = None;
    let mut region = None;
    let mut limit = None;
    let mut offset = None;
    let (mut channel, mut min_duration, mut max_duration, mut sort) = (None, None, None, None);
    let mut highlight: Option<String> = None;
    let mut had_q = false;
    for (name, value) in pairs(query_string)? {
        match name.as_str() {
            "q" => {
                had_q = true;
                q = Some(value);
            }
            "region" => region = Some(value).filter(|v| !v.is_empty()),
            "limit" => limit = Some(value).filter(|v| !v.is_empty()),
            "offset" => offset = Some(value).filter(|v| !v.is_empty()),
            "channel" => channel = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            "min_duration" => min_duration = Some(value).filter(|v| !v.is_empty()),
            "max_duration" => max_duration = Some(value).filter(|v| !v.is_empty()),
            "sort" => sort = Some(value.to_ascii_lowercase()).filter(|v| !v.is_empty()),
            "highlight" => highlight = Some(value.to_ascii_lowercase()).filter(|v| !v.is_empty()),
            _ => {}
        }
    }

    let browsing = channel.is_some() || matches!(sort.as_deref(), Some("recent" | "popular"));
    let q = q.map(|q| q.trim().to_owned()).unwrap_or_default();
    let match_expr = if q.is_empty() && browsing {
        String::new()
    } else {
        if q.is_empty() {
            let msg = "is required (or browse without it: sort=recent, sort=popular or channel=...)";
            return Err(bad("q", if had_q { "must not be empty" } else { msg }));
        }
        let chars = q.chars().count();
        if chars > MAX_Q_CHARS {
            return Err(bad("q", format!("must be at most {MAX_Q_CHARS} characters, got {chars}")));
        }
        tokenize::match_expression(&tokenize::normalize(&q))
            .ok_or_else(|| bad("q", "has no searchable word: it needs at least one letter or digit"))?
    };

    let region = match region {
        None => DEFAULT_REGION.to_owned(),
        Some(r) if r.len() == 2 && r.bytes().all(|b| b.is_ascii_alphabetic()) => r.to_ascii_uppercase(),
        Some(r) if r.eq_ignore_ascii_case("GLOBAL") => "GLOBAL".to_owned(),
        Some(_) => return Err(bad("region", "must be a two-letter country code such as US or de, or GLOBAL")),
    };

    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(bad("limit", format!("must be a whole number from 1 to {MAX_LIMIT}"))),
        },
    };

    let offset = match offset {
        None => 0,
        Some(o) => match o.parse::<u32>() {
            Ok(n) if n <= MAX_OFFSET => n,
            _ => return Err(bad("offset", format!("must be a whole number from 0 to {MAX_OFFSET}"))),
        },
    };

    if channel.as_ref().is_some_and(|c| c.chars().count() > 200) {
        return Err(bad("channel", "must be at most 200 characters (the channel's name, any case or accents)"));
    }
    let duration = |name: &'static str, v: Option<String>| -> Result<Option<i64>, ParamError> {
        v.map(|v| match v.parse::<i64>() {
            Ok(n) if (0..=MAX_DURATION).contains(&n) => Ok(n),
            _ => Err(bad(name, format!("must be a whole number of seconds from 0 to {MAX_DURATION}"))),
        })
        .transpose()
    };
    let min_duration = duration("min_duration", min_duration)?;
    let max_duration = duration("max_duration", max_duration)?;
    if let (Some(lo), Some(hi)) = (min_duration, max_duration) {
        if lo > hi {
            return Err(bad("max_duration", format!("must not be less than min_duration ({lo})")));
        }
    }
    let sort = match sort.as_deref() {
        None | Some("relevance") => Sort::Relevance,
        Some("recent") => Sort::Recent,
        Some("popular") => Sort::Popular,
        Some(_) => return Err(bad("sort", "must be relevance, recent or popular")),
    };
    let highlight = match highlight.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(bad("highlight", "must be 1 (or true) to mark matched words, 0 (or false) not to")),
    };

    Ok(FeedQuery {
        q,
        match_expr,
        region,
        limit,
        offset,
        channel,
        channel_names: None,
        min_duration,
        max_duration,
        sort,
        highlight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_param(qs: &str) -> &'static str {
        match parse(qs) {
            Err(e) => e.param,
            Ok(q) => panic!("{qs:?} was accepted as {q:?}"),
        }
    }

    #[test]
    fn defaults_apply() -> Result<(), ParamError> {
        let q = parse("q=lofi")?;
        assert_eq!((q.q.as_str(), q.region.as_str(), q.limit), ("lofi", "US", 24));
        let q = parse("q=lofi&region=&limit=")?;
        assert_eq!((q.region.as_str(), q.limit), ("US", 24));
        Ok(())
    }

    #[test]
    fn decoding_and_normalising() -> Result<(), ParamError> {
        let q = parse("q=%20hip+hop%20&region=de&limit=100")?;
        assert_eq!((q.q.as_str(), q.region.as_str(), q.limit), ("hip hop", "DE", 100));
        assert_eq!(q.match_expr, r#""hip" "hop"*"#);
        let q = parse("q=caf%C3%A9")?;
        assert_eq!(q.q, "café");
        Ok(())
    }

    #[test]
    fn last_repeated_parameter_wins_and_unknown_are_ignored() -> Result<(), ParamError> {
        let q = parse("q=a&q=b&limit=3&limit=5&utm_source=x")?;
        assert_eq!((q.q.as_str(), q.limit), ("b", 5));
        Ok(())
    }

    #[test]
    fn invalid_utf8_names_the_parameter_raw_or_percent_encoded() {
        for qs in [&b"q=music\xff"[..], b"q=music%FF", b"q=%C3", b"region=US&q=a%E2%82"] {
            match parse_bytes(qs) {
                Err(e) => assert!(e.param == "q" && e.message.contains("not valid UTF-8"), "{e}"),
                Ok(q) => panic!("{qs:?} accepted as {q:?}"),
            }
        }
        assert_eq!(parse_bytes(b"q=a&channel=%FF").err().map(|e| e.param), Some("channel"));
        assert!(parse_bytes(b"q=a&utm=%FF&x\xff=1").is_ok(), "unknown parameters are not read");
        assert!(parse_bytes(b"q=caf\xc3\xa9").is_ok_and(|q| q.q == "café"), "raw UTF-8 is text");
        assert!(parse_bytes(b"q=100%&region=de").is_ok_and(|q| q.q == "100%"), "a lone % stays");
    }

    #[test]
    fn enum_values_are_case_insensitive_like_region() -> Result<(), ParamError> {
        assert_eq!(parse("q=a&sort=RECENT")?.sort, Sort::Recent);
        assert_eq!(parse("q=a&sort=Popular")?.sort, Sort::Popular);
        assert!(parse("q=a&highlight=TRUE")?.highlight);
        assert_eq!(err_param("q=a&sort=newest"), "sort");
        Ok(())
    }

    #[test]
    fn q_rules() {
        assert_eq!(err_param(""), "q");
        assert_eq!(err_param("region=US"), "q");
        assert_eq!(err_param("q=%20%20"), "q");
        assert_eq!(err_param("q=%2A%2A"), "q");
        assert_eq!(err_param(&format!("q={}", "a".repeat(121))), "q");
        assert!(parse(&format!("q={}", "é".repeat(120))).is_ok(), "120 two-byte characters are allowed");
    }

    #[test]
    fn region_rules() {
        for r in ["USA", "U", "1A", "%C3%A9s", "GLOBALS", "WORLD"] {
            assert_eq!(err_param(&format!("q=a&region={r}")), "region", "{r}");
        }
        // Issue 35: GLOBAL is the videos shown everywhere.
        assert_eq!(parse("q=a&region=global").map(|q| q.region), Ok("GLOBAL".to_owned()));
    }

    #[test]
    fn browsing_needs_no_q_but_a_search_does() -> Result<(), ParamError> {
        for qs in [
            "sort=popular",
            "region=de&sort=RECENT",
            "channel=Lofi%20Girl",
            "q=&channel=x&sort=recent",
            "q=+&sort=popular",
        ] {
            let q = parse(qs)?;
            assert_eq!((q.q.as_str(), q.match_expr.as_str()), ("", ""), "{qs}");
        }
        // With a q, browsing parameters are a filtered search as before.
        assert_eq!(parse("q=lofi&sort=popular")?.match_expr, r#""lofi"*"#);
        for qs in ["", "sort=relevance", "region=de", "q=&sort=relevance", "q=%F0%9F%98%80&sort=popular"] {
            assert_eq!(err_param(qs), "q", "{qs}");
        }
        Ok(())
    }

    #[test]
    fn limit_rules() {
        for l in ["0", "101", "-1", "abc", "1.5", "99999999999999999999"] {
            assert_eq!(err_param(&format!("q=a&limit={l}")), "limit", "{l}");
        }
    }

    #[test]
    fn offset_rules() -> Result<(), ParamError> {
        assert_eq!(parse("q=a")?.offset, 0);
        assert_eq!(parse("q=a&offset=1000")?.offset, 1000);
        for o in ["1001", "-1", "x", "2.5"] {
            assert_eq!(err_param(&format!("q=a&offset={o}")), "offset", "{o}");
        }
        Ok(())
    }

    #[test]
    fn filter_rules() -> Result<(), ParamError> {
        let q = parse("q=a&channel=%20Lofi%20Girl%20&min_duration=60&max_duration=600&sort=popular")?;
        assert_eq!(q.channel.as_deref(), Some("Lofi Girl"));
        assert_eq!((q.min_duration, q.max_duration, q.sort), (Some(60), Some(600), Sort::Popular));
        assert!(q.is_filtered() && !parse("q=a&sort=relevance")?.is_filtered());
        assert_eq!(err_param("q=a&min_duration=-1"), "min_duration");
        assert_eq!(err_param("q=a&max_duration=abc"), "max_duration");
        assert_eq!(err_param("q=a&min_duration=600&max_duration=60"), "max_duration");
        assert_eq!(err_param("q=a&sort=newest"), "sort");
        assert_eq!(err_param(&format!("q=a&channel={}", "c".repeat(201))), "channel");
        Ok(())
    }

    #[test]
    fn error_names_parameter_and_rule() {
        let e = parse("q=a&limit=0").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("limit") && e.contains("1 to 100"), "{e}");
    }
}
