//! Which route a request asks for: its path (from `REQUEST_URI`, else
//! `SCRIPT_NAME` + `PATH_INFO`, so it does not depend on how the web server maps
//! the context) and the metrics label; and the slow log's description of it.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use crate::fcgi::conn::Request;
use crate::obs::metrics::Route;

/// Prefix of the write API's paths.
pub(super) const ADMIN_PATH: &str = "/feed/admin/videos";

/// The metrics label of a request path.
pub(super) fn route_of(path: &str) -> Route {
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
pub(super) fn normalized(route: Route, req: &Request) -> String {
    if route != Route::Feed {
        return String::new();
    }
    match super::request::parse_bytes(req.param_bytes("QUERY_STRING").unwrap_or_default()) {
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
pub(super) fn path_of(req: &Request) -> String {
    if let Some(uri) = req.param("REQUEST_URI").filter(|u| !u.is_empty()) {
        return uri.split_once('?').map_or(uri, |(p, _)| p).to_owned();
    }
    format!("{}{}", req.param("SCRIPT_NAME").unwrap_or(""), req.param("PATH_INFO").unwrap_or(""))
}
