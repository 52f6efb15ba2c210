//! The write API: `POST /feed/admin/videos` (JSON Lines in the import format)
//! and `DELETE /feed/admin/videos/{id}`, only when an admin token is configured.
//! Every write must carry it as `Authorization: Bearer <token>` (compared in
//! constant time; 401 without it, 403 when wrong; never logged). Bodies are
//! validated line by line before anything is queued for the writer thread; a
//! batch with any bad line writes nothing. A successful write answers
//! `X-LiteSpeed-Purge` with the tags of every region whose pages changed.
//!
//! A write holds a worker only while its body is validated: the op is then
//! queued for the writer thread and the worker goes on; the poller sends the
//! answer when the writer wakes it after the commit ([`Pending`]). Requests
//! past `VIDEOFEED_ADMIN_CONCURRENCY` wait in the poller for a worker; only a
//! full writer queue (`VIDEOFEED_WRITE_QUEUE`) is answered 503 + Retry-After,
//! with nothing written.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::Handler;
use super::response::{self, Response};
use super::route::ADMIN_PATH;
use crate::fcgi::conn::Request;
use crate::obs::metrics::{self, Route};
use crate::store::writer::{Done, Outcome, SubmitError, Wake, WriterThread};
use crate::store::{self, Op};

/// The write API's settings and its writer.
pub struct Admin {
    /// The bearer token writes must carry.
    pub token: String,
    /// Largest accepted body, in bytes.
    pub max_body: usize,
    /// The writer thread; None when the database could not be opened for writing.
    pub writer: Option<WriterThread>,
    /// How long a write request waits for its commit before answering 503 (it stays queued).
    pub wait: Duration,
    /// Wakes the poller when a write's outcome is ready (it sends the answer).
    pub wake: Wake,
}

/// A write request whose body was read and validated and whose op is queued for
/// the writer: no worker waits for it. The poller answers it with
/// [`Pending::try_answer`] once the writer has committed (the writer wakes it),
/// or with a 503 past the wait.
pub struct Pending {
    outcome: Outcome,
    is_delete: bool,
    rows: usize,
    started: Instant,
    deadline: Instant,
    path: String,
}

impl Pending {
    /// The complete CGI answer when the outcome is in (or the wait is over); None
    /// while the write is still queued. Counts and logs the request then.
    pub fn try_answer(&self, now: Instant) -> Option<Vec<u8>> {
        let (rows, resp) = match self.outcome.try_recv() {
            Ok(result) => self.finish(result),
            Err(mpsc::TryRecvError::Empty) if now < self.deadline => return None,
            Err(mpsc::TryRecvError::Empty) => {
                let e = SubmitError::TimedOut(self.deadline.saturating_duration_since(self.started));
                log::warn!("write API: {e}");
                (0, response::error(503, None, &e.to_string(), &[("Retry-After", "5")], false))
            }
            Err(mpsc::TryRecvError::Disconnected) => self.finish(Err(SubmitError::Stopped)),
        };
        let took = self.started.elapsed();
        metrics::global().record(Route::Admin, resp.status, rows, took, false);
        log::debug!(
            "request method=write path={} status={} rows={rows} us={}",
            self.path,
            resp.status,
            took.as_micros()
        );
        Some(resp.render())
    }

    /// The answer to a write's outcome: (rows written, response).
    fn finish(&self, result: Result<Done, SubmitError>) -> (usize, Response) {
        match result {
            Ok(done) => {
                metrics::global().write_answered(done.committed.elapsed());
                let c = done.applied.counts;
                if self.is_delete && c.deleted == 0 {
                    return (0, response::error(404, None, "no video with that id", &[], false));
                }
                let rows = self.rows;
                let body = serde_json::json!({
                    "accepted": if self.is_delete { 0 } else { rows },
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
            Err(SubmitError::QueueFull) => (0, queue_full()),
            Err(e) => {
                log::error!("write API: {e}");
                (0, response::error(503, None, &e.to_string(), &[("Retry-After", "1")], false))
            }
        }
    }
}

/// The answer to a write request that waited `wait` (`VIDEOFEED_ADMIN_WAIT_MS`) for a
/// worker without getting one (nothing was read or written). Counted here.
pub fn no_worker_in_time(wait: Duration) -> Vec<u8> {
    let msg = format!(
        "the write waited {} ms for a worker (VIDEOFEED_ADMIN_CONCURRENCY) and was not read; nothing was written: retry",
        wait.as_millis()
    );
    let resp = response::error(503, None, &msg, &[("Retry-After", "1")], false);
    metrics::global().record(Route::Admin, resp.status, 0, wait, false);
    log::warn!("write API: {msg}");
    resp.render()
}

/// The answer to a write the writer's queue has no room for (nothing was written).
fn queue_full() -> Response {
    response::error(
        503,
        None,
        "the writer's queue is full (VIDEOFEED_WRITE_QUEUE); nothing was written: retry after the Retry-After seconds",
        &[("Retry-After", "1")],
        false,
    )
}

/// Compares two byte strings in time that depends only on their lengths.
pub(super) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The answer to a write request from its PARAMS alone, before its body is read:
/// the write API is off (404), unauthorized (401/403), or the declared body is
/// over the cap (413). None when the request must be read whole.
pub(super) fn early(admin: Option<&Arc<Admin>>, req: &Request) -> Option<Response> {
    match gate(admin, req) {
        Err(answer) => Some(answer),
        Ok(admin) => {
            let declared = req.param("CONTENT_LENGTH").and_then(|l| l.trim().parse::<usize>().ok());
            declared.filter(|n| *n > admin.max_body).map(|_| too_large(admin.max_body))
        }
    }
}

fn too_large(max_body: usize) -> Response {
    let msg = format!("the body is larger than the {max_body}-byte limit: send smaller batches");
    response::error(413, None, &msg, &[], false)
}

/// The write API's checks: enabled, authorized. Never logs the token.
fn gate<'a>(admin: Option<&'a Arc<Admin>>, req: &Request) -> Result<&'a Arc<Admin>, Response> {
    let Some(admin) = admin else {
        return Err(response::error(
            404,
            None,
            "no such endpoint: the write API is off (set VIDEOFEED_ADMIN_TOKEN)",
            &[],
            false,
        ));
    };
    match bearer(req) {
        None => Err(response::error(
            401,
            None,
            "the write API needs Authorization: Bearer <token>",
            &[("WWW-Authenticate", "Bearer")],
            false,
        )),
        Some(token) if !same_secret(token.as_bytes(), admin.token.as_bytes()) => {
            log::warn!("write API: wrong token from {}", req.param("REMOTE_ADDR").unwrap_or("-"));
            Err(response::error(403, None, "the bearer token is not the configured one", &[], false))
        }
        Some(_) => Ok(admin),
    }
}

/// Whether the write API request `method` on `path` carries a body (a batch to upsert).
pub(super) fn takes_body(method: &str, path: &str) -> bool {
    method.eq_ignore_ascii_case("POST") && matches!(path.get(ADMIN_PATH.len()..), Some("" | "/"))
}

impl Handler {
    /// A write request (its body read whole by the poller): validated here, then
    /// queued for the writer; the answer follows the commit ([`Pending`]).
    pub(super) fn admin(&mut self, req: &Request, path: &str, method: &str) -> Result<(usize, Response), Pending> {
        let admin = match gate(self.shared.admin.as_ref(), req) {
            Ok(a) => Arc::clone(a),
            Err(resp) => return Ok((0, resp)),
        };
        let rest = path.get(ADMIN_PATH.len()..).unwrap_or("");
        let op = match (method, rest) {
            ("POST", "" | "/") => {
                if req.stdin_truncated || req.stdin.len() > admin.max_body {
                    return Ok((0, too_large(admin.max_body)));
                }
                match parse_batch(&req.stdin, self.config.assume_utc) {
                    Ok(videos) => Op::Upsert(videos),
                    Err((status, body)) => return Ok((0, response::admin(status, &body, &[]))),
                }
            }
            ("DELETE", id) if id.len() > 1 && id.starts_with('/') => match percent_decode(id.get(1..).unwrap_or("")) {
                Some(id) => Op::Delete(id),
                None => {
                    let msg = "the video id in the path is not valid percent-encoded UTF-8";
                    return Ok((0, response::error(400, Some("id"), msg, &[], false)));
                }
            },
            (_, "" | "/") => {
                let msg = format!("method {method} is not allowed here; use POST");
                return Ok((0, response::error(405, None, &msg, &[("Allow", "POST")], false)));
            }
            (_, _) => {
                let msg = format!("method {method} is not allowed here; use DELETE");
                return Ok((0, response::error(405, None, &msg, &[("Allow", "DELETE")], false)));
            }
        };
        let Some(writer) = &admin.writer else {
            let msg = "the write API cannot open the database for writing; see the log";
            return Ok((0, response::error(503, None, msg, &[("Retry-After", "5")], false)));
        };
        // A file renamed over the database while it was open: writes would go to the
        // replaced file and be lost with it. Refuse them, saying why.
        if let Some(reason) = store::db::replaced_under_its_wal(&self.config.db) {
            let msg = format!("writes are refused: {reason}");
            return Ok((0, response::error(503, None, &msg, &[("Retry-After", "30")], false)));
        }
        let is_delete = matches!(op, Op::Delete(_));
        let rows = op.rows();
        let started = Instant::now();
        match writer.enqueue_waking(op, Arc::clone(&admin.wake)) {
            Ok(outcome) => Err(Pending {
                outcome,
                is_delete,
                rows,
                started,
                deadline: started + admin.wait,
                path: path.to_owned(),
            }),
            Err(SubmitError::QueueFull) => Ok((0, queue_full())),
            Err(e) => {
                log::error!("write API: {e}");
                Ok((0, response::error(503, None, &e.to_string(), &[("Retry-After", "1")], false)))
            }
        }
    }
}

/// Validates a JSON Lines body: all lines good and ids unique, or a 4xx answer
/// listing every rejected line (then nothing is written).
fn parse_batch(body: &[u8], assume_utc: bool) -> Result<Vec<store::Video>, (u16, serde_json::Value)> {
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
        match store::parse_line_with(line, store::ParseRules { assume_utc, lenient: false }).map(|(v, _)| v) {
            Ok(v) => match first_line.get(&v.id) {
                Some(first) => rejected.push(serde_json::json!({
                    "line": number, "field": "id", "reason": format!("duplicate id {:?}: also on line {first}", v.id)
                })),
                None => {
                    first_line.insert(v.id.clone(), number);
                    videos.push(v);
                }
            },
            Err(reason) => rejected.push(match store::video::field_of(&reason) {
                Some(field) => serde_json::json!({"line": number, "field": field, "reason": reason}),
                None => serde_json::json!({"line": number, "reason": reason}),
            }),
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
pub(super) fn bearer(req: &Request) -> Option<&str> {
    req.param("HTTP_AUTHORIZATION")
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}
