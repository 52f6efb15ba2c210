//! From a FastCGI request to a response: the only code that knows routes.
//!
//! [`Handler::handle`] is the dispatch: a panic guard, timing, metrics and the
//! request log around the route ([`route`]): the feed ([`feed`]: [`request`] →
//! the [`cache`] or `search` → [`response`]), the write API ([`admin`]) and the
//! service endpoints ([`ops`]). Every answer is a typed [`response::Response`],
//! rendered to CGI bytes once, at the end.
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
//! A queued write is answered after its commit by the poller ([`Answer::Later`]),
//! so no worker waits for the writer.
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

pub mod admin;
pub mod admission;
pub mod cache;
pub mod feed;
pub mod ops;
pub mod request;
pub mod response;
pub mod route;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

pub use admin::{Admin, Pending};
use cache::Cache;
pub use ops::{METRICS_CONTENT_TYPE, OPENAPI_JSON};
use response::Response;
use route::{normalized, path_of, route_of};

use crate::config::Config;
use crate::fcgi::conn::{Head, Request};
use crate::obs::health::Health;
use crate::obs::metrics::{self, Route};
use crate::search::{self, RankIndex, Reader};

/// What every worker's handler shares with the others.
#[derive(Clone)]
pub struct Shared {
    /// The rank index (on or off), the typo vocabulary and the hidden set.
    pub index: Arc<RankIndex>,
    /// The response cache (disabled when its budget is 0).
    pub cache: Arc<Cache>,
    /// Which answers LSCache may store (`VIDEOFEED_LSCACHE`).
    pub admission: Arc<admission::Admission>,
    /// The database facts `/feed/health` reports.
    pub health: Arc<Health>,
    /// The write API, when an admin token is configured.
    pub admin: Option<Arc<Admin>>,
    /// Bumped when the database file is seen replaced (inotify): workers look at once.
    pub file_epoch: Arc<std::sync::atomic::AtomicU64>,
}

/// What a request gets from its PARAMS alone, before any body is read: the
/// poller asks this while it assembles requests, so it needs no database and
/// never blocks. Only the write API's batch route (`POST /feed/admin/videos`)
/// reads a body, up to `VIDEOFEED_ADMIN_MAX_BODY`; every other route is
/// complete at the end of its PARAMS (a body sent anyway is skipped unread).
/// Write requests that are unauthorized or declare a body over the cap are
/// answered at once (401/403/404/413), their body never read.
#[derive(Clone)]
pub struct Gate {
    /// The write API, when an admin token is configured.
    pub admin: Option<Arc<Admin>>,
}

impl Gate {
    /// The route's decision for `req` (answer now, no body, or a body up to a cap).
    pub fn head(&self, req: &Request) -> Head {
        head_of(self.admin.as_ref(), req)
    }
}

/// [`Gate::head`] for the write API `admin` (shared by the poller's gate and each handler).
fn head_of(admin: Option<&Arc<Admin>>, req: &Request) -> Head {
    if req.params_over_cap {
        // The parameters were cut off unread: no route, no method; one answer for all.
        let resp = response::error(
            431,
            None,
            "the request's parameters (query string and headers) are over the size limit \
             (VIDEOFEED_MAX_PARAMS_BYTES, VIDEOFEED_MAX_PARAMS): send a shorter query string or fewer headers",
            &[],
            false,
        );
        metrics::global().record(Route::Other, resp.status, 0, std::time::Duration::ZERO, false);
        return Head::Answer(resp.render());
    }
    let path = path_of(req);
    if route_of(&path) != Route::Admin {
        return Head::NoBody;
    }
    if let Some(resp) = admin::early(admin, req) {
        log::debug!(
            "request method={} path={path} status={} early=1",
            req.param("REQUEST_METHOD").unwrap_or("-"),
            resp.status
        );
        metrics::global().record(Route::Admin, resp.status, 0, std::time::Duration::ZERO, false);
        return Head::Answer(resp.render());
    }
    match admin {
        Some(a) if admin::takes_body(req.param("REQUEST_METHOD").unwrap_or(""), &path) => Head::Body(a.max_body),
        _ => Head::NoBody,
    }
}

/// Whether `req` is for the write API (its workers are bounded by
/// `VIDEOFEED_ADMIN_CONCURRENCY`: the poller holds the rest until one is free).
pub fn is_write(req: &Request) -> bool {
    route_of(&path_of(req)) == Route::Admin
}

/// A handler's answer: the CGI response now, or a write whose answer follows its commit.
pub enum Answer {
    /// The complete CGI response.
    Now(Vec<u8>),
    /// A write queued for the writer: the poller answers it when the writer wakes it.
    Later(Pending),
}

/// Per-worker request handler; owns the worker's database connection.
pub struct Handler {
    config: Arc<Config>,
    shared: Shared,
    reader: Option<Reader>,
    /// When the database path was last checked for a replaced file.
    checked_file: Instant,
    /// The `file_epoch` this handler last looked at.
    seen_epoch: u64,
    /// Since when a replaced file waits for its rank index (the old one serves meanwhile).
    switch_pending: Option<Instant>,
    /// The replaced file this handler refused to open (logged once): see
    /// [`crate::store::db::replaced_under_its_wal`].
    refused_file: u64,
    #[cfg(feature = "test-hooks")]
    kill_worker: bool,
}

/// How often a worker checks whether the database file was replaced (at once when
/// the watcher saw it replaced: `Shared::file_epoch`).
const FILE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a replaced file waits for its rank index before workers switch anyway.
const SWITCH_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

impl Handler {
    /// A handler for `config`'s database and settings; the connection opens on first use.
    pub fn new(config: Arc<Config>, shared: Shared) -> Handler {
        Handler {
            config,
            shared,
            reader: None,
            checked_file: Instant::now(),
            seen_epoch: 0,
            switch_pending: None,
            refused_file: 0,
            #[cfg(feature = "test-hooks")]
            kill_worker: false,
        }
    }

    /// Test hook: whether the last request asked its worker thread to die.
    #[cfg(feature = "test-hooks")]
    pub fn take_test_worker_kill(&mut self) -> bool {
        std::mem::take(&mut self.kill_worker)
    }

    /// What to do with `req` before its body is read (see [`Gate::head`]).
    pub fn head(&self, req: &Request) -> Head {
        head_of(self.shared.admin.as_ref(), req)
    }

    /// Makes sure the connection is open and still reads the file at the database
    /// path: an operator may replace it (`mv new.db videos.db`); look at most once a
    /// second and reopen when the path names another file. A deleted file keeps
    /// serving from the open one until it is replaced.
    ///
    /// # Errors
    /// As [`Reader::with_index`]; requests will retry the open.
    fn reader_for_current_file(&mut self) -> Result<&Reader, search::Error> {
        let epoch = self.shared.file_epoch.load(std::sync::atomic::Ordering::Relaxed);
        if self.checked_file.elapsed() >= FILE_CHECK || epoch != self.seen_epoch || self.switch_pending.is_some() {
            self.checked_file = Instant::now();
            self.seen_epoch = epoch;
            let now = crate::store::db::file_id(&self.config.db);
            let unsafe_swap = crate::store::db::replaced_under_its_wal(&self.config.db);
            if let Some(reason) = unsafe_swap.as_ref().filter(|_| self.reader.is_some()) {
                // Keep answering from the open file; say why once per replacement.
                if self.refused_file != now {
                    self.refused_file = now;
                    log::error!("not switching to the new database file: {reason}");
                }
            } else if now != 0 && self.reader.as_ref().is_some_and(|r| r.file() != now) {
                // The old file (still open) keeps answering through its rank index until
                // the new file's is built, so a swap costs no slow answers.
                let since = *self.switch_pending.get_or_insert_with(Instant::now);
                if self.shared.index.ready_for(now) || since.elapsed() >= SWITCH_WAIT {
                    log::info!("database file replaced on disk; reopening {}", self.config.db.display());
                    self.reader = None;
                    self.switch_pending = None;
                    self.shared.health.answering_from(None);
                } else {
                    self.shared.index.follow_replaced_file();
                    // Health reports the age of what this worker answers from.
                    if let Some(r) = self.reader.as_ref() {
                        self.shared.health.answering_from(Some((r.file(), r.heartbeat_ms())));
                    }
                }
            } else {
                self.switch_pending = None;
            }
        }
        if self.reader.is_none() {
            let mut reader = Reader::with_index(&self.config.db, Arc::clone(&self.shared.index))?;
            reader.set_time_limit(self.config.query_timeout);
            reader.set_thumbnail_policy(self.config.thumbnails.clone());
            reader.set_typo_correction(self.config.typo_fallback);
            reader.set_relax(self.config.relax);
            reader.set_totals(self.config.totals);
            self.reader = Some(reader);
        }
        self.reader.as_ref().ok_or_else(|| search::Error::Index("no reader".into()))
    }

    /// Answers one request with a complete CGI response, or a write queued for the
    /// writer whose answer the poller sends after the commit. Never panics.
    pub fn handle(&mut self, req: &Request) -> Answer {
        let started = Instant::now();
        let m = metrics::global();
        let _busy = m.busy();
        let path = path_of(req);
        let route = route_of(&path);
        let result = catch_unwind(AssertUnwindSafe(|| self.route(req, &path, route)));
        let (rows, resp) = match result {
            Ok(Ok(answer)) => answer,
            Ok(Err(pending)) => return Answer::Later(pending),
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
        let status = resp.status;
        let method = req.param("REQUEST_METHOD").unwrap_or("-");
        let slow = self.config.slow.is_some_and(|limit| took >= limit);
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
        Answer::Now(resp.render())
    }

    /// The answer to a request for `path` (its `route`): (rows returned, response),
    /// or a write queued for the writer.
    fn route(&mut self, req: &Request, path: &str, route: Route) -> Result<(usize, Response), Pending> {
        let method = req.param("REQUEST_METHOD").unwrap_or("GET");
        if route == Route::Admin {
            return self.admin(req, path, &method.to_ascii_uppercase());
        }
        Ok(self.read_route(req, route, method))
    }

    /// The answer to a read (every route but the write API's).
    fn read_route(&mut self, req: &Request, route: Route, method: &str) -> (usize, Response) {
        let head = method.eq_ignore_ascii_case("HEAD");
        if route == Route::Other {
            return (0, response::error(404, None, "no such endpoint; the feed is GET /feed?q=...", &[], head));
        }
        if !(method.eq_ignore_ascii_case("GET") || head) {
            let msg = format!("method {method} is not allowed; use GET");
            return (0, response::error(405, None, &msg, &[("Allow", "GET, HEAD")], false));
        }
        match route {
            Route::Health => (0, self.health(req, head)),
            Route::Metrics => (0, self.metrics(req, head)),
            Route::OpenApi => (0, ops::openapi(head)),
            _ => self.feed(req, head),
        }
    }
}
