//! The write API, only when an admin token is configured: `POST
//! /feed/admin/videos` (JSON Lines in the import format, or a JSON array of
//! videos), `GET`/`PATCH`/`DELETE /feed/admin/videos/{id}` (the stored video;
//! the fields to change; remove it) and `POST /feed/admin/videos/delete`
//! (`{"ids":[…]}`, all in one transaction, a result per id).
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
    kind: Kind,
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
                let applied = &done.applied;
                let c = applied.counts;
                match &self.kind {
                    Kind::DeleteOne | Kind::Patch if !applied.missing.is_empty() => {
                        return (0, response::error(404, Some("id"), "no video with that id", &[], false));
                    }
                    Kind::Patch if applied.refused.is_some() => {
                        let reason = applied.refused.as_deref().unwrap_or_default();
                        let field = store::video::field_of(reason);
                        return (0, response::error(422, field, reason, &[], false));
                    }
                    _ => {}
                }
                let rows = self.rows;
                let mut body = serde_json::json!({
                    "accepted": if matches!(self.kind, Kind::Upsert | Kind::Patch) { rows } else { 0 },
                    "inserted": c.inserted,
                    "updated": c.updated,
                    "unchanged": c.unchanged,
                    "deleted": c.deleted,
                    "rejected": [],
                    "commit_ms": done.commit.as_secs_f64() * 1000.0,
                });
                if let (Kind::DeleteMany(ids), Some(map)) = (&self.kind, body.as_object_mut()) {
                    let results: Vec<serde_json::Value> = ids
                        .iter()
                        .map(|id| {
                            let result = if applied.missing.contains(id) { "not_found" } else { "deleted" };
                            serde_json::json!({"id": id, "result": result})
                        })
                        .collect();
                    map.insert("results".into(), serde_json::Value::Array(results));
                }
                let purge = response::purge_tags(&applied.regions);
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

/// Which write a [`Pending`] answers (its 200 and its 404 differ).
enum Kind {
    Upsert,
    DeleteOne,
    DeleteMany(Vec<String>),
    Patch,
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

/// Whether the write API request `method` on `path` carries a body (a batch to
/// upsert, the ids to delete, a patch).
pub(super) fn takes_body(method: &str, path: &str) -> bool {
    let rest = path.get(ADMIN_PATH.len()..);
    (method.eq_ignore_ascii_case("POST") && matches!(rest, Some("" | "/" | DELETE_MANY)))
        || (method.eq_ignore_ascii_case("PATCH") && rest.is_some_and(|r| r.len() > 1 && r.starts_with('/')))
}

/// The bulk delete's path under [`ADMIN_PATH`] (`POST` only; the video whose id is
/// `delete` is reached as `%64elete`, which is matched before it is decoded).
const DELETE_MANY: &str = "/delete";

/// Most ids one bulk delete may name.
pub const MAX_DELETE_IDS: usize = 10_000;

impl Handler {
    /// A write request (its body read whole by the poller): validated here, then
    /// queued for the writer; the answer follows the commit ([`Pending`]).
    pub(super) fn admin(&mut self, req: &Request, path: &str, method: &str) -> Result<(usize, Response), Pending> {
        let admin = match gate(self.shared.admin.as_ref(), req) {
            Ok(a) => Arc::clone(a),
            Err(resp) => return Ok((0, resp)),
        };
        let rest = path.get(ADMIN_PATH.len()..).unwrap_or("");
        let has_body = takes_body(method, path);
        if has_body && (req.stdin_truncated || req.stdin.len() > admin.max_body) {
            return Ok((0, too_large(admin.max_body)));
        }
        let id = match rest.strip_prefix('/').filter(|id| !id.is_empty()) {
            None => None,
            Some(raw) => match percent_decode(raw) {
                Some(id) => Some(id),
                None => {
                    let msg = "the video id in the path is not valid percent-encoded UTF-8";
                    return Ok((0, response::error(400, Some("id"), msg, &[], false)));
                }
            },
        };
        let (op, kind) = match (method, rest, id) {
            ("POST", "" | "/", _) => match parse_batch(&req.stdin, self.config.assume_utc) {
                Ok(videos) => (Op::Upsert(videos), Kind::Upsert),
                Err((status, body)) => return Ok((0, response::admin(status, &body, &[]))),
            },
            ("POST", DELETE_MANY, _) => match parse_ids(&req.stdin) {
                Ok(ids) => (Op::DeleteMany(ids.clone()), Kind::DeleteMany(ids)),
                Err((status, body)) => return Ok((0, response::admin(status, &body, &[]))),
            },
            (m, DELETE_MANY, _) if m != "POST" => {
                // The bulk delete's own path: a video whose id is `delete` is `%64elete`.
                let msg = format!(
                    "method {method} is not allowed here; use POST (the video with id delete is /feed/admin/videos/%64elete)"
                );
                return Ok((0, response::error(405, None, &msg, &[("Allow", "POST")], false)));
            }
            ("GET", _, Some(id)) => return Ok(self.stored(&id)),
            ("PATCH", _, Some(id)) => match parse_patch(&req.stdin, &id, self.config.assume_utc) {
                Ok(fields) => {
                    let rules = store::ParseRules { assume_utc: self.config.assume_utc, lenient: false };
                    (Op::Patch { id, fields, rules }, Kind::Patch)
                }
                Err(resp) => return Ok((0, resp)),
            },
            ("DELETE", _, Some(id)) => (Op::Delete(id), Kind::DeleteOne),
            (_, "" | "/", _) => {
                let msg = format!("method {method} is not allowed here; use POST");
                return Ok((0, response::error(405, None, &msg, &[("Allow", "POST")], false)));
            }
            (_, _, _) => {
                let msg = format!("method {method} is not allowed here; use GET, PATCH or DELETE");
                return Ok((0, response::error(405, None, &msg, &[("Allow", "GET, PATCH, DELETE")], false)));
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
        let rows = op.rows();
        let started = Instant::now();
        match writer.enqueue_waking(op, Arc::clone(&admin.wake)) {
            Ok(outcome) => {
                Err(Pending { outcome, kind, rows, started, deadline: started + admin.wait, path: path.to_owned() })
            }
            Err(SubmitError::QueueFull) => Ok((0, queue_full())),
            Err(e) => {
                log::error!("write API: {e}");
                Ok((0, response::error(503, None, &e.to_string(), &[("Retry-After", "1")], false)))
            }
        }
    }
}

/// The stored video `id` (`GET /feed/admin/videos/{id}`): every field, or 404.
impl Handler {
    fn stored(&mut self, id: &str) -> (usize, Response) {
        let found = self.reader_for_current_file().and_then(|reader| reader.video(id));
        match found {
            Ok(Some(v)) => {
                let body = serde_json::json!({
                    "id": v.id, "title": v.title, "channel": v.channel,
                    "duration_seconds": v.duration_seconds, "thumbnail": v.thumbnail, "region": v.region,
                    "published_at": v.published_at, "view_count": v.view_count,
                });
                (1, response::admin(200, &body, &[]))
            }
            Ok(None) => (0, response::error(404, Some("id"), "no video with that id", &[], false)),
            Err(e) => {
                log::error!("write API: reading a video failed: {e}");
                let msg = "the video could not be read; see the log and retry";
                (0, response::error(503, None, msg, &[("Retry-After", "1")], false))
            }
        }
    }
}

/// A write's 4xx answer in the write result's shape, with `rejected` listing why.
fn reject(status: u16, message: &str, rejected: Vec<serde_json::Value>) -> (u16, serde_json::Value) {
    (
        status,
        serde_json::json!({
            "accepted": 0, "inserted": 0, "updated": 0, "unchanged": 0, "deleted": 0,
            "rejected": rejected, "commit_ms": 0.0,
            "error": {"status": status, "message": message},
        }),
    )
}

/// Validates a batch body, JSON Lines or a JSON array of videos (as Meilisearch's,
/// Typesense's and Elasticsearch's bulk clients send): all videos good and ids
/// unique, or a 4xx answer listing every rejected one (then nothing is written).
/// For an array, a rejection's `line` is the video's position in it, from 1.
fn parse_batch(body: &[u8], assume_utc: bool) -> Result<Vec<store::Video>, (u16, serde_json::Value)> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(reject(400, "the body is not UTF-8 text", Vec::new()));
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let items: Vec<(usize, std::borrow::Cow<'_, str>)> = if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<serde_json::Value>>(text) {
            Ok(values) => values.iter().enumerate().map(|(i, v)| (i + 1, v.to_string().into())).collect(),
            Err(e) => {
                let msg = format!("the body starts with [ but is not a JSON array of videos: {e}");
                return Err(reject(400, &msg, Vec::new()));
            }
        }
    } else {
        text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l.into())).collect()
    };
    let mut videos = Vec::new();
    let mut rejected = Vec::new();
    let mut first_line: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (number, line) in items {
        match store::parse_line_with(&line, store::ParseRules { assume_utc, lenient: false }).map(|(v, _)| v) {
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
        let msg = "the body has no videos: send JSON Lines (one video per line) or a JSON array of videos";
        return Err(reject(400, msg, Vec::new()));
    }
    Ok(videos)
}

/// Validates a bulk delete's body, `{"ids":["a","b",…]}`: 1 to [`MAX_DELETE_IDS`]
/// valid, distinct ids, or a 4xx answer saying which are not (nothing is deleted).
/// A rejection's `line` is the id's position in the list, from 1.
fn parse_ids(body: &[u8]) -> Result<Vec<String>, (u16, serde_json::Value)> {
    const SHAPE: &str = "send {\"ids\": [\"id1\", \"id2\", ...]}";
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Err(reject(400, &format!("the body is not JSON ({e}): {SHAPE}"), Vec::new())),
    };
    let Some(list) = value.get("ids").and_then(serde_json::Value::as_array) else {
        return Err(reject(400, &format!("the body has no \"ids\" array: {SHAPE}"), Vec::new()));
    };
    if list.is_empty() || list.len() > MAX_DELETE_IDS {
        let msg = format!("ids must hold 1 to {MAX_DELETE_IDS} ids, got {}", list.len());
        return Err(reject(422, &msg, Vec::new()));
    }
    let mut ids = Vec::with_capacity(list.len());
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, item) in list.iter().enumerate() {
        let why = match item.as_str().map(str::trim) {
            None => Some("an id must be a string".to_owned()),
            Some(id) if id.is_empty() || id.chars().count() > 64 => Some("an id has 1 to 64 characters".to_owned()),
            Some(id) if id.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                Some("an id has no spaces or control characters".to_owned())
            }
            Some(id) if !seen.insert(id.to_owned()) => Some(format!("duplicate id {id:?}")),
            Some(id) => {
                ids.push(id.to_owned());
                None
            }
        };
        if let Some(reason) = why {
            rejected.push(serde_json::json!({"line": i + 1, "field": "ids", "reason": reason}));
        }
    }
    if !rejected.is_empty() {
        return Err(reject(422, "nothing was deleted: fix the rejected ids and send the list again", rejected));
    }
    Ok(ids)
}

/// Validates a patch body: a JSON object whose fields each obey the import
/// format's rules (checked against a placeholder row; the writer applies it to the
/// stored one), or the 4xx answer naming the field.
fn parse_patch(
    body: &[u8],
    id: &str,
    assume_utc: bool,
) -> Result<serde_json::Map<String, serde_json::Value>, Response> {
    let fields = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(fields)) => fields,
        Ok(_) => {
            let msg = "the body must be a JSON object of the fields to change, such as {\"view_count\": 99}";
            return Err(response::error(400, None, msg, &[], false));
        }
        Err(e) => {
            let msg = format!("the body is not JSON ({e}): send an object of the fields to change");
            return Err(response::error(400, None, &msg, &[], false));
        }
    };
    if fields.is_empty() {
        let msg = "the patch names no field: send an object of the fields to change, such as {\"view_count\": 99}";
        return Err(response::error(422, None, msg, &[], false));
    }
    // The id is the path's (a path id no video can have is a 404 from the writer).
    let mut others = fields.clone();
    match others.remove("id") {
        Some(serde_json::Value::String(given)) if given.trim() == id => {}
        Some(_) => {
            let msg = "id cannot be changed by a patch: it must be left out or equal the path's id";
            return Err(response::error(422, Some("id"), msg, &[], false));
        }
        None => {}
    }
    let rules = store::ParseRules { assume_utc, lenient: false };
    match store::video::apply_patch(&store::video::patch_template("placeholder"), &others, rules) {
        Ok(_) => Ok(fields),
        Err(reason) => Err(response::error(422, store::video::field_of(&reason), &reason, &[], false)),
    }
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
