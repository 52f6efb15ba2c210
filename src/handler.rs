//! The only code that knows routes: a FastCGI request → `/feed` → search → CGI response.
//!
//! Routing uses the request path from `REQUEST_URI` (query string cut off),
//! else `SCRIPT_NAME` + `PATH_INFO`, so it does not depend on how the web
//! server maps the context. `/feed` and `/feed/` are the feed; any other path
//! is 404; methods other than GET and HEAD are 405 with `Allow`.
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

use crate::cache::{self, Cache};
use crate::fcgi::conn::Request;
use crate::request;
use crate::response;
use crate::search::{self, RankIndex, Reader};

/// Per-worker request handler; owns the worker's database connection.
pub struct Handler {
    db: PathBuf,
    index: Option<Arc<RankIndex>>,
    cache: Option<Arc<Cache>>,
    reader: Option<Reader>,
}

impl Handler {
    /// A handler for the database at `db`, ranking through `index` when given;
    /// the connection opens on first use (or with [`Handler::warm`]).
    pub fn new(db: PathBuf, index: Option<Arc<RankIndex>>) -> Handler {
        Handler { db, index, cache: None, reader: None }
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
        if self.reader.is_none() {
            self.reader = Some(self.open()?);
        }
        Ok(())
    }

    fn open(&self) -> Result<Reader, search::Error> {
        match &self.index {
            Some(index) => Reader::with_index(&self.db, Arc::clone(index)),
            None => Reader::open_read_only(&self.db),
        }
    }

    /// Answers one request with a complete CGI response. Never panics.
    pub fn handle(&mut self, req: &Request) -> Vec<u8> {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| self.route(req)));
        let (status, rows, resp) = match result {
            Ok(r) => r,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!("handler panicked: {what}; answered 500");
                self.reader = None;
                (500, 0, response::error(500, None, "internal error; the request was logged", &[], false))
            }
        };
        log::debug!(
            "request method={} path={} status={status} rows={rows} q_len={} us={}",
            req.param("REQUEST_METHOD").unwrap_or("-"),
            path_of(req),
            req.param("QUERY_STRING").map_or(0, str::len),
            started.elapsed().as_micros()
        );
        resp
    }

    fn route(&mut self, req: &Request) -> (u16, usize, Vec<u8>) {
        let method = req.param("REQUEST_METHOD").unwrap_or("GET");
        let head = method.eq_ignore_ascii_case("HEAD");
        let path = path_of(req);
        if path != "/feed" && path != "/feed/" {
            return (404, 0, response::error(404, None, "no such endpoint; the feed is GET /feed?q=...", &[], head));
        }
        if !(method.eq_ignore_ascii_case("GET") || head) {
            let msg = format!("method {method} is not allowed; use GET");
            return (405, 0, response::error(405, None, &msg, &[("Allow", "GET, HEAD")], false));
        }
        let query = match request::parse(req.param("QUERY_STRING").unwrap_or("")) {
            Ok(q) => q,
            Err(e) => return (400, 0, response::error(400, Some(e.param), &e.message, &[], head)),
        };
        match self.cached_search(&query, head) {
            Ok((rows, resp)) => (200, rows, resp),
            Err(e) => {
                match &e {
                    search::Error::Busy(_) => log::warn!("search busy: {e}"),
                    _ => log::error!("search failed: {e}"),
                }
                self.reader = None;
                let msg = "the video database is unavailable; retry shortly";
                (503, 0, response::error(503, None, msg, &[("Retry-After", "1")], head))
            }
        }
    }

    /// The 200 answer, from the response cache when it holds this query at the
    /// current database generation; (rows, response).
    fn cached_search(&mut self, query: &request::FeedQuery, head: bool) -> Result<(usize, Vec<u8>), search::Error> {
        let Some(cache) = self.cache.clone() else {
            let items = self.search(query)?;
            return Ok((items.len(), response::feed(query, &items, head)));
        };
        self.warm()?;
        let generation = match &self.reader {
            Some(reader) => reader.generation()?,
            None => return Ok((0, response::feed(query, &[], head))),
        };
        let key = cache::Key { q: query.q.clone(), region: query.region.clone(), limit: query.limit };
        if let Some(json) = cache.get(&key, generation) {
            return Ok((0, response::feed_from_json(&json, head)));
        }
        let items = self.search(query)?;
        match response::feed_json(query, &items) {
            Ok(json) => {
                let resp = response::feed_from_json(&json, head);
                cache.put(key, generation, json.into());
                Ok((items.len(), resp))
            }
            Err(_) => Ok((items.len(), response::feed(query, &items, head))),
        }
    }

    fn search(&mut self, query: &request::FeedQuery) -> Result<Vec<search::FeedItem>, search::Error> {
        self.warm()?;
        match &self.reader {
            Some(reader) => reader.search(query),
            None => Ok(Vec::new()),
        }
    }
}

/// The request path: `REQUEST_URI` without its query, else `SCRIPT_NAME` + `PATH_INFO`.
fn path_of(req: &Request) -> String {
    if let Some(uri) = req.param("REQUEST_URI").filter(|u| !u.is_empty()) {
        return uri.split_once('?').map_or(uri, |(p, _)| p).to_owned();
    }
    format!("{}{}", req.param("SCRIPT_NAME").unwrap_or(""), req.param("PATH_INFO").unwrap_or(""))
}
