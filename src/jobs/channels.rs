//! Channel enrichment (`videofeed enrich-channels`): GET the source's JSON for
//! every channel with no entry or an old one; a channel whose answer stays
//! slow, failing or garbled after the retries gets nothing written.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::pipeline::{self, Attempt, Run, Tally, Tools, Work, describe, with_retries};
use super::{Error, JobOptions, JobSummary, database};
use crate::store::Op;
use crate::store::job_tables::{ChannelRecord, due_channels};
use crate::store::writer::WriterThread;
use crate::timefmt::now_unix;

/// Largest channel answer read, in bytes.
const MAX_CHANNEL_BODY: u64 = 64 * 1024;

/// The expected answer of an enrichment source (see `docs/operations.md`).
fn parse_channel(name: &str, body: &[u8], fetched_at: i64) -> Result<ChannelRecord, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let text = |field: &str, max: usize| -> Result<Option<String>, String> {
        match obj.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.chars().count() <= max => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(format!("{field} must be a string of at most {max} characters")),
        }
    };
    if let Some(answered) = text("name", 200)? {
        if answered != name {
            return Err(format!("answered for channel {answered:?}, asked for {name:?}"));
        }
    }
    let avatar_url = text("avatar_url", 2048)?;
    if avatar_url.as_deref().is_some_and(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
        return Err("avatar_url must be an http:// or https:// URL".into());
    }
    let verified = match obj.get("verified") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err("verified must be true or false".into()),
    };
    let subscriber_count = match obj.get("subscriber_count") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(v) if v >= 0 => Some(v),
            _ => return Err("subscriber_count must be a whole number of at least 0".into()),
        },
        Some(_) => return Err("subscriber_count must be a number".into()),
    };
    Ok(ChannelRecord {
        name: name.to_owned(),
        found: true,
        display_name: text("display_name", 200)?,
        avatar_url,
        verified,
        subscriber_count,
        fetched_at,
    })
}

/// The source URL for one channel: `SOURCE?name=<name>` (or `&name=` when SOURCE has a query).
pub fn channel_url(source: &str, name: &str) -> String {
    let sep = if source.contains('?') { '&' } else { '?' };
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    format!("{source}{sep}name={encoded}")
}

/// Fetches one channel: Some(Ok) to write, Some(Err) given up (nothing written), None stopped.
fn fetch_channel(tools: &Tools<'_>, source: &str, name: &str) -> Option<Result<ChannelRecord, String>> {
    let url = channel_url(source, name);
    let (result, parsed) =
        with_retries(tools, || match tools.agent.get(&url).header("Accept", "application/json").call() {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                if status != 200 {
                    return (Attempt::Status(status), Err(format!("HTTP {status}")));
                }
                match resp.body_mut().with_config().limit(MAX_CHANNEL_BODY).read_to_vec() {
                    // A garbled answer may be a passing fault (a proxy's error page): retry it too.
                    Ok(body) => match parse_channel(name, &body, now_unix()) {
                        Ok(record) => (Attempt::Status(200), Ok(record)),
                        Err(e) => (Attempt::Failed(e.clone()), Err(e)),
                    },
                    Err(e) => (Attempt::Failed(describe(&e)), Err(describe(&e))),
                }
            }
            Err(e) => (Attempt::Failed(describe(&e)), Err(describe(&e))),
        })?;
    Some(match (result, parsed) {
        (Attempt::Status(404 | 410), _) => Ok(ChannelRecord {
            name: name.to_owned(),
            found: false,
            fetched_at: now_unix(),
            ..ChannelRecord::default()
        }),
        (_, parsed) => parsed,
    })
}

/// The enrichment's work: one source request per channel name.
struct Fetcher<'s> {
    source: &'s str,
}

impl Work for Fetcher<'_> {
    type Task = String;
    type Outcome = Result<ChannelRecord, String>;

    fn work(&self, tools: &Tools<'_>, name: String) -> Option<Result<ChannelRecord, String>> {
        let outcome = fetch_channel(tools, self.source, &name)?;
        if let Err(e) = &outcome {
            log::warn!("enrich-channels: {name:?}: {e}; nothing written for it");
        }
        Some(outcome)
    }
}

/// Counting: a known or unknown channel is written; a failed one only counted.
struct Records;

impl Tally for Records {
    type Outcome = Result<ChannelRecord, String>;
    type Row = ChannelRecord;

    fn take(
        &mut self,
        outcome: Result<ChannelRecord, String>,
        s: &mut JobSummary,
        batch: &mut Vec<ChannelRecord>,
    ) -> Result<(), String> {
        s.done += 1;
        match outcome {
            Ok(record) => {
                if record.found {
                    s.good += 1;
                } else {
                    s.bad += 1;
                }
                batch.push(record);
            }
            Err(_) => s.failed += 1,
        }
        Ok(())
    }

    fn finish(&mut self, _: &mut JobSummary, _: &mut Vec<ChannelRecord>) {}

    fn op(rows: Vec<ChannelRecord>) -> Op {
        Op::Channels(rows)
    }
}

/// Fetches metadata for every channel with no entry or one older than `opts.max_age`
/// from `source` and stores it. A channel whose answer is slow, failing or garbled
/// after the retries gets nothing written (its old entry, if any, stays).
///
/// # Errors
/// As for [`super::check_thumbnails`], and [`Error::Setting`] for a source that is not an HTTP URL.
pub fn enrich_channels(
    db: &Path,
    source: &str,
    opts: &JobOptions,
    stop: &AtomicBool,
    writer: &WriterThread,
    progress: &mut (dyn FnMut(&JobSummary) + Send),
) -> Result<JobSummary, Error> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return Err(Error::Setting(format!("--source must be an http:// or https:// URL, got {source:?}")));
    }
    let conn = crate::store::db::open_reader(db).map_err(database)?;
    let due_before = now_unix().saturating_sub(i64::try_from(opts.max_age.as_secs()).unwrap_or(i64::MAX));
    let mut names = due_channels(&conn, due_before).map_err(database)?;
    if let Some(l) = opts.limit {
        names.truncate(l);
    }
    let planned = u64::try_from(names.len()).unwrap_or(u64::MAX);
    let run = Run { what: "channel enrichment", opts, stop, writer, public_only: false };
    pipeline::run(&run, &Fetcher { source }, Records, names.into_iter().map(Ok), planned, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_answers_are_validated() {
        let ok = parse_channel(
            "Lofi Girl",
            br#"{"name":"Lofi Girl","display_name":"Lofi Girl","avatar_url":"https://a/x.png","verified":true,"subscriber_count":14000000}"#,
            5,
        )
        .unwrap();
        assert_eq!((ok.verified, ok.subscriber_count, ok.fetched_at), (Some(true), Some(14_000_000), 5));
        assert!(parse_channel("A", br#"{"verified":null}"#, 0).is_ok());
        for (body, why) in [
            (&b"<html>"[..], "not JSON"),
            (br#"[1]"#, "not a JSON object"),
            (br#"{"name":"B"}"#, "asked for"),
            (br#"{"avatar_url":"javascript:x"}"#, "avatar_url"),
            (br#"{"verified":"yes"}"#, "verified"),
            (br#"{"subscriber_count":-3}"#, "subscriber_count"),
        ] {
            let e = parse_channel("A", body, 0).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(channel_url("http://s/c", "Lofi Girl"), "http://s/c?name=Lofi+Girl");
        assert_eq!(channel_url("http://s/c?key=1", "a&b"), "http://s/c?key=1&name=a%26b");
    }
}
