//! One video as the import format and the write API give it: JSON → a
//! validated [`Video`], or a reason naming the field and the rule it broke.
//!
//! The format is the one `shared/bench/gen_corpus.py` writes: one JSON object
//! per line with `id`, `title`, `channel`, `duration_seconds`, `thumbnail`,
//! `region`, and optionally `published_at` (RFC 3339, stored in UTC) and
//! `view_count`. Unknown fields are ignored; a leading byte order mark
//! (U+FEFF, as Windows editors write) is skipped. Titles, channels and ids hold
//! no control characters; a thumbnail is an absolute `http(s)` URL (parsed by
//! the `url` crate) without white space, quotes or control characters, since
//! it is printed into pages and fetched by the checker. No I/O here.

use serde_json::{Map, Value};

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

impl Video {
    /// The video as one line of the import format (what [`parse_line`] reads back as is).
    pub fn to_json_line(&self) -> String {
        let mut obj = serde_json::json!({
            "id": self.id, "title": self.title, "channel": self.channel,
            "duration_seconds": self.duration_seconds, "thumbnail": self.thumbnail, "region": self.region,
            "view_count": self.view_count,
        });
        if let (Some(at), Some(map)) = (&self.published_at, obj.as_object_mut()) {
            map.insert("published_at".into(), Value::String(at.clone()));
        }
        obj.to_string()
    }
}

/// Validates one JSON line into a [`Video`].
///
/// # Errors
/// A reason naming the field and the rule it broke.
pub fn parse_line(line: &str) -> Result<Video, String> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("not a JSON object".into());
    };
    let id = text(&obj, "id", 64)?;
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("id must not contain spaces or control characters".into());
    }
    let title = printable(text(&obj, "title", 1000)?, "title")?;
    let channel = printable(text(&obj, "channel", 200)?, "channel")?;
    let duration_seconds =
        integer(&obj, "duration_seconds", 1_000_000)?.ok_or_else(|| "duration_seconds is required".to_owned())?;
    let thumbnail = thumbnail_url(text(&obj, "thumbnail", 2048)?)?;
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

/// The import format's fields, in the order a reason names them.
pub const FIELDS: [&str; 8] =
    ["id", "title", "channel", "duration_seconds", "thumbnail", "region", "published_at", "view_count"];

/// The field a [`parse_line`] reason is about (every reason about one field starts with its name).
pub fn field_of(reason: &str) -> Option<&'static str> {
    let first = reason.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next()?;
    FIELDS.iter().copied().find(|f| *f == first)
}

/// `text` unless it holds a control character (a tab or line break included).
fn printable(text: String, field: &str) -> Result<String, String> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("{field} must not contain control characters (found U+{:04X})", u32::from(c))),
        None => Ok(text),
    }
}

/// `raw` when it is an absolute http(s) URL with a host and nothing a page or a
/// request line could misread (white space, quotes, angle brackets, backslashes,
/// control characters).
fn thumbnail_url(raw: String) -> Result<String, String> {
    if let Some(c) = raw.chars().find(|c| c.is_whitespace() || c.is_control() || "\"'<>\\".contains(*c)) {
        return Err(format!(
            "thumbnail must not contain white space, quotes, <, >, \\ or control characters (found {c:?}): percent-encode them"
        ));
    }
    match url::Url::parse(&raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(raw),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Err(format!("thumbnail must be an http:// or https:// URL, not {}:", u.scheme()))
        }
        Ok(_) => Err("thumbnail must be an http:// or https:// URL with a host".into()),
        Err(e) => Err(format!("thumbnail must be an absolute http:// or https:// URL ({e})")),
    }
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
    fn a_leading_byte_order_mark_is_skipped() -> Result<(), String> {
        assert_eq!(parse_line(&format!("\u{feff}{GOOD}"))?, parse_line(GOOD)?);
        Ok(())
    }

    #[test]
    fn reasons_name_their_field() {
        assert_eq!(field_of("thumbnail must not contain white space"), Some("thumbnail"));
        assert_eq!(field_of("duration_seconds is required"), Some("duration_seconds"));
        assert_eq!(field_of("not valid JSON: x"), None);
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
            (&GOOD.replace("Lofi Hip Hop", "Lofi\\u0000Hip"), "title must not contain control characters"),
            (&GOOD.replace("Lofi Hip Hop", "Lofi\\tHip"), "title must not contain control characters"),
            (&GOOD.replace("\"Chill\"", "\"Ch\\u001bill\""), "channel must not contain control"),
            (&GOOD.replace("hqdefault.jpg", "hq default.jpg"), "thumbnail must not contain white space"),
            (&GOOD.replace("hqdefault.jpg", "hq\\\"default.jpg"), "thumbnail must not contain"),
            (&GOOD.replace("hqdefault.jpg", "x.jpg'onerror='alert(1)"), "thumbnail must not contain"),
            (&GOOD.replace("https://i.ytimg.com/vi/x/hqdefault.jpg", "ftp://i.ytimg.com/x.jpg"), "not ftp:"),
            (&GOOD.replace("https://i.ytimg.com/vi/x/hqdefault.jpg", "/vi/x.jpg"), "thumbnail must be an absolute"),
            (&GOOD.replace("https://i.ytimg.com/vi/x/hqdefault.jpg", "https://"), "thumbnail must be"),
        ];
        for (line, want) in cases {
            match parse_line(line) {
                Err(reason) => assert!(reason.contains(want), "{line}: {reason}"),
                Ok(v) => panic!("accepted {line}: {v:?}"),
            }
        }
    }
}
