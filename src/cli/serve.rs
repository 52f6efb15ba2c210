//! `videofeed serve`: the FastCGI responder (see `videofeed serve --help`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use videofeed::config::{Config, RawServe};
use videofeed::server;

use super::{Fatal, help, parse_args};

pub(super) const SERVE_HELP: &str = "\
videofeed serve --db PATH [--socket PATH | --listen [HOST:]PORT] [--workers N] [--cache-bytes N]
                [--socket-mode MODE] [--socket-group GROUP] [--check-thumbnails-every DURATION]

Answers GET /feed as a FastCGI responder. When systemd passes a socket (LISTEN_FDS, fd 3)
or fd 0 is a listening socket (LiteSpeed, lighttpd and spawn-fcgi start apps that way) it
is used and nothing is bound or removed; otherwise --socket binds a Unix socket (a stale one
is replaced; mode --socket-mode, default 0660, and group --socket-group, both set before
anyone can connect) or --listen a TCP address (a bare PORT means 127.0.0.1). When another
videofeed serves the --socket path, this one takes it over without a gap (the old one serves
what it accepted and exits).

Endpoints: GET /feed?q=&region=&limit= (the feed), /feed/health (200 or 503),
/feed/metrics (Prometheus; loopback or the admin token), /feed/openapi.json (the contract),
POST /feed/admin/videos and DELETE /feed/admin/videos/{id} (with VIDEOFEED_ADMIN_TOKEN).

Environment (flags win): VIDEOFEED_DB, VIDEOFEED_SOCKET, VIDEOFEED_SOCKET_MODE,
VIDEOFEED_SOCKET_GROUP, VIDEOFEED_LISTEN, VIDEOFEED_WORKERS,
then LSAPI_CHILDREN, PHP_FCGI_CHILDREN (workers, default 2 per CPU, 2 to 64), VIDEOFEED_MAX_PARAMS_BYTES,
VIDEOFEED_MAX_PARAMS, FCGI_WEB_SERVER_ADDRS, VIDEOFEED_CACHE_BYTES (response cache, default
33554432, 0 = off), VIDEOFEED_LSCACHE (which answers LiteSpeed's cache may store: repeat, the
default = a query asked twice within 5 minutes, remembered by every process on the box; always; off), VIDEOFEED_LSCACHE_RATE (answers a second that may become LSCache-cacheable on the box, default 100, 0 = no cap), VIDEOFEED_RANK_INDEX (on/off, default on), VIDEOFEED_RANK_MEMO_BYTES (what the rank index keeps of merged prefixes and score classes, default 32 MiB; 0 = nothing), VIDEOFEED_RANK_PREFIX_CLASS_BYTES (bytes a video of the index file that keep the largest short prefixes' rows by score class, read by every command that builds the index, default 32; 0 = none), VIDEOFEED_TYPO_FALLBACK (on/off), VIDEOFEED_RELAX (on/off: drop words when all of them fill less than the page; default on), VIDEOFEED_TOTALS (on/off: count the matching videos of every answer, total and total_is_exact, exact up to 10,000; default on), VIDEOFEED_ASSUME_UTC (on/off: the write API reads a published_at without a time zone, 2024-05-01 12:00:00 or 2024-05-01, as UTC; default off), VIDEOFEED_MAX_STALENESS (seconds of data age past which /feed/health says degraded, default 60 where `videofeed replica` maintains the file; set, everywhere; off, never; the write API also stamps the heartbeat every 5 s),
VIDEOFEED_QUERY_TIMEOUT_MS (default 2000), VIDEOFEED_REQUEST_TIMEOUT_MS (default 2000),
VIDEOFEED_WRITE_TIMEOUT_MS (a peer that stops reading its answer is cut off after it, default 30000),
VIDEOFEED_MAX_REQUESTS (exit 0 after N requests so the web server starts a fresh process;
default never), VIDEOFEED_ADMIN_TOKEN (turns the write API on), VIDEOFEED_ADMIN_MAX_BODY,
VIDEOFEED_WRITE_QUEUE (writes queued for the writer; past it 503 + Retry-After, default 64), VIDEOFEED_ADMIN_CONCURRENCY (workers
write requests validate in at once, default workers/4; more wait for one), VIDEOFEED_ADMIN_WAIT_MS (a write's wait for a worker,
then for its commit, before 503, default 30000), VIDEOFEED_SLOW_MS (slow log threshold, default 250, 0 = off),
VIDEOFEED_METRICS_ALLOW (addresses or networks that may read /feed/metrics without the token,
default 127.0.0.0/8,::1; none = token only), VIDEOFEED_FALLBACK_THUMBNAIL (image shown instead
of a thumbnail check-thumbnails found broken), VIDEOFEED_BROKEN_THUMBNAILS (replace, the default,
or omit), VIDEOFEED_THUMBNAIL_CHECK_EVERY or --check-thumbnails-every (run check-thumbnails
inside serve on its own thread, e.g. 6h; default off) with VIDEOFEED_THUMBNAIL_CONCURRENCY (4), VIDEOFEED_THUMBNAIL_RATE (10/s)
and VIDEOFEED_THUMBNAIL_MAX_AGE (7d), VIDEOFEED_CHECK_PRIVATE_HOSTS (1 lets the checker contact loopback,
private, link-local and unique-local addresses; default: refused, see docs/security.md), VIDEOFEED_CHECK_PROXY
(the HTTP proxy the checker goes through, e.g. http://proxy.internal:3128; the environment's HTTP(S)_PROXY
and ALL_PROXY are never used), VIDEOFEED_CHECK_MAX_HIDE (the most of the catalogue one check run may record broken,
default 5%, at least 100 videos; 100% = no cap), VIDEOFEED_LOG (log filter, default info; RUST_LOG too;
debug adds one line per request).
Signals: SIGTERM, SIGUSR1, SIGINT stop gracefully (requests in flight finish); SIGHUP is ignored.

Example:
  videofeed serve --db /srv/videofeed/videos.db --socket /run/videofeed/videofeed.sock --workers 8";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let valued = [
        "--db",
        "--socket",
        "--listen",
        "--workers",
        "--cache-bytes",
        "--check-thumbnails-every",
        "--socket-mode",
        "--socket-group",
    ];
    let a = parse_args(raw, &valued, &[], SERVE_HELP)?;
    if a.help {
        return help(SERVE_HELP);
    }
    let flags = RawServe {
        db: a.get("--db"),
        socket: a.get("--socket"),
        listen: a.get("--listen"),
        workers: a.get("--workers"),
        cache_bytes: a.get("--cache-bytes"),
        check_thumbnails_every: a.get("--check-thumbnails-every"),
        socket_mode: a.get("--socket-mode"),
        socket_group: a.get("--socket-group"),
    };
    let config = Config::from_raw(&flags, &|k| std::env::var(k).ok())?;
    log::info!(
        "config db={} listen={:?} workers={} cache_bytes={} rank_index={} rank_memo_bytes={} max_params={} max_requests={:?} grace_ms={} slow_ms={} metrics_allow={}",
        config.db.display(),
        config.listen,
        config.workers,
        config.cache_bytes,
        config.rank_index,
        config.rank_memo_bytes.map_or_else(|| "auto".to_owned(), |b| b.to_string()),
        config.max_params,
        config.max_requests,
        config.shutdown_grace.as_millis(),
        config.slow.map_or(0, |d| d.as_millis()),
        if config.metrics_allow.is_empty() {
            "none".to_owned()
        } else {
            config.metrics_allow.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        }
    );
    let stop = Arc::new(AtomicBool::new(false));
    server::install_signal_handlers(&stop)?;
    server::run(Arc::new(config), stop)?;
    Ok(0)
}
