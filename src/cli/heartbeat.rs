//! `videofeed heartbeat`: stamps the writer's heartbeat in the database every few
//! seconds, for writers that only import (`serve` with the write API on stamps its
//! own). Replicas report the age of their data from it (`/feed/health`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{Fatal, fatal, help, parse_args, say};

pub(super) const HEARTBEAT_HELP: &str = "\
videofeed heartbeat --db PATH [--interval SECONDS] [--once]

Stamps the current time in the database every --interval seconds (default 5) until
SIGTERM or SIGINT; --once stamps once and exits. Run it next to a writer that only
imports (with the write API on, `serve` stamps its own). Replicas kept by `videofeed
replica` report now minus the newest stamp as `data_age_seconds` in /feed/health, and
`degraded` past VIDEOFEED_MAX_STALENESS. The stamp changes no video: caches and ETags
stay valid.

Example:
  videofeed heartbeat --db /var/lib/videofeed/videos.db";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db", "--interval"], &["--once"], HEARTBEAT_HELP)?;
    if a.help {
        return help(HEARTBEAT_HELP);
    }
    let db = a.db(HEARTBEAT_HELP)?;
    let interval: u64 = a.number("--interval", 5)?;
    if !(1..=3600).contains(&interval) {
        return Err(fatal(format!("--interval must be 1 to 3600 seconds, got {interval}")));
    }
    // Creates or upgrades the schema first, and says so when the file is not usable.
    drop(videofeed::store::Store::open(&db)?);
    if a.get("--once").is_some() {
        let n = videofeed::store::db::heartbeat_loop(&db, Duration::ZERO, &AtomicBool::new(false));
        if n == 0 {
            return Err(fatal(format!("could not stamp the heartbeat in {}", db.display())));
        }
        say(&format!("heartbeat stamped in {}", db.display()));
        return Ok(0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    videofeed::server::install_signal_handlers(&stop)?;
    log::info!("heartbeat: stamping {} every {interval} s", db.display());
    videofeed::store::db::heartbeat_loop(&db, Duration::from_secs(interval), &stop);
    Ok(0)
}
