//! `videofeed check-thumbnails`: the thumbnail checker, run once.

use videofeed::jobs::{self, JobOptions};

use super::job::{job_options, run_job};
use super::{Fatal, help, parse_args};

pub(super) const CHECK_THUMBNAILS_HELP: &str = "\
videofeed check-thumbnails --db PATH [--concurrency N] [--max-age DURATION] [--rate R]
                           [--timeout DURATION] [--retries N] [--limit N] [--allow-hide]

Checks the thumbnail URL of every video that was never checked, whose thumbnail changed,
or whose last check is older than --max-age (default 7d), with a HEAD request (a one-byte
ranged GET where HEAD is refused), following up to 5 redirects. 2xx = good; any other
answer, a timeout or a dropped connection = broken, after --retries further tries with
back-off for timeouts, dropped connections, 408, 429 and 5xx. For a broken YouTube-style
URL (.../vi/ID/hqdefault.jpg) the mqdefault image is checked as its replacement.
The feed never shows a broken thumbnail: it shows the replacement, else
VIDEOFEED_FALLBACK_THUMBNAIL, else leaves the video out (VIDEOFEED_BROKEN_THUMBNAILS=omit
always leaves it out). Results are written through one writer in short transactions while
the feed serves and imports run. SIGTERM or Ctrl-C stops at once: requests in flight
finish within --timeout and every finished check is kept.

Defaults: --concurrency 8, --rate 20 (requests started per second, all threads; 0 = no
limit), --timeout 5s, --retries 2. Durations: 90s, 15m, 12h, 7d.
Only public addresses are contacted (VIDEOFEED_CHECK_PRIVATE_HOSTS=1 lifts that);
VIDEOFEED_CHECK_PROXY names an HTTP proxy to go through (the environment's HTTP(S)_PROXY
and ALL_PROXY are never used; through the proxy each target is still judged first).
No job hides the catalogue by accident: when most checks get no answer at all (the
network, DNS, a proxy or the trust store of this machine fails, not the thumbnails) the
run stops and records none of them; and a run records at most VIDEOFEED_CHECK_MAX_HIDE
(default 5%) of the catalogue, or 100 videos, broken, then stops and says so, unless
--allow-hide is given.
Exit status: 0 done (or stopped by a signal), 2 the database cannot be used.

Examples:
  videofeed check-thumbnails --db /var/lib/videofeed/videos.db
  videofeed check-thumbnails --db videos.db --concurrency 16 --rate 50 --max-age 3d";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let valued = ["--db", "--concurrency", "--max-age", "--rate", "--timeout", "--retries", "--limit"];
    let a = parse_args(raw, &valued, &["--allow-hide"], CHECK_THUMBNAILS_HELP)?;
    if a.help {
        return help(CHECK_THUMBNAILS_HELP);
    }
    let db = a.db(CHECK_THUMBNAILS_HELP)?;
    let opts = job_options(&a, JobOptions::default())?;
    run_job("check-thumbnails", &db, |stop, writer, progress| {
        jobs::check_thumbnails(&db, &opts, stop, writer, progress)
    })
}
