//! The thumbnail checker (`videofeed check-thumbnails`, or inside `serve` with
//! `VIDEOFEED_THUMBNAIL_CHECK_EVERY`): HEAD (or a one-byte GET) of every due
//! thumbnail, the YouTube `mqdefault` alternative of a broken one, and a
//! breaker: [`BREAKER`] checks in a row with no HTTP answer at all stop the run
//! unrecorded (the network or DNS of this machine is down, not the CDN).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::pipeline::{self, Attempt, BREAKER, Run, Tally, Tools, Work, failed, with_retries};
use super::{Error, JobOptions, JobSummary, database};
use crate::store::Op;
use crate::store::job_tables::{ThumbnailCheck, due_thumbnail_count, due_thumbnail_page};
use crate::store::writer::WriterThread;
use crate::timefmt::now_unix;

/// Videos planned per read (keyset pages over `videos.rowid`).
const PLAN_PAGE: i64 = 1000;

/// HEAD, or a one-byte ranged GET where HEAD is refused (405, 501): the status and,
/// for a redirect, where to.
fn ask(agent: &ureq::Agent, url: &str) -> Result<(u16, Option<String>), ureq::Error> {
    let mut resp = agent.head(url).call()?;
    if matches!(resp.status().as_u16(), 405 | 501) {
        resp = agent.get(url).header("Range", "bytes=0-0").call()?;
    }
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((resp.status().as_u16(), location))
}

/// Redirects followed when the caller follows them (through a proxy).
const MAX_REDIRECTS: usize = 5;

/// The outcome of checking `url`: ureq follows redirects itself, except through a proxy
/// with the guard on, where each target's host is checked first and never requested
/// (not even from the proxy) when it is internal.
fn probe(tools: &Tools<'_>, url: &str) -> Attempt {
    if !tools.guard_targets {
        return match ask(&tools.agent, url) {
            Ok((status, _)) => Attempt::Status(status),
            Err(e) => failed(&e),
        };
    }
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let uri: ureq::http::Uri = match current.parse() {
            Ok(u) => u,
            Err(e) => return Attempt::Failed(format!("{current} is not a URL: {e}")),
        };
        match super::guard::check_target(&uri) {
            super::guard::Target::Public => {}
            super::guard::Target::Refused(r) => return Attempt::Refused(r.to_string()),
            super::guard::Target::Unresolved(e) => return Attempt::Failed(e),
        }
        let (status, location) = match ask(&tools.agent, &current) {
            Ok(answer) => answer,
            Err(e) => return failed(&e),
        };
        let next = location
            .filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308))
            .and_then(|to| url::Url::parse(&current).ok()?.join(&to).ok());
        match next {
            Some(to) => current = to.to_string(),
            None => return Attempt::Status(status),
        }
    }
    Attempt::Failed(format!("more than {MAX_REDIRECTS} redirects"))
}

/// The same video's `mqdefault` thumbnail for a YouTube-style URL
/// (`…/vi/ID/hqdefault.jpg`, `sddefault`, `maxresdefault`, `hq720`, `default`).
pub fn alternative_of(url: &str) -> Option<String> {
    let (dir, file) = url.rsplit_once('/')?;
    let (stem, ext) = file.split_once('.')?;
    let known = ["hqdefault", "sddefault", "maxresdefault", "hq720", "default"];
    let parent = dir.rsplit_once('/').map(|(p, _)| p)?;
    let is_vi = parent.ends_with("/vi") || parent.ends_with("/vi_webp");
    (is_vi && known.contains(&stem)).then(|| format!("{dir}/mqdefault.{ext}"))
}

/// Checks one thumbnail (and its alternative when broken); None when stopped first.
fn check_one(tools: &Tools<'_>, video_id: String, url: String) -> Option<ThumbnailCheck> {
    let (result, ()) = with_retries(tools, || (probe(tools, &url), ()))?;
    let (ok, status, error) = match result {
        Attempt::Status(s) if (200..300).contains(&s) => (true, Some(s), None),
        Attempt::Status(s) => (false, Some(s), Some(format!("HTTP {s}"))),
        Attempt::Failed(e) => (false, None, Some(e)),
        // Refused before any connection: recorded as broken (no visitor's browser on the
        // internet could load it either), and never held by the breaker.
        Attempt::Refused(e) => return Some(refused(video_id, url, e)),
    };
    let mut alternative = None;
    if !ok {
        if let Some(alt) = alternative_of(&url) {
            if let Some((Attempt::Status(s), ())) = with_retries(tools, || (probe(tools, &alt), ())) {
                if (200..300).contains(&s) {
                    alternative = Some(alt);
                }
            }
        }
    }
    Some(ThumbnailCheck { video_id, url, ok, status, error, alternative, checked_at: now_unix() })
}

/// The check of a thumbnail the guard refused: broken, no status, the reason.
fn refused(video_id: String, url: String, why: String) -> ThumbnailCheck {
    ThumbnailCheck {
        video_id,
        url,
        ok: false,
        status: None,
        error: Some(why),
        alternative: None,
        checked_at: now_unix(),
    }
}

/// Whether `c` records a refusal by the guard (an outcome, not a missing answer).
fn is_refusal(c: &ThumbnailCheck) -> bool {
    c.status.is_none() && c.error.as_deref().is_some_and(|e| e.starts_with(super::guard::REFUSED))
}

/// The checker's work: one check per (video id, URL).
struct Checker;

impl Work for Checker {
    type Task = (String, String);
    type Outcome = ThumbnailCheck;

    fn work(&self, tools: &Tools<'_>, (id, url): (String, String)) -> Option<ThumbnailCheck> {
        check_one(tools, id, url)
    }
}

/// Counting, and the breakers. Checks with no HTTP answer (timeouts, refused or cut
/// connections, DNS and TLS failures) wait here while they are not a minority of the
/// run: [`BREAKER`] in a row with no answer at all, or most of the checks once
/// [`SAMPLE`] are done, stop the run and record none of them (the machine's network,
/// DNS, proxy or trust store is at fault, not the thumbnails: their videos stay as
/// they were). And no run records more broken thumbnails than `max_hide` (a share
/// of the catalogue, `VIDEOFEED_CHECK_MAX_HIDE`) unless the operator allows it.
#[derive(Default)]
struct Checks {
    held: Vec<ThumbnailCheck>,
    answered: u64,
    unanswered: u64,
    /// Broken thumbnails recorded so far in this run.
    hidden: u64,
    /// The most this run may record broken.
    max_hide: u64,
}

/// Checks done before the share of unanswered ones is judged.
const SAMPLE: u64 = 100;

impl Checks {
    fn count(summary: &mut JobSummary, c: &ThumbnailCheck) {
        summary.done += 1;
        if c.ok {
            summary.good += 1;
        } else {
            summary.bad += 1;
            summary.replaced += u64::from(c.alternative.is_some());
            summary.failed += u64::from(c.status.is_none());
        }
    }

    /// Whether the checks with no answer are a minority of the run (then they are the
    /// thumbnails' own failures, recorded broken).
    fn unanswered_are_few(&self) -> bool {
        self.unanswered.saturating_mul(2) <= self.answered + self.unanswered
    }

    /// Moves `rows` into `batch`, unless that would pass the run's hiding cap.
    fn record(
        &mut self,
        rows: Vec<ThumbnailCheck>,
        s: &mut JobSummary,
        batch: &mut Vec<ThumbnailCheck>,
    ) -> Result<(), String> {
        let broken = rows.iter().filter(|c| !c.ok).count() as u64;
        if self.hidden + broken > self.max_hide {
            return Err(format!(
                "this run would record more than {} thumbnails broken (VIDEOFEED_CHECK_MAX_HIDE of the catalogue), \
                 each leaving the feed or showing the fallback image; stopped with {} recorded. If they really are \
                 broken, run `videofeed check-thumbnails --allow-hide`",
                self.max_hide, self.hidden
            ));
        }
        self.hidden += broken;
        for c in rows {
            Checks::count(s, &c);
            batch.push(c);
        }
        Ok(())
    }
}

impl Tally for Checks {
    type Outcome = ThumbnailCheck;
    type Row = ThumbnailCheck;

    fn take(
        &mut self,
        check: ThumbnailCheck,
        s: &mut JobSummary,
        batch: &mut Vec<ThumbnailCheck>,
    ) -> Result<(), String> {
        if check.status.is_none() && !is_refusal(&check) {
            self.unanswered += 1;
            let first = self.held.first().or(Some(&check)).and_then(|c| c.error.clone()).unwrap_or_default();
            self.held.push(check);
            if self.answered == 0 && self.held.len() >= BREAKER {
                let why = format!(
                    "{} thumbnail checks in a row got no answer at all (the first: {first}); the network or \
                     DNS of this machine looks down, so the run stopped and recorded none of them",
                    self.held.len()
                );
                self.held.clear();
                return Err(why);
            }
            let done = self.answered + self.unanswered;
            if done >= SAMPLE && !self.unanswered_are_few() {
                let why = format!(
                    "{} of {done} thumbnail checks got no answer (the first: {first}): the network path, DNS, a proxy \
                     or the trust store of this machine fails, not the thumbnails, so the run stopped and recorded \
                     none of them as broken (their videos stay as they were)",
                    self.unanswered
                );
                self.held.clear();
                return Err(why);
            }
            return Ok(());
        }
        self.answered += 1;
        let mut rows = vec![check];
        // Unanswered checks are judged once the run has a sample: released as broken
        // only while they are a minority of it.
        if self.answered + self.unanswered >= SAMPLE && self.unanswered_are_few() {
            rows.append(&mut self.held);
        }
        self.record(rows, s, batch)
    }

    fn finish(&mut self, s: &mut JobSummary, batch: &mut Vec<ThumbnailCheck>) {
        if self.answered > 0 && self.unanswered_are_few() {
            let held = std::mem::take(&mut self.held);
            if let Err(why) = self.record(held, s, batch) {
                log::warn!("thumbnail check: {why}");
                s.stopped = true;
            }
        } else if !self.held.is_empty() {
            log::warn!(
                "thumbnail check: {} of {} checks got no answer; none of them recorded (unknown, not broken)",
                self.unanswered,
                self.answered + self.unanswered
            );
        }
    }

    fn op(rows: Vec<ThumbnailCheck>) -> Op {
        Op::Thumbnails(rows)
    }
}

/// The due thumbnails, a keyset page at a time.
struct Due<'c> {
    conn: &'c crate::store::db::Connection,
    due_before: i64,
    after: i64,
    page: VecDeque<(String, String)>,
    done: bool,
}

impl Iterator for Due<'_> {
    type Item = Result<(String, String), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            match due_thumbnail_page(self.conn, self.after, self.due_before, PLAN_PAGE) {
                Ok(rows) => {
                    self.done = rows.is_empty();
                    if let Some(last) = rows.last() {
                        self.after = last.0;
                    }
                    self.page.extend(rows.into_iter().map(|(_, id, url)| (id, url)));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(database(e)));
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}

/// Checks every thumbnail that has no check, a check of another URL, or one older
/// than `opts.max_age`, and records the outcome. See the module docs for the shape.
///
/// # Errors
/// [`Error`] when the database cannot be read or the results cannot be written;
/// results written before that stay written.
pub fn check_thumbnails(
    db: &Path,
    opts: &JobOptions,
    stop: &AtomicBool,
    writer: &WriterThread,
    progress: &mut (dyn FnMut(&JobSummary) + Send),
) -> Result<JobSummary, Error> {
    let conn = crate::store::db::open_reader(db).map_err(database)?;
    let due_before = now_unix().saturating_sub(i64::try_from(opts.max_age.as_secs()).unwrap_or(i64::MAX));
    let planned = due_thumbnail_count(&conn, due_before).map_err(database)?;
    let planned = u64::try_from(planned).unwrap_or(0).min(opts.limit.map_or(u64::MAX, |l| l as u64));
    let tasks = Due { conn: &conn, due_before, after: i64::MIN, page: VecDeque::new(), done: false };
    let run = Run { what: "thumbnail check", opts, stop, writer, public_only: !opts.private_hosts };
    let videos: i64 = conn.query_row("SELECT count(*) FROM videos", [], |r| r.get(0)).map_err(database)?;
    let max_hide = opts.max_hide.map_or(u64::MAX, |share| share_of(videos, share).max(crate::config::MIN_HIDE));
    let checks = Checks { max_hide, ..Checks::default() };
    let outcome = pipeline::run(&run, &Checker, checks, tasks, planned, progress);
    let reason = match &outcome {
        Ok(summary) if summary.stopped => Some("stopped before it finished".to_owned()),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    record_run(db, reason.as_deref());
    outcome
}

/// `share` (0 to 1) of `rows`, rounded down.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a share of a row count fits in u64")]
fn share_of(rows: i64, share: f64) -> u64 {
    (rows.max(0) as f64 * share.clamp(0.0, 1.0)).floor() as u64
}

/// Writes how this run ended beside the database ([`crate::store::db::thumbnail_run_path`]),
/// whole (a temporary file renamed into place); a failure is logged, never fatal.
fn record_run(db: &Path, stopped: Option<&str>) {
    use std::io::Write;
    let path = crate::store::db::thumbnail_run_path(db);
    let state = serde_json::json!({ "finished_unix": now_unix(), "stopped": stopped.is_some(), "reason": stopped });
    let written = crate::sys::create_temp_beside(&path, "run", 0o644).and_then(|(mut file, tmp)| {
        let done = file.write_all(state.to_string().as_bytes()).and_then(|()| std::fs::rename(&tmp, &path));
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    });
    if let Err(e) = written {
        log::warn!("thumbnail check: cannot record the run's outcome in {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn youtube_alternatives() {
        assert_eq!(
            alternative_of("https://i.ytimg.com/vi/abc/hqdefault.jpg").as_deref(),
            Some("https://i.ytimg.com/vi/abc/mqdefault.jpg")
        );
        assert_eq!(
            alternative_of("https://i.ytimg.com/vi_webp/abc/maxresdefault.webp").as_deref(),
            Some("https://i.ytimg.com/vi_webp/abc/mqdefault.webp")
        );
        assert_eq!(alternative_of("https://i.ytimg.com/vi/abc/mqdefault.jpg"), None);
        assert_eq!(alternative_of("https://cdn.example.com/thumbs/abc.jpg"), None);
    }
}
