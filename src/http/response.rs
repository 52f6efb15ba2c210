//! Feed results or an error → a complete CGI response (headers, blank line, JSON body).
//!
//! Cache policy (see `docs/decisions/0006-cache-policy.md`): a 200 feed is public for 5 minutes
//! at the CDN and in LiteSpeed's cache (`X-LiteSpeed-Cache-Control`) and may
//! be served stale for an hour while revalidating; every error is `no-store`
//! and carries no LiteSpeed cache header. `Vary: Accept-Encoding` goes on
//! every answer because the web server may compress it. No I/O here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use serde::Serialize;

use crate::http::request::FeedQuery;
use crate::search::FeedItem;

/// `Cache-Control` of a 200 feed answer.
pub const FEED_CACHE_CONTROL: &str = "public, max-age=300, stale-while-revalidate=3600";
/// `X-LiteSpeed-Cache-Control` of a 200 feed answer LSCache may store (see `http::admission`).
pub const LSCACHE_CONTROL: &str = "public, max-age=300";
/// `X-LiteSpeed-Cache-Control` of one it may not (a query not asked before, by default).
pub const LSCACHE_NO_CACHE: &str = "no-cache";
/// `Content-Type` of every answer.
pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

#[derive(Serialize)]
struct FeedBody<'a> {
    query: &'a str,
    region: &'a str,
    count: usize,
    /// Videos matching (up to 10,000 exactly; past it 10,000 and `total_is_exact` false).
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_is_exact: Option<bool>,
    results: &'a [FeedItem],
    /// Whether another page follows that `offset` can reach: then `next` is its offset.
    has_more: bool,
    /// The `offset` of the next page: a number exactly when `has_more` is true.
    next: Option<u32>,
    /// More results exist past the deepest page `offset` can reach (`MAX_OFFSET`).
    truncated: bool,
    /// Words the typo correction replaced (typed → known); absent when none.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    corrected: std::collections::BTreeMap<&'a str, &'a str>,
    /// Words dropped to fill the page (word dropping); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    relaxed: Option<Relaxed<'a>>,
}

#[derive(Serialize)]
struct Relaxed<'a> {
    /// The dropped words (as tokenized: lower case, accents folded), in the order dropped.
    dropped: &'a [String],
}

/// What an answer adds to its rows besides them: typo corrections and dropped words.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notes<'a> {
    /// Typo corrections (typed → known word), in query order.
    pub corrected: &'a [(String, String)],
    /// Words dropped to fill the page, in the order dropped.
    pub dropped: &'a [String],
    /// The matching videos counted, and whether the count is exact (`total`, `total_is_exact`).
    pub total: Option<(usize, bool)>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
    message: &'a str,
}

/// One answer, built by the functions below and rendered to CGI bytes once
/// ([`Response::render`]) at the edge: the status is a field, never parsed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// `Content-Type`; None for a 304, which has neither a body nor a type.
    pub content_type: Option<&'static str>,
    /// Further headers, in order (after `Vary: Accept-Encoding`).
    pub headers: Vec<(String, String)>,
    /// The body (its length is sent as `Content-Length` even for HEAD).
    pub body: Vec<u8>,
    /// A HEAD request: the headers of the GET answer without its body.
    pub head: bool,
}

impl Response {
    fn new(status: u16, content_type: &'static str, headers: &[(&str, &str)], body: Vec<u8>, head: bool) -> Response {
        let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        Response { status, content_type: Some(content_type), headers, body, head }
    }

    /// The value of header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The CGI bytes: `Status`, `Content-Type`, `Content-Length`, `Vary`, the
    /// headers, a blank line, the body (not for HEAD or a 304).
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(format!("Status: {} {}\r\n", self.status, reason(self.status)).as_bytes());
        if let Some(content_type) = self.content_type {
            out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if !self.head && self.content_type.is_some() {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase for the status codes we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// `X-LiteSpeed-Tag` of a feed answer: every feed is tagged `feed`, and `feed-CC` for its region.
pub fn feed_tags(region: &str) -> String {
    format!("feed, feed-{region}")
}

/// `X-LiteSpeed-Purge` after a write touching `regions`: a `GLOBAL` video appears in every
/// region's feed, so it purges `feed`; otherwise only the regions' feeds.
pub fn purge_tags(regions: &[String]) -> String {
    if regions.iter().any(|r| r == "GLOBAL") {
        return "tag=feed".into();
    }
    regions.iter().map(|r| format!("tag=feed-{r}")).collect::<Vec<_>>().join(", ")
}

/// A 200 answer for `query` with `items`; `head` leaves out the body (HEAD requests).
pub fn feed(query: &FeedQuery, items: &[FeedItem], head: bool) -> Response {
    match feed_json(query, items) {
        Ok(json) => feed_from_json(&json, &query.region, head),
        // Serialising strings and numbers cannot fail; answer honestly if it ever does.
        Err(e) => error(500, None, &format!("could not encode the answer: {e}"), &[], head),
    }
}

/// The JSON body of a 200 feed answer.
///
/// # Errors
/// Only if serde_json fails to write strings and numbers into memory.
///
/// `items` may hold one row more than `query.limit` (the search asks for one
/// extra): it is not shown, it only says that a next page exists.
pub fn feed_json(query: &FeedQuery, items: &[FeedItem]) -> Result<Vec<u8>, serde_json::Error> {
    feed_json_corrected(query, items, &[])
}

/// As [`feed_json`], with the typo correction's replacements (typed → known word).
///
/// # Errors
/// As for [`feed_json`].
pub fn feed_json_corrected(
    query: &FeedQuery,
    items: &[FeedItem],
    corrected: &[(String, String)],
) -> Result<Vec<u8>, serde_json::Error> {
    feed_json_noted(query, items, Notes { corrected, dropped: &[], total: None })
}

/// As [`feed_json`], with the answer's [`Notes`].
///
/// # Errors
/// As for [`feed_json`].
pub fn feed_json_noted(query: &FeedQuery, items: &[FeedItem], notes: Notes<'_>) -> Result<Vec<u8>, serde_json::Error> {
    let corrected = notes.corrected;
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let more = items.len() > limit;
    let shown = items.get(..limit.min(items.len())).unwrap_or(items);
    let next = query.offset.checked_add(query.limit).filter(|n| more && *n <= crate::http::request::MAX_OFFSET);
    let (has_more, truncated) = (next.is_some(), more && next.is_none());
    let corrected = corrected.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let body = FeedBody {
        query: &query.q,
        region: &query.region,
        count: shown.len(),
        total: notes.total.map(|(n, _)| n),
        total_is_exact: notes.total.map(|(_, exact)| exact),
        results: shown,
        has_more,
        next,
        truncated,
        corrected,
        relaxed: (!notes.dropped.is_empty()).then_some(Relaxed { dropped: notes.dropped }),
    };
    serde_json::to_vec(&body)
}

/// A 200 feed answer around an already-encoded JSON body (from [`feed_json`] or the cache).
pub fn feed_from_json(json: &[u8], region: &str, head: bool) -> Response {
    feed_validated(json, region, head, &Validators::default(), true)
}

/// The validators of a 200 feed answer and the client's `If-None-Match`.
#[derive(Debug, Clone, Default)]
pub struct Validators<'a> {
    /// The strong entity tag, quoted (see [`etag`]); none when empty.
    pub etag: String,
    /// Unix seconds of the last write to the data; `Last-Modified` when known.
    pub last_modified: Option<i64>,
    /// The request's `If-None-Match` header.
    pub if_none_match: Option<&'a str>,
}

impl Validators<'_> {
    /// Whether the client's copy is current: `If-None-Match` lists this ETag or is `*`.
    ///
    /// The comparison is the weak one RFC 9110 §13.1.2 prescribes for `If-None-Match`
    /// (a `W/` prefix is ignored), so a copy a front end compressed and marked weak
    /// still revalidates.
    pub fn not_modified(&self) -> bool {
        let Some(header) = self.if_none_match else { return false };
        if self.etag.is_empty() {
            return false;
        }
        header.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag)
    }
}

/// A strong ETag for `body` made from data version `changes`: `"<changes>-<hash>"`.
///
/// The hash covers every byte of the body, so equal tags mean equal bodies; the
/// data version makes any database change change the tag.
pub fn etag(changes: i64, body: &[u8]) -> String {
    // 64-bit multiply-xorshift over 8-byte words: ~1 µs for a 10 KB body, and
    // bodies are not adversarial (they are ours), so no keyed hash is needed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::try_from(body.len()).unwrap_or(0);
    let mut words = body.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    for &byte in words.remainder() {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 32;
    format!("\"{changes:x}-{h:016x}\"")
}

/// A 200 feed answer with `ETag` and `Last-Modified`, or a 304 without a body when
/// the client's copy is current.
/// `lscache`: whether LiteSpeed's cache may store it (`Cache-Control` is the same either way).
pub fn feed_validated(json: &[u8], region: &str, head: bool, v: &Validators<'_>, lscache: bool) -> Response {
    let tags = feed_tags(region);
    let last_modified = v.last_modified.filter(|t| *t > 0).map(crate::timefmt::http_date);
    let mut headers: Vec<(&str, &str)> = vec![
        ("Cache-Control", FEED_CACHE_CONTROL),
        ("X-LiteSpeed-Cache-Control", if lscache { LSCACHE_CONTROL } else { LSCACHE_NO_CACHE }),
        ("X-LiteSpeed-Tag", &tags),
    ];
    if !v.etag.is_empty() {
        headers.push(("ETag", &v.etag));
    }
    if let Some(date) = &last_modified {
        headers.push(("Last-Modified", date));
    }
    if v.not_modified() {
        return not_modified(&headers);
    }
    cgi(200, &headers, json.to_vec(), head)
}

/// A 304: the validators and cache headers, no body, no Content-Type or Content-Length.
fn not_modified(headers: &[(&str, &str)]) -> Response {
    let headers = headers.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
    Response { status: 304, content_type: None, headers, body: Vec::new(), head: true }
}

/// A JSON answer of the write API (never cached), with extra headers.
pub fn admin(status: u16, body: &serde_json::Value, extra: &[(&str, &str)]) -> Response {
    let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut headers: Vec<(&str, &str)> = vec![("Cache-Control", "no-store")];
    headers.extend_from_slice(extra);
    cgi(status, &headers, json, false)
}

/// An error answer: `{"error":{"status","param"?,"message"}}`, `Cache-Control: no-store`.
pub fn error(status: u16, param: Option<&str>, message: &str, extra: &[(&str, &str)], head: bool) -> Response {
    let body = ErrorBody { error: ErrorDetail { status, param, message } };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{}}".to_vec());
    let mut headers: Vec<(&str, &str)> = vec![("Cache-Control", "no-store")];
    headers.extend_from_slice(extra);
    cgi(status, &headers, json, head)
}

fn cgi(status: u16, headers: &[(&str, &str)], body: Vec<u8>, head: bool) -> Response {
    Response::new(status, CONTENT_TYPE, headers, body, head)
}

/// An answer with any `Content-Type` (the metrics text, for one).
pub fn with_type(
    status: u16,
    content_type: &'static str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    head: bool,
) -> Response {
    Response::new(status, content_type, headers, body, head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(resp: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(resp.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    }

    fn query() -> FeedQuery {
        crate::http::request::parse("q=lofi").unwrap()
    }

    #[test]
    fn feed_has_exact_shape_and_cache_headers() {
        let item = FeedItem {
            id: "a".into(),
            title: "Lofi".into(),
            channel: "c".into(),
            duration_seconds: 60,
            thumbnail: "t".into(),
            region: "GLOBAL".into(),
            score: 1.5,
            ..FeedItem::default()
        };
        let (head, body) = split(&feed(&query(), &[item], false).render());
        assert!(head.starts_with("Status: 200 OK\r\n"));
        assert!(head.contains("Content-Type: application/json; charset=utf-8"));
        assert!(head.contains("Cache-Control: public, max-age=300, stale-while-revalidate=3600"));
        assert!(head.contains("X-LiteSpeed-Cache-Control: public, max-age=300"));
        assert!(head.contains("Vary: Accept-Encoding"));
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["count", "has_more", "next", "query", "region", "results", "truncated"]);
        assert_eq!((body["has_more"].as_bool(), body["next"].is_null()), (Some(false), true));
        assert_eq!(body["count"], 1);
        let item_keys: Vec<&String> = body["results"][0].as_object().unwrap().keys().collect();
        assert_eq!(
            item_keys,
            [
                "channel",
                "duration_seconds",
                "id",
                "published_at",
                "region",
                "score",
                "thumbnail",
                "title",
                "view_count"
            ]
        );
        assert!(body["results"][0]["published_at"].is_null());
        // Channel data appears only when known.
        let known = FeedItem {
            channel_verified: Some(true),
            channel_avatar: Some("https://a/x.png".into()),
            ..FeedItem::default()
        };
        let (_, body) = split(&feed(&query(), &[known], false).render());
        let item = body["results"][0].as_object().unwrap();
        assert_eq!(
            (item["channel_verified"].as_bool(), item["channel_avatar"].as_str()),
            (Some(true), Some("https://a/x.png"))
        );
        assert!(!item.contains_key("channel_subscribers") && !item.contains_key("channel_display_name"));
    }

    #[test]
    fn errors_are_no_store_and_not_lscached() {
        let (head, body) = split(&error(400, Some("limit"), "must be 1..100", &[], false).render());
        assert!(head.starts_with("Status: 400 Bad Request"));
        assert!(head.contains("Cache-Control: no-store"));
        assert!(!head.contains("X-LiteSpeed-Cache-Control"));
        assert_eq!(body["error"]["param"], "limit");
        assert_eq!(body["error"]["status"], 400);
        let (_, body) = split(&error(404, None, "no such path", &[], false).render());
        assert!(body["error"].get("param").is_none());
    }

    #[test]
    fn etag_is_strong_and_follows_body_and_version() {
        let a = etag(7, b"{\"count\":1}");
        assert!(a.starts_with("\"7-") && a.ends_with('"') && !a.starts_with("W/"));
        assert_eq!(a, etag(7, b"{\"count\":1}"));
        assert_ne!(a, etag(8, b"{\"count\":1}"));
        assert_ne!(a, etag(7, b"{\"count\":2}"));
        assert_ne!(etag(1, b"abcdefgh1"), etag(1, b"abcdefgh2"));
    }

    #[test]
    fn if_none_match_gives_304_without_body() {
        let tag = etag(3, b"{}");
        let v = |inm: &'static str| Validators {
            etag: tag.clone(),
            last_modified: Some(784_111_777),
            if_none_match: Some(inm),
        };
        for matching in [tag.as_str(), "*", "\"x\", W/PLACEHOLDER"] {
            let inm: &'static str = Box::leak(matching.replace("PLACEHOLDER", &tag).into_boxed_str());
            let resp = feed_validated(b"{}", "US", false, &v(inm), true);
            assert_eq!(resp.status, 304);
            let text = String::from_utf8(resp.render()).unwrap();
            assert!(text.starts_with("Status: 304 Not Modified\r\n"), "{inm}: {text}");
            assert!(text.ends_with("\r\n\r\n") && !text.contains("Content-Length"));
            assert!(text.contains(&format!("ETag: {tag}\r\n")));
            assert!(text.contains("Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        }
        let text = String::from_utf8(feed_validated(b"{}", "US", false, &v("\"other\""), true).render()).unwrap();
        assert!(text.starts_with("Status: 200 OK") && text.ends_with("{}"));
    }

    #[test]
    fn head_has_headers_but_no_body() {
        let resp = feed(&query(), &[], true);
        let text = String::from_utf8(resp.render()).unwrap();
        assert!(text.ends_with("\r\n\r\n"));
        assert!(text.contains("Content-Length: "));
    }
}
