//! Raw flags and `VIDEOFEED_*` environment → one validated, immutable [`Config`] for `serve`.
//!
//! Precedence for every setting: command-line flag, then environment
//! variable, then the default in [`Config::default`]. LiteSpeed configures an
//! app only through `env` lines, so every flag has an environment variable.
//! Worker count: `--workers`, `VIDEOFEED_WORKERS`, `LSAPI_CHILDREN`,
//! `PHP_FCGI_CHILDREN`, then 16. Nothing outside `cli` reads the environment:
//! it is passed in as a lookup function, so tests can build configs freely.
//!
//! A leaf of the crate (std only): every serve default lives here once, with
//! the plain data types lower folders share ([`ThumbnailPolicy`],
//! [`JobOptions`]). One type with its defaults, validation and their tests,
//! which is why this file is longer than most.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// Every environment variable the binary reads (the serve config, logging and recycling).
/// `lsws-config/` may set only these, plus LiteSpeed's own `LS_*` variables.
pub const ENV_VARS: &[&str] = &[
    "VIDEOFEED_DB",
    "VIDEOFEED_SOCKET",
    "VIDEOFEED_SOCKET_MODE",
    "VIDEOFEED_SOCKET_GROUP",
    "VIDEOFEED_CHECK_PRIVATE_HOSTS",
    "VIDEOFEED_CHECK_PROXY",
    "VIDEOFEED_CHECK_MAX_HIDE",
    "VIDEOFEED_LISTEN",
    "VIDEOFEED_WORKERS",
    "LSAPI_CHILDREN",
    "PHP_FCGI_CHILDREN",
    "VIDEOFEED_MAX_PARAMS_BYTES",
    "VIDEOFEED_MAX_REQUESTS",
    "VIDEOFEED_RANK_INDEX",
    "VIDEOFEED_TYPO_FALLBACK",
    "VIDEOFEED_RELAX",
    "VIDEOFEED_TOTALS",
    "VIDEOFEED_ASSUME_UTC",
    "VIDEOFEED_MAX_STALENESS",
    "VIDEOFEED_QUERY_TIMEOUT_MS",
    "VIDEOFEED_REQUEST_TIMEOUT_MS",
    "VIDEOFEED_WRITE_TIMEOUT_MS",
    "VIDEOFEED_MAX_PARAMS",
    "VIDEOFEED_CACHE_BYTES",
    "VIDEOFEED_RANK_MEMO_BYTES",
    "VIDEOFEED_RANK_PREFIX_CLASS_BYTES",
    "VIDEOFEED_LSCACHE",
    "VIDEOFEED_LSCACHE_RATE",
    "VIDEOFEED_ADMIN_TOKEN",
    "VIDEOFEED_ADMIN_MAX_BODY",
    "VIDEOFEED_WRITE_QUEUE",
    "VIDEOFEED_ADMIN_CONCURRENCY",
    "VIDEOFEED_ADMIN_WAIT_MS",
    "VIDEOFEED_SLOW_MS",
    "VIDEOFEED_FALLBACK_THUMBNAIL",
    "VIDEOFEED_BROKEN_THUMBNAILS",
    "VIDEOFEED_THUMBNAIL_CHECK_EVERY",
    "VIDEOFEED_THUMBNAIL_CONCURRENCY",
    "VIDEOFEED_THUMBNAIL_RATE",
    "VIDEOFEED_THUMBNAIL_MAX_AGE",
    "VIDEOFEED_METRICS_ALLOW",
    "FCGI_WEB_SERVER_ADDRS",
    "VIDEOFEED_LOG",
    "RUST_LOG",
];

/// New LSCache-cacheable answers a second on a box by default (`VIDEOFEED_LSCACHE_RATE`):
/// at OpenLiteSpeed's measured ~10-12 s before it releases a stored answer's file
/// descriptor, at most ~1,200 open at once, against the stock 20,000 limit.
pub const DEFAULT_LSCACHE_RATE: u32 = 100;

/// `VIDEOFEED_LSCACHE`: which feed answers LSCache may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LsCache {
    /// Every 200 feed answer (the behaviour before issue 17).
    Always,
    /// A query asked a second time within five minutes (`http::admission`) (the default).
    #[default]
    Repeat,
    /// None: LSCache never stores a feed answer.
    Off,
}

impl LsCache {
    /// Parses `always`, `repeat` or `off`.
    pub fn parse(v: &str) -> Option<LsCache> {
        match v.trim().to_ascii_lowercase().as_str() {
            "always" => Some(LsCache::Always),
            "repeat" => Some(LsCache::Repeat),
            "off" => Some(LsCache::Off),
            _ => None,
        }
    }
}

/// Where to listen when fd 0 is not an inherited listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Only an inherited socket on fd 0 (LiteSpeed, spawn-fcgi, lighttpd); none was configured.
    InheritedOnly,
    /// A Unix socket path we bind (a stale socket file is replaced).
    Unix(PathBuf),
    /// A TCP address we bind.
    Tcp(SocketAddr),
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite database (absolute path recommended: LiteSpeed starts apps in the binary's directory).
    pub db: PathBuf,
    /// The fallback listener.
    pub listen: Listen,
    /// Worker threads; each serves one connection at a time and owns one read-only connection.
    pub workers: NonZeroUsize,
    /// Cap on the PARAMS bytes of one request.
    pub max_params: usize,
    /// Cap on the STDIN bytes of one request (GET needs none).
    pub max_stdin: usize,
    /// `VIDEOFEED_LSCACHE`: which feed answers LiteSpeed's cache may store
    /// (`always`, `repeat` = a query asked twice within 5 minutes, `off`).
    pub lscache: LsCache,
    /// `VIDEOFEED_LSCACHE_RATE`: answers a second that may become LSCache-cacheable on
    /// this box (shared by its processes; 0 = no cap).
    pub lscache_rate: u32,
    /// `--socket-mode` / `VIDEOFEED_SOCKET_MODE`: permission bits of a Unix socket we bind.
    pub socket_mode: u32,
    /// `--socket-group` / `VIDEOFEED_SOCKET_GROUP`: the group a Unix socket we bind
    /// belongs to (the web server's, so its workers can connect); None = ours.
    pub socket_group: Option<u32>,
    /// `FCGI_WEB_SERVER_ADDRS`: TCP peers allowed to connect (empty = any).
    pub web_server_addrs: Vec<IpAddr>,
    /// How long a stop waits for requests in flight before exiting anyway.
    pub shutdown_grace: Duration,
    /// `VIDEOFEED_MAX_REQUESTS`: stop gracefully (exit 0) after this many requests, so the
    /// process manager starts a fresh one (like `PHP_FCGI_MAX_REQUESTS`). None = never.
    pub max_requests: Option<u64>,
    /// `VIDEOFEED_RANK_INDEX`: rank through the in-memory index (built in the background
    /// after start and after every change); off = SQL ranking only.
    pub rank_index: bool,
    /// `--cache-bytes` / `VIDEOFEED_CACHE_BYTES`: the response cache's budget; 0 = off.
    pub cache_bytes: usize,
    /// `VIDEOFEED_RANK_MEMO_BYTES`: what the rank index may keep of work queries did
    /// (merged prefix postings, score classes), per snapshot; 0 = keep nothing;
    /// None = 32 MiB (`search::index::snapshot::MEMO_BUDGET_DEFAULT`).
    pub rank_memo_bytes: Option<usize>,
    /// `VIDEOFEED_ADMIN_TOKEN`: enables the write API; requests must send it as a bearer
    /// token. None (unset or empty) = the write API does not exist.
    pub admin_token: Option<String>,
    /// `VIDEOFEED_ADMIN_MAX_BODY`: largest write request body, in bytes.
    pub admin_max_body: usize,
    /// `VIDEOFEED_WRITE_QUEUE`: write requests that may wait for the writer at once.
    pub write_queue: usize,
    /// `VIDEOFEED_ADMIN_CONCURRENCY`: workers write requests may occupy at once, each
    /// only while it validates a body (default: a quarter of the workers, at least 1);
    /// more wait in the poller for one (never refused), so writes never occupy more
    /// than that share of the feed's workers.
    pub admin_concurrency: usize,
    /// `VIDEOFEED_ADMIN_WAIT_MS`: how long a write request waits for a worker (then 503,
    /// nothing written) and, once queued, for its commit (then 503; the write stays
    /// queued: its outcome shows in the next read).
    pub admin_wait: Duration,
    /// `VIDEOFEED_TYPO_FALLBACK`: retry a short first page with typo corrections.
    pub typo_fallback: bool,
    /// `VIDEOFEED_MAX_STALENESS`: data older than this (by the writer's heartbeat) makes
    /// `/feed/health` say `degraded` (and `?strict=1` answer 503).
    pub max_staleness: Duration,
    /// When the staleness counts: unset, only where `videofeed replica` maintains the
    /// served file (a box that is no replica has no heartbeat to be late); a number,
    /// always; `off`, never.
    pub staleness: Staleness,
    /// `VIDEOFEED_RELAX`: when all the query's words fill less than the page, drop words
    /// (least distinctive first) and append what the shorter queries find; off = strict AND.
    pub relax: bool,
    /// `VIDEOFEED_TOTALS`: count the matching videos of every answer (`total`,
    /// `total_is_exact`, exact up to 10,000); off leaves both fields out.
    pub totals: bool,
    /// `VIDEOFEED_ASSUME_UTC`: the write API reads a `published_at` without a time zone
    /// (`2024-05-01 12:00:00`, `2024-05-01`) as UTC instead of refusing the row (off).
    pub assume_utc: bool,
    /// `VIDEOFEED_QUERY_TIMEOUT_MS`: a search running longer is stopped (503).
    pub query_timeout: Duration,
    /// `VIDEOFEED_REQUEST_TIMEOUT_MS`: time a client has to finish sending a request once it
    /// has started one (slow senders are cut off); idle kept-alive connections are not timed.
    pub request_timeout: Duration,
    /// `VIDEOFEED_WRITE_TIMEOUT_MS`: time a peer has to read what it was sent (an answer,
    /// a management reply) once it stopped taking it; then the connection is closed.
    /// Only the poller waits for it (writes never block a worker).
    pub write_timeout: Duration,
    /// `VIDEOFEED_MAX_PARAMS`: FastCGI params (CGI variables) allowed in one request.
    pub max_param_count: usize,
    /// `VIDEOFEED_SLOW_MS`: a request taking longer is logged at warn (the slow log);
    /// None (0) = no slow log.
    pub slow: Option<Duration>,
    /// `VIDEOFEED_METRICS_ALLOW`: client addresses (`REMOTE_ADDR`) that may read
    /// `/feed/metrics` without the admin token.
    pub metrics_allow: Vec<IpNet>,
    /// `VIDEOFEED_FALLBACK_THUMBNAIL` and `VIDEOFEED_BROKEN_THUMBNAILS`: how the feed
    /// shows videos whose thumbnail `check-thumbnails` found broken.
    pub thumbnails: ThumbnailPolicy,
    /// `VIDEOFEED_THUMBNAIL_CHECK_EVERY`: run the thumbnail checker inside serve, on its
    /// own thread, this long after the end of each run (None = not inside serve).
    pub thumbnail_check_every: Option<Duration>,
    /// The in-serve checker's settings (`VIDEOFEED_THUMBNAIL_CONCURRENCY`, `_RATE`, `_MAX_AGE`).
    pub thumbnail_check: JobOptions,
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address.
    pub addr: IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.trim().parse::<IpAddr>().ok()?, Some(p.trim().parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)) << 96, u128::from(u32::from(i)) << 96, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let prefix = u32::from(self.prefix.min(bits));
        let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
        a & mask == b & mask
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // No sensible default location: serve refuses to start without one.
            db: PathBuf::new(),
            listen: Listen::InheritedOnly,
            // Matches the lsws-config template's maxConns/LSAPI_CHILDREN: the web server may keep
            // this many connections open and each needs a worker (docs/decisions/0012-poller-for-idle-connections.md).
            workers: default_workers(),
            // Generous for CGI params (nginx and LiteSpeed send 1-4 KiB), small enough to bound memory.
            max_params: 64 * 1024,
            // /feed is GET-only; a small body is read and ignored.
            max_stdin: 64 * 1024,
            // Owner and group (the web server's group) may connect; others may not.
            socket_mode: 0o660,
            socket_group: None,
            lscache: LsCache::default(),
            lscache_rate: DEFAULT_LSCACHE_RATE,
            web_server_addrs: Vec::new(),
            // LiteSpeed SIGKILLs ~100 ms after its worker exits on some paths; 1.8 s keeps us under 2 s.
            shutdown_grace: Duration::from_millis(1800),
            // A Rust responder does not leak like a PHP worker; recycling is opt-in.
            max_requests: None,
            // Same results as SQL ranking, far less CPU per query; costs ~50 MB on 1M videos.
            rank_index: true,
            // ~5,000 typical 6 KB answers: the head of a search log, for little memory.
            cache_bytes: 32 << 20,
            rank_memo_bytes: None,
            // Off unless an operator sets a token: a feed must not be writable by accident.
            admin_token: None,
            // A batch of ~40,000 videos; larger imports belong to `videofeed import`.
            admin_max_body: 16 << 20,
            // Enough for bursts from a few importers; past it, 503 + Retry-After.
            write_queue: 64,
            // 0 = a quarter of the workers, at least 1 (settled once the workers are known).
            admin_concurrency: 0,
            // A queued write holds no worker, only its connection: long enough for a few group
            // commits of 50,000 rows under load; shorter than the fronts' read timeouts (60 s).
            admin_wait: Duration::from_secs(30),
            // What people expect of a search box; costs a few ms only when a page is short.
            typo_fallback: true,
            relax: true,
            totals: true,
            assume_utc: false,
            max_staleness: Duration::from_secs(60),
            staleness: Staleness::ReplicasOnly,
            // The slowest log query takes ~30 ms on 1M videos; 2 s only stops pathological ones.
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            // Web servers send a whole request at once (LiteSpeed and nginx buffer the body
            // first); 2 s is generous, and the poller, not a worker, waits for it.
            request_timeout: Duration::from_secs(2),
            // Web servers read answers as they come (nginx and LiteSpeed buffer them); one that
            // has not taken an answer in 30 s is gone or hostile. Waiting costs no worker.
            write_timeout: Duration::from_secs(30),
            // nginx and LiteSpeed send ~20-40 variables; the HTTP headers add one each.
            max_param_count: 512,
            // 100x a typical answer: what is logged is worth a look (php-fpm's slowlog is per-site).
            slow: Some(Duration::from_millis(250)),
            // A Prometheus agent on the same host; anything else needs the admin token.
            metrics_allow: vec![
                IpNet { addr: IpAddr::from([127, 0, 0, 0]), prefix: 8 },
                IpNet { addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST), prefix: 128 },
            ],
            // No fallback image is known until the operator names one; broken ones are replaced
            // by a checked alternative or left out.
            thumbnails: ThumbnailPolicy::default(),
            // Checking is a job for cron or a timer unless the operator asks for it here.
            thumbnail_check_every: None,
            // Gentler than the command's defaults: it shares the box with the feed.
            thumbnail_check: JobOptions { concurrency: 4, rate: 10.0, ..JobOptions::default() },
        }
    }
}

/// Flag values for `serve`, as typed (None = not given).
#[derive(Debug, Clone, Default)]
pub struct RawServe {
    /// `--db`
    pub db: Option<String>,
    /// `--socket`
    pub socket: Option<String>,
    /// `--listen`
    pub listen: Option<String>,
    /// `--workers`
    pub workers: Option<String>,
    /// `--cache-bytes`
    pub cache_bytes: Option<String>,
    /// `--check-thumbnails-every`
    pub check_thumbnails_every: Option<String>,
    /// `--socket-mode`
    pub socket_mode: Option<String>,
    /// `--socket-group`
    pub socket_group: Option<String>,
}

/// When `/feed/health` counts the data's age against `VIDEOFEED_MAX_STALENESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// Unset: only where `videofeed replica` maintains the served file.
    ReplicasOnly,
    /// Set to a number of seconds: always.
    Always,
    /// `off`: never.
    Off,
}

/// How long one search may run before SQLite's progress handler stops it (503).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_millis(2000);

/// How the feed treats a video whose current thumbnail `videofeed check-thumbnails`
/// found broken (`VIDEOFEED_FALLBACK_THUMBNAIL`, `VIDEOFEED_BROKEN_THUMBNAILS`). It
/// never shows the broken URL: it shows the same video's alternative checked good
/// (YouTube's `mqdefault`), else the fallback, else leaves the video out; with
/// `omit` it always leaves it out. Plain data here; `search::sql` turns it into SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThumbnailPolicy {
    /// The image shown instead of a broken thumbnail without a good alternative.
    pub fallback: Option<String>,
    /// Leave videos with a broken thumbnail out of the feed altogether.
    pub omit: bool,
}

/// Settings of a network job run (`check-thumbnails`, `enrich-channels`, the in-serve checker).
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests started per second, all threads together; 0 = no limit.
    pub rate: f64,
    /// Time limit of one request (connect, redirects and answer together).
    pub timeout: Duration,
    /// Further tries after a timeout, a dropped connection, a 408/429 or a 5xx.
    pub retries: u32,
    /// Entries checked or fetched more recently are left alone.
    pub max_age: Duration,
    /// At most this many entries per run (None = all that are due).
    pub limit: Option<usize>,
    /// Let the thumbnail checker contact loopback, private, link-local and unique-local
    /// addresses (`VIDEOFEED_CHECK_PRIVATE_HOSTS=1`; off by default, see `jobs::guard`).
    pub private_hosts: bool,
    /// The HTTP proxy the jobs go through (`VIDEOFEED_CHECK_PROXY`); None = direct.
    /// The environment's `HTTP(S)_PROXY`/`ALL_PROXY` are never used: a proxy resolves
    /// the target's host itself, out of the guard's sight (see `jobs::guard`).
    pub proxy: Option<String>,
    /// The most of the catalogue one thumbnail check run may record broken, as a
    /// share (`VIDEOFEED_CHECK_MAX_HIDE`, default 5%; at least [`MIN_HIDE`] videos);
    /// None = no cap (`check-thumbnails --allow-hide`).
    pub max_hide: Option<f64>,
}

/// However small the catalogue, a run may record this many broken thumbnails.
pub const MIN_HIDE: u64 = 100;

/// Reads `VIDEOFEED_CHECK_MAX_HIDE`: `5%`, `0.05`, or `100%`/`1` for no cap.
///
/// # Errors
/// A value that is not a share from 0 to 100%.
pub fn max_hide(value: Option<&str>) -> Result<Option<f64>, String> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(Some(0.05)) };
    let share = match v.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => v.parse::<f64>().ok(),
    };
    match share.filter(|s| s.is_finite() && (0.0..=1.0).contains(s)) {
        Some(s) if s >= 1.0 => Ok(None),
        Some(s) => Ok(Some(s)),
        None => Err(format!("VIDEOFEED_CHECK_MAX_HIDE must be a share such as 5% or 0.05, got {v:?}")),
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            // A thumbnail CDN takes 8 requests in flight and 20 a second without noticing.
            concurrency: 8,
            rate: 20.0,
            // An image HEAD that takes longer than 5 s is as good as broken for a feed.
            timeout: Duration::from_secs(5),
            retries: 2,
            // A week: thumbnails rarely break, and a full pass over 1M videos takes hours.
            max_age: Duration::from_secs(7 * 86_400),
            limit: None,
            private_hosts: false,
            proxy: None,
            max_hide: Some(0.05),
        }
    }
}

/// The proxy a `VIDEOFEED_CHECK_PROXY` value names: `http://host:port`,
/// `https://…`, `socks5://…` (with optional `user:password@`); empty or unset =
/// direct connections.
///
/// # Errors
/// A value that is not a proxy URL, with what was wrong.
pub fn check_proxy(value: Option<&str>) -> Result<Option<String>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => ureq::Proxy::new(v).map(|_| Some(v.to_owned())).map_err(|e| {
            format!("VIDEOFEED_CHECK_PROXY must be a proxy URL such as http://proxy.internal:3128, got {v:?}: {e}")
        }),
    }
}

/// Whether a `VIDEOFEED_CHECK_PRIVATE_HOSTS` value lets the checker contact private
/// addresses: 1 (or true/yes/on); anything else, or none, keeps them refused.
pub fn private_hosts_allowed(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Parses `90`, `90s`, `15m`, `12h`, `7d`, `250ms` (whole numbers; seconds when no unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => return Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// A setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The flag or environment variable at fault.
    pub setting: String,
    /// What was wrong and what to do.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for Error {}

fn err(setting: &str, message: impl Into<String>) -> Error {
    Error { setting: setting.into(), message: message.into() }
}

/// The default worker count: twice the CPUs this process may run on (workers are
/// CPU, not connections: the poller holds idle ones), at least 2 and at most 64.
/// 2 cores → 4 workers (what the benchmarks run), 8 → 16.
pub fn default_workers() -> NonZeroUsize {
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    NonZeroUsize::new((cpus * 2).clamp(2, 64)).unwrap_or(NonZeroUsize::MIN)
}

/// The id of group `name`, from /etc/group.
fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name)).then(|| fields.nth(1).and_then(|g| g.parse().ok())).flatten()
    })
}

/// Picks the flag, else the first set and non-empty environment variable, with its name.
fn pick(
    flag: &Option<String>,
    flag_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    vars: &[&str],
) -> Option<(String, String)> {
    if let Some(v) = flag {
        return Some((flag_name.to_owned(), v.clone()));
    }
    vars.iter().find_map(|name| env(name).filter(|v| !v.trim().is_empty()).map(|v| ((*name).to_owned(), v)))
}

impl Config {
    /// Builds the serve configuration from flags and an environment lookup.
    ///
    /// # Errors
    /// [`Error`] naming the flag or variable whose value is missing or unusable.
    pub fn from_raw(raw: &RawServe, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let mut c = Config::default();
        let (_, db) = pick(&raw.db, "--db", env, &["VIDEOFEED_DB"])
            .ok_or_else(|| err("--db", "no database given: pass --db PATH or set VIDEOFEED_DB"))?;
        c.db = PathBuf::from(db);

        let socket = pick(&raw.socket, "--socket", env, &["VIDEOFEED_SOCKET"]);
        let listen = pick(&raw.listen, "--listen", env, &["VIDEOFEED_LISTEN"]);
        c.listen = match (socket, listen) {
            (Some((sname, _)), Some((lname, _))) => {
                return Err(err(&sname, format!("give either {sname} or {lname}, not both")));
            }
            (Some((_, path)), None) => Listen::Unix(PathBuf::from(path)),
            (None, Some((name, addr))) => Listen::Tcp(parse_tcp(&name, &addr)?),
            (None, None) => Listen::InheritedOnly,
        };

        if let Some(v) = env("VIDEOFEED_LSCACHE_RATE").filter(|v| !v.trim().is_empty()) {
            c.lscache_rate = v.trim().parse::<u32>().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| {
                err(
                    "VIDEOFEED_LSCACHE_RATE",
                    format!("must be a whole number of answers a second from 0 (no cap) to 1000000, got {v:?}"),
                )
            })?;
        }
        if let Some(v) = env("VIDEOFEED_LSCACHE").filter(|v| !v.trim().is_empty()) {
            c.lscache = LsCache::parse(&v)
                .ok_or_else(|| err("VIDEOFEED_LSCACHE", format!("must be always, repeat or off, got {v:?}")))?;
        }

        if let Some((name, v)) = pick(&raw.socket_mode, "--socket-mode", env, &["VIDEOFEED_SOCKET_MODE"]) {
            c.socket_mode = u32::from_str_radix(v.trim().trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777 && m & 0o600 == 0o600)
                .ok_or_else(|| {
                    err(&name, format!("must be octal permission bits with owner rw, like 0660 or 0666, got {v:?}"))
                })?;
        }
        if let Some((name, v)) = pick(&raw.socket_group, "--socket-group", env, &["VIDEOFEED_SOCKET_GROUP"]) {
            let v = v.trim();
            c.socket_group = Some(match v.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_id(v).ok_or_else(|| {
                    err(&name, format!("no group named {v:?} (see /etc/group); give a group name or number"))
                })?,
            });
        }

        if let Some((name, v)) =
            pick(&raw.workers, "--workers", env, &["VIDEOFEED_WORKERS", "LSAPI_CHILDREN", "PHP_FCGI_CHILDREN"])
        {
            c.workers = v
                .trim()
                .parse::<NonZeroUsize>()
                .ok()
                .filter(|n| n.get() <= 1024)
                .ok_or_else(|| err(&name, format!("must be a whole number from 1 to 1024, got {v:?}")))?;
        }

        if let Some(v) = env("VIDEOFEED_MAX_PARAMS_BYTES").filter(|v| !v.is_empty()) {
            c.max_params = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1024..=16 * 1024 * 1024).contains(n))
                .ok_or_else(|| err("VIDEOFEED_MAX_PARAMS_BYTES", "must be a byte count from 1024 to 16777216"))?;
        }

        if let Some(v) = env("VIDEOFEED_MAX_REQUESTS").filter(|v| !v.trim().is_empty()) {
            let n = v
                .trim()
                .parse::<u64>()
                .map_err(|_| err("VIDEOFEED_MAX_REQUESTS", format!("must be a whole number (0 = never), got {v:?}")))?;
            c.max_requests = (n > 0).then_some(n);
        }

        if let Some((name, v)) = pick(&raw.cache_bytes, "--cache-bytes", env, &["VIDEOFEED_CACHE_BYTES"]) {
            c.cache_bytes = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 1 << 36)
                .ok_or_else(|| err(&name, format!("must be a byte count (0 turns the cache off), got {v:?}")))?;
        }

        if let Some(v) = env("VIDEOFEED_RANK_MEMO_BYTES").filter(|v| !v.trim().is_empty()) {
            let n = v.trim().parse::<usize>().ok().filter(|n| *n <= 1 << 36).ok_or_else(|| {
                err(
                    "VIDEOFEED_RANK_MEMO_BYTES",
                    format!("must be a byte count (0 keeps nothing; unset = 32 MiB), got {v:?}"),
                )
            })?;
            c.rank_memo_bytes = Some(n);
        }
        // Read where the index is built (`search::index::snapshot::prefix_class_bytes`,
        // by every command that builds it); checked here so that serve refuses a typo.
        if let Some(v) = env("VIDEOFEED_RANK_PREFIX_CLASS_BYTES").filter(|v| !v.trim().is_empty()) {
            if !v.trim().parse::<usize>().is_ok_and(|n| n <= 4096) {
                return Err(err(
                    "VIDEOFEED_RANK_PREFIX_CLASS_BYTES",
                    format!("must be bytes a video, 0 to 4096 (0 keeps no prefix's rows in the index file), got {v:?}"),
                ));
            }
        }

        if let Some(v) = env("VIDEOFEED_ADMIN_TOKEN") {
            if v.trim().is_empty() {
                log::warn!("VIDEOFEED_ADMIN_TOKEN is set but empty: the write API stays off");
            } else {
                c.admin_token = Some(v);
            }
        }
        let (mut query_ms, mut request_ms, mut write_ms, mut admin_wait_ms) = (
            u64::try_from(c.query_timeout.as_millis()).unwrap_or(2000),
            u64::try_from(c.request_timeout.as_millis()).unwrap_or(2_000),
            u64::try_from(c.write_timeout.as_millis()).unwrap_or(30_000),
            u64::try_from(c.admin_wait.as_millis()).unwrap_or(30_000),
        );
        for (name, slot, max) in [
            ("VIDEOFEED_QUERY_TIMEOUT_MS", &mut query_ms, 60_000u64),
            ("VIDEOFEED_REQUEST_TIMEOUT_MS", &mut request_ms, 600_000),
            ("VIDEOFEED_WRITE_TIMEOUT_MS", &mut write_ms, 600_000),
            ("VIDEOFEED_ADMIN_WAIT_MS", &mut admin_wait_ms, 600_000),
        ] {
            if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                *slot = v.trim().parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                    err(name, format!("must be a whole number of milliseconds from 1 to {max}, got {v:?}"))
                })?;
            }
        }
        if let Some(v) = env("VIDEOFEED_MAX_STALENESS").filter(|v| !v.trim().is_empty()) {
            if v.trim().eq_ignore_ascii_case("off") {
                c.staleness = Staleness::Off;
            } else {
                let secs = v.trim().trim_end_matches('s').parse::<u64>().ok().filter(|n| (1..=604_800).contains(n));
                c.max_staleness = Duration::from_secs(secs.ok_or_else(|| {
                    err(
                        "VIDEOFEED_MAX_STALENESS",
                        format!("must be a whole number of seconds from 1 to 604800, or off, got {v:?}"),
                    )
                })?);
                c.staleness = Staleness::Always;
            }
        }
        c.query_timeout = Duration::from_millis(query_ms);
        c.request_timeout = Duration::from_millis(request_ms);
        c.write_timeout = Duration::from_millis(write_ms);
        c.admin_wait = Duration::from_millis(admin_wait_ms);
        for (name, slot, max) in [
            ("VIDEOFEED_ADMIN_MAX_BODY", &mut c.admin_max_body, 1usize << 30),
            ("VIDEOFEED_WRITE_QUEUE", &mut c.write_queue, 100_000),
            ("VIDEOFEED_MAX_PARAMS", &mut c.max_param_count, 100_000),
            ("VIDEOFEED_ADMIN_CONCURRENCY", &mut c.admin_concurrency, 1024),
        ] {
            if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                *slot = v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| err(name, format!("must be a whole number from 1 to {max}, got {v:?}")))?;
            }
        }

        for (name, slot) in [
            ("VIDEOFEED_RANK_INDEX", &mut c.rank_index),
            ("VIDEOFEED_TYPO_FALLBACK", &mut c.typo_fallback),
            ("VIDEOFEED_RELAX", &mut c.relax),
            ("VIDEOFEED_TOTALS", &mut c.totals),
            ("VIDEOFEED_ASSUME_UTC", &mut c.assume_utc),
        ] {
            if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                *slot = match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "on" | "true" | "yes" => true,
                    "0" | "off" | "false" | "no" => false,
                    _ => return Err(err(name, format!("must be on or off, got {v:?}"))),
                };
            }
        }

        if let Some(v) = env("VIDEOFEED_SLOW_MS").filter(|v| !v.trim().is_empty()) {
            let ms = v.trim().parse::<u64>().ok().filter(|n| *n <= 3_600_000).ok_or_else(|| {
                err("VIDEOFEED_SLOW_MS", format!("must be a whole number of milliseconds (0 = no slow log), got {v:?}"))
            })?;
            c.slow = (ms > 0).then(|| Duration::from_millis(ms));
        }

        if let Some(v) = env("VIDEOFEED_METRICS_ALLOW") {
            let v = v.trim();
            c.metrics_allow = if v.is_empty() || v.eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                v.split(',').map(IpNet::parse).collect::<Option<Vec<_>>>().ok_or_else(|| {
                    err(
                        "VIDEOFEED_METRICS_ALLOW",
                        format!("must be a comma-separated list of addresses or networks (127.0.0.1, 10.0.0.0/8, ::1), or none; got {v:?}"),
                    )
                })?
            };
        }

        if let Some(v) = env("VIDEOFEED_FALLBACK_THUMBNAIL").filter(|v| !v.trim().is_empty()) {
            let v = v.trim();
            if !(v.starts_with("https://") || v.starts_with("http://") || v.starts_with('/')) {
                return Err(err(
                    "VIDEOFEED_FALLBACK_THUMBNAIL",
                    format!("must be an http(s):// URL or a path on this site, got {v:?}"),
                ));
            }
            c.thumbnails.fallback = Some(v.to_owned());
        }
        if let Some(v) = env("VIDEOFEED_BROKEN_THUMBNAILS").filter(|v| !v.trim().is_empty()) {
            c.thumbnails.omit = match v.trim() {
                "replace" => false,
                "omit" => true,
                _ => return Err(err("VIDEOFEED_BROKEN_THUMBNAILS", format!("must be replace or omit, got {v:?}"))),
            };
        }
        let duration = |name: &str, v: &str| {
            parse_duration(v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| err(name, format!("must be a duration such as 90s, 15m, 12h or 7d, got {v:?}")))
        };
        if let Some((name, v)) =
            pick(&raw.check_thumbnails_every, "--check-thumbnails-every", env, &["VIDEOFEED_THUMBNAIL_CHECK_EVERY"])
        {
            c.thumbnail_check_every = Some(duration(&name, &v)?);
        }
        if let Some(v) = env("VIDEOFEED_THUMBNAIL_MAX_AGE").filter(|v| !v.trim().is_empty()) {
            c.thumbnail_check.max_age = duration("VIDEOFEED_THUMBNAIL_MAX_AGE", &v)?;
        }
        if let Some(v) = env("VIDEOFEED_THUMBNAIL_CONCURRENCY").filter(|v| !v.trim().is_empty()) {
            c.thumbnail_check.concurrency =
                v.trim().parse::<usize>().ok().filter(|n| (1..=256).contains(n)).ok_or_else(|| {
                    err("VIDEOFEED_THUMBNAIL_CONCURRENCY", format!("must be a whole number from 1 to 256, got {v:?}"))
                })?;
        }
        c.thumbnail_check.private_hosts = private_hosts_allowed(env("VIDEOFEED_CHECK_PRIVATE_HOSTS").as_deref());
        c.thumbnail_check.proxy =
            check_proxy(env("VIDEOFEED_CHECK_PROXY").as_deref()).map_err(|m| err("VIDEOFEED_CHECK_PROXY", m))?;
        c.thumbnail_check.max_hide =
            max_hide(env("VIDEOFEED_CHECK_MAX_HIDE").as_deref()).map_err(|m| err("VIDEOFEED_CHECK_MAX_HIDE", m))?;
        if let Some(v) = env("VIDEOFEED_THUMBNAIL_RATE").filter(|v| !v.trim().is_empty()) {
            c.thumbnail_check.rate =
                v.trim().parse::<f64>().ok().filter(|r| r.is_finite() && *r >= 0.0).ok_or_else(|| {
                    err("VIDEOFEED_THUMBNAIL_RATE", format!("must be requests per second (0 = no limit), got {v:?}"))
                })?;
        }

        if let Some(v) = env("FCGI_WEB_SERVER_ADDRS").filter(|v| !v.trim().is_empty()) {
            c.web_server_addrs =
                v.split(',').map(|a| a.trim().parse::<IpAddr>()).collect::<Result<_, _>>().map_err(|_| {
                    err("FCGI_WEB_SERVER_ADDRS", format!("must be a comma-separated list of IP addresses, got {v:?}"))
                })?;
        }
        if c.admin_concurrency == 0 {
            c.admin_concurrency = (c.workers.get() / 4).max(1);
        }
        Ok(c)
    }
}

/// `PORT` alone means loopback; `HOST:PORT` is taken as given.
fn parse_tcp(name: &str, addr: &str) -> Result<SocketAddr, Error> {
    let addr = addr.trim();
    if let Ok(port) = addr.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| err(name, format!("must be HOST:PORT or PORT, got {addr:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn socket_mode_and_group_from_flags_or_environment() {
        let raw = RawServe { db: Some("x".into()), ..Default::default() };
        let c = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_SOCKET_MODE", "0666"), ("VIDEOFEED_SOCKET_GROUP", "0")]));
        let c = c.unwrap();
        assert_eq!((c.socket_mode, c.socket_group), (0o666, Some(0)));
        let flag = RawServe { socket_mode: Some("640".into()), socket_group: Some("root".into()), ..raw.clone() };
        let c = Config::from_raw(&flag, &env_of(&[("VIDEOFEED_SOCKET_MODE", "0666")])).unwrap();
        assert_eq!((c.socket_mode, c.socket_group), (0o640, Some(0)), "flags win; names resolve");
        for bad in ["999", "0066", "rw", "01777"] {
            let r = RawServe { socket_mode: Some(bad.into()), ..raw.clone() };
            let e = Config::from_raw(&r, &env_of(&[])).err().unwrap();
            assert_eq!(e.setting, "--socket-mode", "{bad}");
        }
        let r = RawServe { socket_group: Some("no-such-group-here".into()), ..raw.clone() };
        let e = Config::from_raw(&r, &env_of(&[])).err().unwrap();
        assert!(e.message.contains("no group named"), "{e}");
    }

    #[test]
    fn staleness_counts_for_replicas_unless_set_or_off() -> Result<(), Error> {
        let raw = RawServe { db: Some("/d.db".into()), ..Default::default() };
        let c = Config::from_raw(&raw, &env_of(&[]))?;
        assert_eq!((c.staleness, c.max_staleness.as_secs()), (Staleness::ReplicasOnly, 60));
        let c = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_MAX_STALENESS", "30")]))?;
        assert_eq!((c.staleness, c.max_staleness.as_secs()), (Staleness::Always, 30));
        let c = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_MAX_STALENESS", "OFF")]))?;
        assert_eq!(c.staleness, Staleness::Off);
        let e = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_MAX_STALENESS", "soon")])).err();
        assert!(e.is_some_and(|e| e.message.contains("or off")));
        Ok(())
    }

    #[test]
    fn workers_precedence() -> Result<(), Error> {
        let raw = RawServe { db: Some("/d.db".into()), ..Default::default() };
        let c = Config::from_raw(&raw, &env_of(&[("PHP_FCGI_CHILDREN", "3"), ("LSAPI_CHILDREN", "5")]))?;
        assert_eq!(c.workers.get(), 5);
        let c = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_WORKERS", "7"), ("LSAPI_CHILDREN", "5")]))?;
        assert_eq!(c.workers.get(), 7);
        let raw2 = RawServe { workers: Some("2".into()), ..raw.clone() };
        assert_eq!(Config::from_raw(&raw2, &env_of(&[("VIDEOFEED_WORKERS", "7")]))?.workers.get(), 2);
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(Config::from_raw(&raw, &env_of(&[]))?.workers.get(), (cpus * 2).clamp(2, 64));
        Ok(())
    }

    #[test]
    fn errors_name_the_setting() {
        let raw = RawServe::default();
        assert_eq!(Config::from_raw(&raw, &env_of(&[])).err().map(|e| e.setting), Some("--db".into()));
        let raw = RawServe { db: Some("x".into()), ..Default::default() };
        let e = Config::from_raw(&raw, &env_of(&[("LSAPI_CHILDREN", "zero")])).err();
        assert_eq!(e.map(|e| e.setting), Some("LSAPI_CHILDREN".into()));
        let e = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_SOCKET", "/s"), ("VIDEOFEED_LISTEN", "9000")])).err();
        assert!(e.is_some());
        let e = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_RANK_MEMO_BYTES", "lots")])).err();
        assert_eq!(e.map(|e| e.setting), Some("VIDEOFEED_RANK_MEMO_BYTES".into()));
    }

    #[test]
    fn the_rank_memo_budget_defaults_and_can_be_set() -> Result<(), Error> {
        let raw = RawServe { db: Some("/d.db".into()), ..Default::default() };
        assert_eq!(Config::from_raw(&raw, &env_of(&[]))?.rank_memo_bytes, None, "the default: 32 MiB");
        let c = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_RANK_MEMO_BYTES", "0")]))?;
        assert_eq!(c.rank_memo_bytes, Some(0));
        Ok(())
    }

    #[test]
    fn ip_networks() {
        let net = |t| IpNet::parse(t).unwrap();
        assert!(net("127.0.0.0/8").contains("127.1.2.3".parse().unwrap()));
        assert!(net("127.0.0.0/8").contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!net("127.0.0.0/8").contains("128.0.0.1".parse().unwrap()));
        assert!(net("10.1.2.3").contains("10.1.2.3".parse().unwrap()));
        assert!(!net("10.1.2.3").contains("10.1.2.4".parse().unwrap()));
        assert!(net("::1").contains("::1".parse().unwrap()));
        assert!(!net("::1").contains("127.0.0.1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("203.0.113.9".parse().unwrap()));
        assert!(net("2001:db8::/32").contains("2001:db8:1::5".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none() && IpNet::parse("nope").is_none());
    }

    #[test]
    fn thumbnail_settings() -> Result<(), Error> {
        let raw = RawServe { db: Some("x".into()), ..Default::default() };
        let c = Config::from_raw(&raw, &env_of(&[]))?;
        assert_eq!((c.thumbnail_check_every, c.thumbnails.omit, c.thumbnails.fallback.is_none()), (None, false, true));
        let env = env_of(&[
            ("VIDEOFEED_THUMBNAIL_CHECK_EVERY", "6h"),
            ("VIDEOFEED_BROKEN_THUMBNAILS", "omit"),
            ("VIDEOFEED_FALLBACK_THUMBNAIL", "/img/none.jpg"),
            ("VIDEOFEED_THUMBNAIL_RATE", "2.5"),
        ]);
        let c = Config::from_raw(&raw, &env)?;
        assert_eq!(c.thumbnail_check_every, Some(Duration::from_secs(6 * 3600)));
        assert!(c.thumbnails.omit && c.thumbnails.fallback.as_deref() == Some("/img/none.jpg"));
        assert!((c.thumbnail_check.rate - 2.5).abs() < f64::EPSILON);
        assert!(!c.thumbnail_check.private_hosts, "internal addresses are refused by default");
        let open = env_of(&[("VIDEOFEED_CHECK_PRIVATE_HOSTS", "1")]);
        assert!(Config::from_raw(&raw, &open)?.thumbnail_check.private_hosts);
        let flag = RawServe { check_thumbnails_every: Some("30m".into()), ..raw.clone() };
        assert_eq!(Config::from_raw(&flag, &env)?.thumbnail_check_every, Some(Duration::from_secs(1800)));
        for (var, bad) in [
            ("VIDEOFEED_THUMBNAIL_CHECK_EVERY", "0s"),
            ("VIDEOFEED_BROKEN_THUMBNAILS", "hide"),
            ("VIDEOFEED_FALLBACK_THUMBNAIL", "javascript:x"),
            ("VIDEOFEED_THUMBNAIL_CONCURRENCY", "0"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([(var, bad)]));
            assert_eq!(Config::from_raw(&raw, &env_of(pairs)).err().map(|e| e.setting), Some(var.to_owned()));
        }
        Ok(())
    }

    #[test]
    fn slow_log_and_metrics_settings() -> Result<(), Error> {
        let raw = RawServe { db: Some("x".into()), ..Default::default() };
        let c = Config::from_raw(&raw, &env_of(&[]))?;
        assert_eq!(c.slow, Some(Duration::from_millis(250)));
        assert_eq!(c.metrics_allow.len(), 2);
        let c = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_SLOW_MS", "0"), ("VIDEOFEED_METRICS_ALLOW", "none")]))?;
        assert_eq!((c.slow, c.metrics_allow.len()), (None, 0));
        let c = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_METRICS_ALLOW", "10.0.0.0/8, 192.0.2.7")]))?;
        assert_eq!(c.metrics_allow.len(), 2);
        let e = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_METRICS_ALLOW", "10.0.0.0/99")])).err();
        assert_eq!(e.map(|e| e.setting), Some("VIDEOFEED_METRICS_ALLOW".into()));
        let e = Config::from_raw(&raw, &env_of(&[("VIDEOFEED_SLOW_MS", "soon")])).err();
        assert_eq!(e.map(|e| e.setting), Some("VIDEOFEED_SLOW_MS".into()));
        Ok(())
    }

    #[test]
    fn listen_port_alone_is_loopback() -> Result<(), Error> {
        let raw = RawServe { db: Some("x".into()), listen: Some("9000".into()), ..Default::default() };
        let c = Config::from_raw(&raw, &env_of(&[]))?;
        assert_eq!(c.listen, Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 9000))));
        let c = Config::from_raw(
            &RawServe { db: Some("x".into()), ..Default::default() },
            &env_of(&[("VIDEOFEED_DB", "/other")]),
        )?;
        assert_eq!(c.db, PathBuf::from("x"));
        Ok(())
    }
}
