//! The only code that knows routes: a FastCGI request → `/feed` → search → CGI response.
//!
//! Routing uses the request path from `REQUEST_URI` (query string cut off),
//! else `SCRIPT_NAME` + `PATH_INFO`, so it does not depend on how the web
//! server maps the context. `/feed` and `/feed/` are the feed;
//! `/feed/health`, `/feed/metrics` and `/feed/openapi.json` describe the
//! service; any other path is 404; methods other than GET and HEAD are 405
//! with `Allow`. `docs/openapi.json` is the contract of every route.
//!
//! Observability: every request is counted in [`crate::obs::metrics`], logged at
//! debug (method, path, status, rows, µs), and logged at warn when slower
//! than `VIDEOFEED_SLOW_MS`, with the normalized query (the parsed
//! parameters, never the raw query string or any header). `/feed/metrics` is
//! readable from `VIDEOFEED_METRICS_ALLOW` addresses or with the admin token.
//! A feed answer carries a strong `ETag` and `Last-Modified`; a matching
//! `If-None-Match` gets a 304 without a body.
//!
//! The write API (`POST /feed/admin/videos`, `DELETE /feed/admin/videos/{id}`)
//! exists only when an admin token is configured; every write must carry it as
//! `Authorization: Bearer <token>` (compared in constant time; 401 without it,
//! 403 when wrong). Bodies are validated line by line before anything is
//! queued for the writer thread; a batch with any bad line writes nothing.
//!
//! Failure policy: bad parameters → 400; database unavailable or busy → 503
//! with `Retry-After`; a panic anywhere below is caught here, logged at error
//! and answered 500, and the worker lives on. The worker's read-only
//! connection is opened lazily and dropped after a database error, so the
//! next request reopens it (for example after the file was replaced).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::IpNet;
use crate::fcgi::conn::Request;
use crate::http::cache::Cache;
use crate::http::request;
use crate::http::response;
use crate::obs::health::Health;
use crate::obs::metrics::{self, Route};
use crate::search::{self, RankIndex, Reader};
use crate::store::writer::{SubmitError, WriterThread};
use crate::store::{self, Op};

/// Per-worker request handler; owns the worker's database connection.
pub struct Handler {
    db: PathBuf,
    index: Option<Arc<RankIndex>>,
    cache: Option<Arc<Cache>>,
    admin: Option<Arc<Admin>>,
    typo_fallback: bool,
    query_timeout: std::time::Duration,
    reader: Option<Reader>,
    /// When the database path was last checked for a replaced file.
    checked_file: Instant,
    health: Option<Arc<Health>>,
    thumbnails: search::ThumbnailPolicy,
    metrics_allow: Vec<IpNet>,
    slow: Option<std::time::Duration>,
    #[cfg(feature = "test-hooks")]
    kill_worker: bool,
}

/// The OpenAPI 3.1 document of every route, as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// `Content-Type` of the metrics text (Prometheus exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The write API's settings and its writer.
pub struct Admin {
    /// The bearer token writes must carry.
    pub token: String,
    /// Largest accepted body, in bytes.
    pub max_body: usize,
    /// The writer thread; None when the database could not be opened for writing.
    pub writer: Option<WriterThread>,
}

/// Test hook: panics on purpose (only with the `test-hooks` feature, never in releases).
#[cfg(feature = "test-hooks")]
#[expect(clippy::panic, reason = "a test-only trigger that must panic")]
pub fn test_hook_panic(what: &str) -> ! {
    panic!("test hook: {what}")
}

/// How often a worker checks whether the database file was replaced.
const FILE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Prefix of the write API's paths.
const ADMIN_PATH: &str = "/feed/admin/videos";

/// Compares two byte strings in time that depends only on their lengths.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

impl Handler {
    /// A handler for the database at `db`, ranking through `index` when given;
    /// the connection opens on first use (or with [`Handler::warm`]).
    pub fn new(db: PathBuf, index: Option<Arc<RankIndex>>) -> Handler {
        Handler {
            db,
            index,
            cache: None,
            admin: None,
            typo_fallback: true,
            query_timeout: crate::config::DEFAULT_QUERY_TIMEOUT,
            reader: None,
            checked_file: Instant::now(),
            health: None,
            thumbnails: search::ThumbnailPolicy::default(),
            metrics_allow: Vec::new(),
            slow: None,
            #[cfg(feature = "test-hooks")]
            kill_worker: false,
        }
    }

    /// Answers `/feed/health` from `health` (kept fresh by its own thread).
    pub fn with_health(mut self, health: Arc<Health>) -> Handler {
        self.health = Some(health);
        self
    }

    /// Shows broken thumbnails per `policy` (see [`search::ThumbnailPolicy`]).
    pub fn with_thumbnail_policy(mut self, policy: search::ThumbnailPolicy) -> Handler {
        self.thumbnails = policy;
        self
    }

    /// Lets these client addresses read `/feed/metrics` without the admin token.
    pub fn with_metrics_allow(mut self, allow: Vec<IpNet>) -> Handler {
        self.metrics_allow = allow;
        self
    }

    /// Logs requests slower than `slow` at warn (None: no slow log).
    pub fn with_slow_log(mut self, slow: Option<std::time::Duration>) -> Handler {
        self.slow = slow;
        self
    }

    /// Test hook: whether the last request asked its worker thread to die.
    #[cfg(feature = "test-hooks")]
    pub fn take_test_worker_kill(&mut self) -> bool {
        std::mem::take(&mut self.kill_worker)
    }

    /// Sets the query time limit.
    pub fn with_query_timeout(mut self, limit: std::time::Duration) -> Handler {
        self.query_timeout = limit;
        self
    }

    /// Turns the typo fallback on or off (on by default).
    pub fn with_typo_fallback(mut self, on: bool) -> Handler {
        self.typo_fallback = on;
        self
    }

    /// Enables the write API.
    pub fn with_admin(mut self, admin: Arc<Admin>) -> Handler {
        self.admin = Some(admin);
        self
    }

    /// The answer to a request whose body has not been read yet, when its
    /// PARAMS are enough: a write API request that is unauthorized, or whose
    /// declared body is over the cap (413 before anything is buffered).
    pub fn early(&mut self, req: &Request) -> Option<Vec<u8>> {
        let path = path_of(req);
        if !path.starts_with(ADMIN_PATH) {
            return None;
        }
        let (status, resp) = match self.admin_gate(req) {
            Err(answer) => answer,
            Ok(admin) => {
                let declared = req.param("CONTENT_LENGTH").and_then(|l| l.trim().parse::<usize>().ok());
                if declared.is_some_and(|n| n > admin.max_body) {
                    let msg =
                        format!("the body is larger than the {}-byte limit: send smaller batches", admin.max_body);
                    (413, response::error(413, None, &msg, &[], false))
                } else {
                    return None;
                }
            }
        };
        log::debug!(
            "request method={} path={path} status={status} early=1",
            req.param("REQUEST_METHOD").unwrap_or("-")
        );
        metrics::global().record(Route::Admin, status, 0, std::time::Duration::ZERO, false);
        Some(resp)
    }

    /// The write API's checks: enabled, authorized. Never logs the token.
    fn admin_gate(&self, req: &Request) -> Result<Arc<Admin>, (u16, Vec<u8>)> {
        let Some(admin) = self.admin.clone() else {
            return Err((
                404,
                response::error(
                    404,
                    None,
                    "no such endpoint: the write API is off (set VIDEOFEED_ADMIN_TOKEN)",
                    &[],
                    false,
                ),
            ));
        };
        match bearer(req) {
            None => Err((
                401,
                response::error(
                    401,
                    None,
                    "the write API needs Authorization: Bearer <token>",
                    &[("WWW-Authenticate", "Bearer")],
                    false,
                ),
            )),
            Some(token) if !same_secret(token.as_bytes(), admin.token.as_bytes()) => {
                log::warn!("write API: wrong token from {}", req.param("REMOTE_ADDR").unwrap_or("-"));
                Err((403, response::error(403, None, "the bearer token is not the configured one", &[], false)))
            }
            Some(_) => Ok(admin),
        }
    }

    fn route_admin(&mut self, req: &Request, path: &str, method: &str) -> (usize, Vec<u8>) {
        let admin = match self.admin_gate(req) {
            Ok(a) => a,
            Err((_, resp)) => return (0, resp),
        };
        let rest = path.get(ADMIN_PATH.len()..).unwrap_or("");
        let op = match (method, rest) {
            ("POST", "" | "/") => {
                if req.stdin_truncated || req.stdin.len() > admin.max_body {
                    let msg =
                        format!("the body is larger than the {}-byte limit: send smaller batches", admin.max_body);
                    return (0, response::error(413, None, &msg, &[], false));
                }
                match parse_batch(&req.stdin) {
                    Ok(videos) => Op::Upsert(videos),
                    Err((status, body)) => return (0, response::admin(status, &body, &[])),
                }
            }
            ("DELETE", id) if id.len() > 1 && id.starts_with('/') => match percent_decode(id.get(1..).unwrap_or("")) {
                Some(id) => Op::Delete(id),
                None => {
                    let msg = "the video id in the path is not valid percent-encoded UTF-8";
                    return (0, response::error(400, Some("id"), msg, &[], false));
                }
            },
            (_, "" | "/") => {
                let msg = format!("method {method} is not allowed here; use POST");
                return (0, response::error(405, None, &msg, &[("Allow", "POST")], false));
            }
            (_, _) => {
                let msg = format!("method {method} is not allowed here; use DELETE");
                return (0, response::error(405, None, &msg, &[("Allow", "DELETE")], false));
            }
        };
        let Some(writer) = &admin.writer else {
            let msg = "the write API cannot open the database for writing; see the log";
            return (0, response::error(503, None, msg, &[("Retry-After", "5")], false));
        };
        let is_delete = matches!(op, Op::Delete(_));
        let rows = op.rows();
        match writer.submit(op) {
            Ok(done) => {
                let c = done.applied.counts;
                if is_delete && c.deleted == 0 {
                    return (0, response::error(404, None, "no video with that id", &[], false));
                }
                let body = serde_json::json!({
                    "accepted": if is_delete { 0 } else { rows },
                    "inserted": c.inserted,
                    "updated": c.updated,
                    "unchanged": c.unchanged,
                    "deleted": c.deleted,
                    "rejected": [],
                    "commit_ms": done.commit.as_secs_f64() * 1000.0,
                });
                let purge = response::purge_tags(&done.applied.regions);
                let extra: Vec<(&str, &str)> =
                    if purge.is_empty() { Vec::new() } else { vec![("X-LiteSpeed-Purge", purge.as_str())] };
                (rows, response::admin(200, &body, &extra))
            }
            Err(SubmitError::QueueFull) => {
                (0, response::error(503, None, "too many writes queued; retry shortly", &[("Retry-After", "1")], false))
            }
            Err(e) => {
                log::error!("write API: {e}");
                (0, response::error(503, None, &e.to_string(), &[("Retry-After", "1")], false))
            }
        }
    }

    /// Serves repeated queries from `cache` (shared by all workers).
    pub fn with_cache(mut self, cache: Arc<Cache>) -> Handler {
        self.cache = cache.is_enabled().then_some(cache);
        self
    }

    /// Opens the connection now.
    ///
    /// # Errors
    /// As [`Reader::open_read_only`]; requests will retry the open.
    pub fn warm(&mut self) -> Result<(), search::Error> {
        // An operator may replace the file (`mv new.db videos.db`): look at most once a
        // second, and reopen when the path names another file. A deleted file keeps
        // serving from the open one until it is replaced.
        if self.checked_file.elapsed() >= FILE_CHECK {
            self.checked_file = Instant::now();
            let now = crate::store::db::file_id(&self.db);
            if now != 0 && self.reader.as_ref().is_some_and(|r| r.file() != now) {
                log::info!("database file replaced on disk; reopening {}", self.db.display());
                self.reader = None;
            }
        }
        if self.reader.is_none() {
            self.reader = Some(self.open()?);
        }
        Ok(())
    }

    fn open(&self) -> Result<Reader, search::Error> {
        let mut reader = match &self.index {
            Some(index) => Reader::with_index(&self.db, Arc::clone(index))?,
            None => Reader::with_index(&self.db, RankIndex::disabled(self.db.clone(), self.thumbnails.clone()))?,
        };
        reader.set_time_limit(self.query_timeout);
        reader.set_thumbnail_policy(self.thumbnails.clone());
        reader.set_typo_correction(self.typo_fallback);
        Ok(reader)
    }

    /// Answers one request with a complete CGI response. Never panics.
    pub fn handle(&mut self, req: &Request) -> Vec<u8> {
        let started = Instant::now();
        let m = metrics::global();
        let _busy = m.busy();
        let path = path_of(req);
        let route = route_of(&path);
        let result = catch_unwind(AssertUnwindSafe(|| self.route(req, &path, route)));
        let (rows, resp) = match result {
            Ok(answer) => answer,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!("handler panicked: {what}; answered 500");
                self.reader = None;
                (0, response::error(500, None, "internal error; the request was logged", &[], false))
            }
        };
        let took = started.elapsed();
        let status = response::status_of(&resp);
        let method = req.param("REQUEST_METHOD").unwrap_or("-");
        let slow = self.slow.is_some_and(|limit| took >= limit);
        m.record(route, status, rows, took, slow);
        if let Some(reader) = &self.reader {
            let (hits, misses) = reader.take_cache_stats();
            m.page_cache(hits, misses);
        }
        log::debug!(
            "request method={method} path={path} status={status} rows={rows} q_len={} us={}",
            req.param("QUERY_STRING").map_or(0, str::len),
            took.as_micros()
        );
        if slow {
            log::warn!(
                "slow request: method={method} path={path} status={status} rows={rows} ms={:.1} {}",
                took.as_secs_f64() * 1000.0,
                normalized(route, req)
            );
        }
        resp
    }

    /// `/feed/health`: 200 with the database facts, 503 when it cannot be read.
    fn health(&self, head: bool) -> (usize, Vec<u8>) {
        // The server always gives its handlers the shared health; a handler built without one says so.
        let Some(health) = &self.health else {
            let msg = "health is not tracked by this handler (see Handler::with_health)";
            return (0, response::error(503, None, msg, &[("Retry-After", "5")], head));
        };
        let (status, json) = health.answer();
        let mut extra = vec![("Cache-Control", "no-store")];
        if status == 503 {
            extra.push(("Retry-After", "5"));
        }
        (0, response::with_type(status, response::CONTENT_TYPE, &extra, &json, head))
    }

    /// `/feed/metrics`: for allowed addresses or the admin token only.
    fn metrics(&self, req: &Request, head: bool) -> (usize, Vec<u8>) {
        let remote = req.param("REMOTE_ADDR").and_then(|a| a.trim().parse::<std::net::IpAddr>().ok());
        let by_address = remote.is_some_and(|ip| self.metrics_allow.iter().any(|net| net.contains(ip)));
        let by_token = self.admin.as_ref().is_some_and(|admin| {
            bearer(req).is_some_and(|token| same_secret(token.as_bytes(), admin.token.as_bytes()))
        });
        if !(by_address || by_token) {
            let msg = "metrics are restricted: scrape from an address in VIDEOFEED_METRICS_ALLOW or send Authorization: Bearer <VIDEOFEED_ADMIN_TOKEN>";
            return (0, response::error(403, None, msg, &[], head));
        }
        let snap = self.health.as_ref().map(|h| h.snapshot());
        let stats = self.cache.as_ref().map(|c| c.stats());
        let extra = metrics::Extra {
            database_rows: snap.as_ref().filter(|s| s.error.is_none()).map(|s| s.rows),
            last_write: snap.as_ref().map(|s| s.last_write),
            healthy: snap.as_ref().is_none_or(|s| s.error.is_none()),
            cache_hits: stats.map_or(0, |s| s.hits),
            cache_misses: stats.map_or(0, |s| s.misses),
            cache_bytes: stats.map_or(0, |s| s.bytes),
            rank_index_generation: self.index.as_ref().and_then(|i| i.snapshot()).map(|s| s.generation()),
            jobs: snap.as_ref().filter(|s| s.error.is_none()).map(|s| s.jobs.clone()),
        };
        let text = metrics::global().render(&extra);
        (0, response::with_type(200, METRICS_CONTENT_TYPE, &[("Cache-Control", "no-store")], text.as_bytes(), head))
    }

    /// The answer to a request for `path` (its `route`): (rows returned, CGI response).
    fn route(&mut self, req: &Request, path: &str, route: Route) -> (usize, Vec<u8>) {
        let method = req.param("REQUEST_METHOD").unwrap_or("GET");
        let head = method.eq_ignore_ascii_case("HEAD");
        if route == Route::Admin {
            return self.route_admin(req, path, &method.to_ascii_uppercase());
        }
        if route == Route::Other {
            return (0, response::error(404, None, "no such endpoint; the feed is GET /feed?q=...", &[], head));
        }
        if !(method.eq_ignore_ascii_case("GET") || head) {
            let msg = format!("method {method} is not allowed; use GET");
            return (0, response::error(405, None, &msg, &[("Allow", "GET, HEAD")], false));
        }
        match route {
            Route::Health => return self.health(head),
            Route::Metrics => return self.metrics(req, head),
            Route::OpenApi => {
                let headers = [("Cache-Control", "public, max-age=300")];
                return (0, response::with_type(200, response::CONTENT_TYPE, &headers, OPENAPI_JSON.as_bytes(), head));
            }
            _ => {}
        }
        let query = match request::parse(req.param("QUERY_STRING").unwrap_or("")) {
            #[cfg(feature = "test-hooks")]
            Ok(q) if q.q == "__test_panic_handler__" => test_hook_panic("handler panic"),
            #[cfg(feature = "test-hooks")]
            Ok(q) if q.q == "__test_slow__" => {
                std::thread::sleep(std::time::Duration::from_millis(60));
                q
            }
            #[cfg(feature = "test-hooks")]
            Ok(q) if q.q == "__test_kill_worker__" => {
                self.kill_worker = true;
                q
            }
            Ok(q) => q,
            Err(e) => return (0, response::error(400, Some(e.param), &e.message, &[], head)),
        };
        match self.cached_search(&query, head, req.param("HTTP_IF_NONE_MATCH")) {
            Ok((rows, resp)) => (rows, resp),
            Err(e) => {
                let msg = match &e {
                    search::Error::TimedOut(_) => {
                        log::warn!("search stopped: {e} (q_len={})", query.q.len());
                        return (
                            0,
                            response::error(
                                503,
                                None,
                                &format!("{e}; try fewer or longer words"),
                                &[("Retry-After", "1")],
                                head,
                            ),
                        );
                    }
                    search::Error::Busy(_) => {
                        log::warn!("search busy: {e}");
                        "the video database is busy; retry shortly"
                    }
                    _ => {
                        log::error!("search failed: {e}");
                        "the video database is unavailable; retry shortly"
                    }
                };
                self.reader = None;
                (0, response::error(503, None, msg, &[("Retry-After", "1")], head))
            }
        }
    }

    /// The 200 answer (or 304), from the response cache when it holds this query at
    /// the current data version; (rows, response).
    ///
    /// A body is the answer for exactly one data version: the search reads the
    /// version in its own read transaction ([`Reader::answer`]), the body is cached
    /// under that version and its ETag and `Last-Modified` are made from it. A
    /// write in between can only make the cache skip it (an older version is
    /// never stored over a newer one).
    fn cached_search(
        &mut self,
        query: &request::FeedQuery,
        head: bool,
        if_none_match: Option<&str>,
    ) -> Result<(usize, Vec<u8>), search::Error> {
        let cache = self.cache.clone();
        self.warm()?;
        let Some(reader) = &self.reader else { return Ok((0, response::feed(query, &[], head))) };
        let validated = |json: &[u8], data: search::DataVersion| {
            let v = response::Validators {
                etag: response::etag(data.changes, json),
                last_modified: Some(data.last_write),
                if_none_match,
            };
            response::feed_validated(json, &query.region, head, &v)
        };
        if let Some(cache) = &cache {
            let now = reader.data_version()?;
            if let Some(json) = cache.get(query, (reader.file(), now.changes)) {
                return Ok((0, validated(&json, now)));
            }
        }
        let answer = reader.answer(query)?;
        metrics::global().ranked(answer.path == search::RankPath::Index, !answer.corrected.is_empty());
        // The search reads one row past the page to learn whether another page follows.
        let shown = answer.items.len().min(usize::try_from(query.limit).unwrap_or(usize::MAX));
        match response::feed_json_corrected(query, &answer.items, &answer.corrected) {
            Ok(json) => {
                let resp = validated(&json, answer.version);
                if let Some(cache) = &cache {
                    cache.put(query.clone(), (reader.file(), answer.version.changes), json.into());
                }
                Ok((shown, resp))
            }
            Err(_) => Ok((shown, response::feed(query, &answer.items, head))),
        }
    }
}

/// Validates a JSON Lines body: all lines good and ids unique, or a 4xx answer
/// listing every rejected line (then nothing is written).
fn parse_batch(body: &[u8]) -> Result<Vec<store::Video>, (u16, serde_json::Value)> {
    let reject = |status: u16, message: &str, rejected: Vec<serde_json::Value>| {
        (
            status,
            serde_json::json!({
                "accepted": 0, "inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0,
                "rejected": rejected, "commit_ms": 0.0,
                "error": {"status": status, "message": message},
            }),
        )
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(reject(400, "the body is not UTF-8 text", Vec::new()));
    };
    let mut videos = Vec::new();
    let mut rejected = Vec::new();
    let mut first_line: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match store::parse_line(line) {
            Ok(v) => match first_line.get(&v.id) {
                Some(first) => rejected.push(serde_json::json!({
                    "line": number, "reason": format!("duplicate id {:?}: also on line {first}", v.id)
                })),
                None => {
                    first_line.insert(v.id.clone(), number);
                    videos.push(v);
                }
            },
            Err(reason) => rejected.push(serde_json::json!({"line": number, "reason": reason})),
        }
    }
    if !rejected.is_empty() {
        let msg = "nothing was written: fix the rejected lines and send the batch again";
        return Err(reject(422, msg, rejected));
    }
    if videos.is_empty() {
        return Err(reject(400, "the body has no videos: send JSON Lines, one video per line", Vec::new()));
    }
    Ok(videos)
}

/// A URL path segment with its `%XX` escapes decoded (RFC 3986: `+` is a plus
/// sign in a path, not a space); None for a bad escape or invalid UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The bearer token of the request's `Authorization` header.
fn bearer(req: &Request) -> Option<&str> {
    req.param("HTTP_AUTHORIZATION")
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The metrics label of a request path.
fn route_of(path: &str) -> Route {
    match path {
        "/feed" | "/feed/" => Route::Feed,
        "/feed/health" => Route::Health,
        "/feed/metrics" => Route::Metrics,
        "/feed/openapi.json" => Route::OpenApi,
        p if p.starts_with(ADMIN_PATH) => Route::Admin,
        _ => Route::Other,
    }
}

/// The slow log's description of a request: for the feed the parsed parameters
/// (`q` quoted and escaped), for other routes nothing (never a header or token).
fn normalized(route: Route, req: &Request) -> String {
    if route != Route::Feed {
        return String::new();
    }
    match request::parse(req.param("QUERY_STRING").unwrap_or("")) {
        Ok(q) => format!(
            "q={:?} region={} limit={} offset={}{}",
            q.q,
            q.region,
            q.limit,
            q.offset,
            if q.is_filtered() { format!(" filters={:?}", q.filter_key()) } else { String::new() }
        ),
        Err(e) => format!("invalid={}", e.param),
    }
}

/// The request path: `REQUEST_URI` without its query, else `SCRIPT_NAME` + `PATH_INFO`.
fn path_of(req: &Request) -> String {
    if let Some(uri) = req.param("REQUEST_URI").filter(|u| !u.is_empty()) {
        return uri.split_once('?').map_or(uri, |(p, _)| p).to_owned();
    }
    format!("{}{}", req.param("SCRIPT_NAME").unwrap_or(""), req.param("PATH_INFO").unwrap_or(""))
}
