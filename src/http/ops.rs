//! The service's own endpoints: `/feed/health` (the facts of `obs::health`),
//! `/feed/metrics` (Prometheus text, for allowed addresses or the admin token)
//! and `/feed/openapi.json` (the contract, `docs/openapi.json`).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use super::Handler;
use super::admin::{bearer, same_secret};
use super::response::{self, Response};
use crate::fcgi::conn::Request;
use crate::obs::health::Live;
use crate::obs::metrics;

/// How long `/feed/health` and `/feed/metrics` wait for the facts read at start.
const FIRST_FACTS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The OpenAPI 3.1 document of every route, as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// `Content-Type` of the metrics text (Prometheus exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/feed/openapi.json`.
pub(super) fn openapi(head: bool) -> Response {
    let headers = [("Cache-Control", "public, max-age=300")];
    response::with_type(200, response::CONTENT_TYPE, &headers, OPENAPI_JSON.as_bytes().to_vec(), head)
}

impl Handler {
    /// `/feed/health`: 200 with the database facts, 503 when it cannot be read (and,
    /// with `?strict=1`, when the data is staler than `VIDEOFEED_MAX_STALENESS`).
    pub(super) fn health(&self, req: &Request, head: bool) -> Response {
        let m = metrics::global();
        let rank_index = self.config.rank_index.then(|| {
            let d = self.shared.index.delta_state();
            crate::obs::health::RankIndexLive {
                delta_rows: d.rows,
                delta_age_seconds: d.age.map_or(0.0, |a| (a.as_secs_f64() * 10.0).round() / 10.0),
                delta_bound_rows: crate::search::index::thresholds::get()
                    .compact_rows
                    .saturating_mul(crate::search::index::DELTA_BOUND_FACTOR),
                compacting_seconds: d.compacting.map(|(took, _)| (took.as_secs_f64() * 10.0).round() / 10.0),
                behind: d.behind,
            }
        });
        let live = Live { workers: m.workers(), uptime: m.uptime(), queue_depth: m.queue_depth(), rank_index };
        let mut strict = false;
        for (name, value) in url::form_urlencoded::parse(req.param("QUERY_STRING").unwrap_or("").as_bytes()) {
            if name == "strict" {
                strict = match value.as_ref() {
                    "1" | "true" => true,
                    "0" | "false" | "" => false,
                    _ => return response::error(400, Some("strict"), "must be 1 (or true) or 0 (or false)", &[], head),
                };
            }
        }
        if !self.shared.health.wait_first(FIRST_FACTS_WAIT) {
            let msg = "starting: the database facts are not read yet (a slow disk?); retry shortly";
            return response::error(503, None, msg, &[("Retry-After", "5")], head);
        }
        let (status, json) = self.shared.health.answer(&live, self.config.max_staleness, self.config.staleness, strict);
        let mut extra = vec![("Cache-Control", "no-store")];
        if status == 503 {
            extra.push(("Retry-After", "5"));
        }
        response::with_type(status, response::CONTENT_TYPE, &extra, json, head)
    }

    /// `/feed/metrics`: for allowed addresses or the admin token only.
    pub(super) fn metrics(&self, req: &Request, head: bool) -> Response {
        let remote = req.param("REMOTE_ADDR").and_then(|a| a.trim().parse::<std::net::IpAddr>().ok());
        let by_address = remote.is_some_and(|ip| self.config.metrics_allow.iter().any(|net| net.contains(ip)));
        let by_token = self.shared.admin.as_ref().is_some_and(|admin| {
            bearer(req).is_some_and(|token| same_secret(token.as_bytes(), admin.token.as_bytes()))
        });
        if !(by_address || by_token) {
            let msg = "metrics are restricted: scrape from an address in VIDEOFEED_METRICS_ALLOW or send Authorization: Bearer <VIDEOFEED_ADMIN_TOKEN>";
            return response::error(403, None, msg, &[], head);
        }
        self.shared.health.wait_first(FIRST_FACTS_WAIT);
        let facts = self.shared.health.snapshot();
        let stats = self.shared.cache.stats();
        let readable = facts.error.is_none();
        let delta = self.shared.index.delta_state();
        let extra = metrics::Extra {
            database_rows: readable.then_some(facts.rows),
            last_write: Some(facts.last_write),
            healthy: readable,
            cache_hits: stats.hits,
            cache_misses: stats.misses,
            cache_bytes: stats.bytes,
            rank_index_generation: self.shared.index.generation(),
            rank_index_delta_rows: delta.rows,
            rank_index_delta: metrics::DeltaGauges {
                versions: delta.versions,
                postings: delta.postings,
                age_seconds: delta.age.map_or(0.0, |a| a.as_secs_f64()),
                compacting: delta.compacting.is_some(),
                behind: delta.behind.is_some(),
            },
            rank_index_delta_memo: self.shared.index.delta_memo(),
            jobs: readable.then(|| facts.jobs.clone()),
            data_age_seconds: crate::obs::health::data_age(&facts),
            replica_follower_up: facts
                .replica
                .as_ref()
                .map(|r| r.get("follower").and_then(|f| f.as_str()) == Some("running")),
        };
        let text = metrics::global().render(&extra);
        response::with_type(200, METRICS_CONTENT_TYPE, &[("Cache-Control", "no-store")], text.into_bytes(), head)
    }
}
