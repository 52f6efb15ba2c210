//! One video as the import format and the write API give it: JSON → a
//! validated [`Video`], or a reason naming the field and the rule it broke.
//!
//! The format is the one `shared/bench/gen_corpus.py` writes: one JSON object
//! per line with `id`, `title`, `channel`, `duration_seconds`, `thumbnail`,
//! `region`, and optionally `published_at` (RFC 3339 or Unix seconds, stored
//! in UTC; with [`ParseRules::assume_utc`] also a date-time or date without a
//! zone, as MySQL exports write them) and `view_count`. Numbers may come as
//! numeric strings (`"183"`). Unknown fields are ignored; a leading byte order mark
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

/// How [`parse_line_with`] reads what real exports write (issue 35).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseRules {
    /// A `published_at` without a time zone (`2024-05-01 12:00:00`, a MySQL
    /// `DATETIME`; `2024-05-01`, a bare date) is read as UTC instead of refused.
    pub assume_utc: bool,
    /// A bad optional field (`published_at`, `view_count`) leaves the row without it
    /// (null, 0) and a warning, instead of rejecting the row.
    pub lenient: bool,
}

/// Validates one JSON line into a [`Video`], with the default [`ParseRules`].
///
/// # Errors
/// A reason naming the field and the rule it broke.
pub fn parse_line(line: &str) -> Result<Video, String> {
    parse_line_with(line, ParseRules::default()).map(|(video, _)| video)
}

/// Validates one JSON line into a [`Video`] under `rules`, with the warnings of the
/// optional fields it left out ([`ParseRules::lenient`]).
///
/// # Errors
/// A reason naming the field and the rule it broke.
pub fn parse_line_with(line: &str, rules: ParseRules) -> Result<(Video, Vec<String>), String> {
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
    let mut warnings = Vec::new();
    let published_at = match published_at(&obj, rules.assume_utc) {
        Ok(at) => at,
        Err(why) if rules.lenient => {
            warnings.push(format!("{why}: imported without published_at (--lenient)"));
            None
        }
        Err(why) => return Err(why),
    };
    let view_count = match integer(&obj, "view_count", i64::MAX) {
        Ok(n) => n.unwrap_or(0),
        Err(why) if rules.lenient => {
            warnings.push(format!("{why}: imported with view_count 0 (--lenient)"));
            0
        }
        Err(why) => return Err(why),
    };
    Ok((Video { id, title, channel, duration_seconds, thumbnail, region, published_at, view_count }, warnings))
}

/// A partial update (`PATCH /feed/admin/videos/{id}`) applied to the stored `base`:
/// the fields `patch` names replace base's, and the result is validated as a whole
/// row under `rules` (so a patch obeys every rule a whole row does). `null` clears
/// an optional field (`published_at`; `view_count` becomes 0).
///
/// # Errors
/// A reason naming the field: a field the import format does not have (a typo
/// would otherwise change nothing), an `id` other than base's, or a value a whole
/// row may not hold.
pub fn apply_patch(base: &Video, patch: &Map<String, Value>, rules: ParseRules) -> Result<Video, String> {
    if let Some(unknown) = patch.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "{unknown:?} is not a field of a video (the fields are {}): nothing was changed",
            FIELDS.join(", ")
        ));
    }
    match patch.get("id") {
        Some(Value::String(id)) if id.trim() == base.id => {}
        Some(_) => return Err("id cannot be changed by a patch: it must be left out or equal the path's id".into()),
        None => {}
    }
    let mut merged: Map<String, Value> = match serde_json::from_str(&base.to_json_line()) {
        Ok(Value::Object(obj)) => obj,
        _ => Map::new(),
    };
    for (field, value) in patch {
        merged.insert(field.clone(), value.clone());
    }
    parse_line_with(&Value::Object(merged).to_string(), ParseRules { lenient: false, ..rules }).map(|(v, _)| v)
}

/// A placeholder video any valid patch can be applied to: the write API checks a
/// patch against it before queueing it, so a bad field is answered 422 at once.
pub fn patch_template(id: &str) -> Video {
    Video {
        id: id.to_owned(),
        title: "t".into(),
        channel: "c".into(),
        duration_seconds: 0,
        thumbnail: "https://example.com/t.jpg".into(),
        region: "US".into(),
        published_at: None,
        view_count: 0,
    }
}

/// The latest Unix second `published_at` may be given as (9999-12-31T23:59:59Z).
const MAX_UNIX: i64 = 253_402_300_799;

/// `published_at` as stored (RFC 3339 in UTC), from an RFC 3339 string, Unix seconds,
/// or with `assume_utc` a date-time or date without a zone.
fn published_at(obj: &Map<String, Value>, assume_utc: bool) -> Result<Option<String>, String> {
    use crate::timefmt::{parse_rfc3339, rfc3339};
    const EXAMPLE: &str = "an RFC 3339 date-time such as 2024-05-01T12:00:00Z, or Unix seconds";
    match obj.get("published_at") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64().or_else(|| whole(n.as_f64())) {
            Some(unix) if (0..=MAX_UNIX).contains(&unix) => Ok(Some(rfc3339(unix))),
            _ => Err(format!("published_at as a number must be whole Unix seconds from 0 to {MAX_UNIX}")),
        },
        // Stored in UTC, so `sort=recent` can compare the text.
        Some(Value::String(s)) if s.len() > 40 => Err("published_at is longer than 40 characters".into()),
        Some(Value::String(s)) => {
            let s = s.trim();
            let why = match parse_rfc3339(s) {
                Ok(unix) => return Ok(Some(rfc3339(unix))),
                Err(why) => why,
            };
            // Without a zone: a date-time (`2024-05-01 12:00:00`) or a bare date.
            let naive = parse_rfc3339(&format!("{s}Z")).or_else(|_| parse_rfc3339(&format!("{s}T00:00:00Z")));
            match naive {
                Ok(unix) if assume_utc => Ok(Some(rfc3339(unix))),
                Ok(_) => Err(format!(
                    "published_at has no time zone ({s:?}): import with --assume-utc (the write API: \
                     VIDEOFEED_ASSUME_UTC=on) to read it as UTC, or send {EXAMPLE}"
                )),
                Err(_) => Err(format!("published_at {why} ({EXAMPLE})")),
            }
        }
        Some(_) => Err(format!("published_at must be {EXAMPLE}")),
    }
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
        // "183" (CSV-born exports quote every field): the number its digits spell (no
        // sign, point or space; at most 18 significant digits, as docs/openapi.json says).
        Some(Value::String(text)) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            let significant = text.trim_start_matches('0');
            let most = max.to_string().len().min(18);
            match significant.parse::<i64>() {
                _ if significant.len() > most => Err(format!("{field} must be a whole number from 0 to {max}")),
                Ok(v) if v <= max => Ok(Some(v)),
                Err(_) if significant.is_empty() => Ok(Some(0)),
                _ => Err(format!("{field} must be a whole number from 0 to {max}")),
            }
        }
        Some(Value::String(text)) => Err(format!("{field} must be a number, got {text:?}")),
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
    fn a_patch_changes_only_the_fields_it_names_and_obeys_every_rule() -> Result<(), String> {
        let base = parse_line(GOOD)?;
        let patch = |json: &str| -> Result<Video, String> {
            let Ok(Value::Object(p)) = serde_json::from_str::<Value>(json) else { return Err("bad test".into()) };
            apply_patch(&base, &p, ParseRules::default())
        };
        let v = patch(r#"{"view_count":"99"}"#)?;
        assert_eq!(v, Video { view_count: 99, ..base.clone() });
        let v = patch(r#"{"published_at":null,"title":" New ","id":"abc123DEF_-"}"#)?;
        assert_eq!((v.published_at, v.title.as_str()), (None, "New"));
        assert_eq!(patch("{}")?, base);
        for (bad, field) in [
            (r#"{"title":""}"#, "title"),
            (r#"{"title":null}"#, "title"),
            (r#"{"view_count":-1}"#, "view_count"),
            (r#"{"region":"usa"}"#, "region"),
            (r#"{"viewcount":1}"#, ""),
            (r#"{"id":"other"}"#, "id"),
        ] {
            let why = patch(bad).err().ok_or_else(|| format!("{bad} was accepted"))?;
            assert!(why.starts_with(field) || why.starts_with("\"viewcount"), "{bad}: {why}");
        }
        let lenient = ParseRules { lenient: true, assume_utc: true };
        let Ok(Value::Object(p)) = serde_json::from_str::<Value>(r#"{"published_at":"2024-05-01"}"#) else {
            return Err("bad test".into());
        };
        assert_eq!(apply_patch(&base, &p, lenient)?.published_at.as_deref(), Some("2024-05-01T00:00:00Z"));
        let Ok(Value::Object(p)) = serde_json::from_str::<Value>(r#"{"published_at":"soon"}"#) else {
            return Err("bad test".into());
        };
        assert!(apply_patch(&base, &p, lenient).is_err(), "a patch is never lenient: it names the field it changes");
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
            (&GOOD.replace("600", "\"six\""), "duration_seconds must be a number, got \"six\""),
            (&GOOD.replace("600", "\"-5\""), "duration_seconds must be a number, got \"-5\""),
            (&GOOD.replace("2024-01-02T03:04:05Z", "2024-05-01 12:00:00"), "--assume-utc"),
            (&GOOD.replace("\"2024-01-02T03:04:05Z\"", "-1"), "published_at as a number must be whole Unix seconds"),
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

    #[test]
    fn real_export_formats_are_read() -> Result<(), String> {
        // Numbers as strings, Unix seconds.
        let v = parse_line(&GOOD.replace("600", "\"183\"").replace("\"2024-01-02T03:04:05Z\"", "1714564800"))?;
        assert_eq!((v.duration_seconds, v.published_at.as_deref()), (183, Some("2024-05-01T12:00:00Z")));
        assert_eq!(parse_line(&GOOD.replace("600", "\"0001000000\""))?.duration_seconds, 1_000_000);
        assert!(parse_line(&GOOD.replace("600", "\"1000001\"")).is_err());
        assert!(parse_line(&GOOD.replace("600", "\" 183\"")).is_err());
        assert!(parse_line(&GOOD.replace("600", "\"183.0\"")).is_err());
        // A MySQL DATETIME and a bare date, as UTC with assume_utc.
        let utc = ParseRules { assume_utc: true, lenient: false };
        let (v, warnings) = parse_line_with(&GOOD.replace("2024-01-02T03:04:05Z", "2024-05-01 12:00:00"), utc)?;
        assert_eq!((v.published_at.as_deref(), warnings.len()), (Some("2024-05-01T12:00:00Z"), 0));
        let (v, _) = parse_line_with(&GOOD.replace("2024-01-02T03:04:05Z", "2024-05-01"), utc)?;
        assert_eq!(v.published_at.as_deref(), Some("2024-05-01T00:00:00Z"));
        assert!(parse_line_with(&GOOD.replace("2024-01-02T03:04:05Z", "2024-05-32"), utc).is_err());
        // Lenient: a bad optional field is left out with a warning; a bad required one still rejects.
        let lenient = ParseRules { assume_utc: false, lenient: true };
        let (v, warnings) = parse_line_with(
            &GOOD.replace("2024-01-02T03:04:05Z", "soon").replace("\"view_count\":12", "\"view_count\":-3"),
            lenient,
        )?;
        assert_eq!((v.published_at, v.view_count), (None, 0));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("published_at") && warnings[0].contains("imported without published_at"));
        assert!(parse_line_with(&GOOD.replace("600", "-1"), lenient).is_err());
        Ok(())
    }
}
