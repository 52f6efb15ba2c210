//! `videofeed enrich-channels`: channel metadata from an HTTP JSON source, run once.

use videofeed::jobs::{self, JobOptions};

use super::job::{job_options, run_job};
use super::{Fatal, fatal, help, parse_args};

pub(super) const ENRICH_CHANNELS_HELP: &str = "\
videofeed enrich-channels --db PATH --source URL [--max-age DURATION] [--concurrency N]
                          [--rate R] [--timeout DURATION] [--retries N] [--limit N]

Fetches metadata for every channel named in videos that has no entry or one older than
--max-age (default 7d): GET URL?name=<channel> (&name= when URL has a query) must answer
200 with a JSON object
  {\"name\": \"Lofi Girl\", \"display_name\": \"Lofi Girl\", \"avatar_url\": \"https://...\",
   \"verified\": true, \"subscriber_count\": 14000000}
(every field optional; name, when given, must be the one asked for), or 404 when the source
does not know the channel. A slow, failing or malformed answer is retried (--retries, with
back-off), then skipped: nothing is written for that channel and its old entry stays. The
feed adds channel_display_name, channel_avatar, channel_verified and channel_subscribers to
results whose channel is known. SIGTERM stops at once; finished channels are kept.

Defaults: --concurrency 4, --rate 10, --timeout 5s, --retries 2.

Example:
  videofeed enrich-channels --db /var/lib/videofeed/videos.db --source https://meta.example.com/channel";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let valued = ["--db", "--source", "--concurrency", "--max-age", "--rate", "--timeout", "--retries", "--limit"];
    let a = parse_args(raw, &valued, &[], ENRICH_CHANNELS_HELP)?;
    if a.help {
        return help(ENRICH_CHANNELS_HELP);
    }
    let db = a.db(ENRICH_CHANNELS_HELP)?;
    let source =
        a.get("--source").ok_or_else(|| fatal(format!("--source URL is required\n\n{ENRICH_CHANNELS_HELP}")))?;
    let defaults = JobOptions { concurrency: 4, rate: 10.0, ..JobOptions::default() };
    let opts = job_options(&a, defaults)?;
    run_job("enrich-channels", &db, |stop, writer, progress| {
        jobs::enrich_channels(&db, &source, &opts, stop, writer, progress)
    })
}
