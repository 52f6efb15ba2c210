//! `GET /feed`: the query string → [`FeedQuery`] → the response cache or the
//! search → a 200 (or 304) with cache headers and validators; bad parameters
//! are a 400 naming the parameter; a database that cannot answer is a 503.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;

use super::Handler;
use super::request::{self, FeedQuery};
use super::response::{self, Response};
use crate::fcgi::conn::Request;
use crate::obs::metrics;
use crate::search;

impl Handler {
    /// The feed route: (rows returned, response).
    pub(super) fn feed(&mut self, req: &Request, head: bool) -> (usize, Response) {
        let query = match request::parse_bytes(req.param_bytes("QUERY_STRING").unwrap_or_default()) {
            #[cfg(feature = "test-hooks")]
            Ok(q) if q.q == "__test_panic_handler__" => crate::sys::test_hook_panic("handler panic"),
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
                        let msg = format!("{e}; try fewer or longer words");
                        return (0, response::error(503, None, &msg, &[("Retry-After", "1")], head));
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
    /// version in its own read transaction ([`crate::search::Reader::answer`]), the body is cached
    /// under that version and its ETag and `Last-Modified` are made from it. A
    /// write in between can only make the cache skip it (an older version is
    /// never stored over a newer one).
    fn cached_search(
        &mut self,
        query: &FeedQuery,
        head: bool,
        if_none_match: Option<&str>,
    ) -> Result<(usize, Response), search::Error> {
        let cache = self.shared.cache.is_enabled().then(|| Arc::clone(&self.shared.cache));
        // Asked before, recently? Then LSCache may store this answer (http::admission).
        let lscache = self.shared.admission.admit(query);
        let reader = self.reader_for_current_file()?;
        let validated = |json: &[u8], data: search::DataVersion| {
            let v = response::Validators {
                etag: response::etag(data.changes, json),
                last_modified: Some(data.last_write),
                if_none_match,
            };
            response::feed_validated(json, &query.region, head, &v, lscache)
        };
        if let Some(cache) = &cache {
            let now = reader.data_version()?;
            if let Some(json) = cache.get(query, (reader.file(), now.changes)) {
                return Ok((0, validated(&json, now)));
            }
        }
        let answer = reader.answer(query)?;
        let by_index = answer.path == search::RankPath::Index;
        metrics::global().ranked(by_index, !answer.corrected.is_empty(), query.is_filtered());
        // The search reads one row past the page to learn whether another page follows.
        let shown = answer.items.len().min(usize::try_from(query.limit).unwrap_or(usize::MAX));
        let notes = response::Notes { corrected: &answer.corrected, dropped: &answer.relaxed, total: answer.total };
        match response::feed_json_noted(query, &answer.items, notes) {
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
