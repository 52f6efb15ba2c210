//! The `videofeed` command: a thin layer over the library that parses
//! subcommands and flags, sets up logging, and turns errors into exit codes
//! (0 ok, 1 finished with rejected lines or a 5xx answer, 2 fatal).
//! Standard output is used only by the admin commands; `serve` never writes
//! to it (under LiteSpeed it is a dead socket).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use videofeed::config::{Config, RawServe};
use videofeed::fcgi::client;
use videofeed::http::{request, response};
use videofeed::store::demo;
use videofeed::store::import::{self, Options, Summary, Writer};
use videofeed::{search, server};

const USAGE: &str = "\
videofeed: a FastCGI responder for a video search feed, backed by SQLite FTS5

Usage: videofeed <command> [options]

Commands:
  serve    answer GET /feed as a FastCGI responder (socket on fd 0, --socket or --listen)
  init     create or check the database schema
  import   import videos from JSON Lines (a file or - for stdin)
  demo     generate a deterministic demo corpus into the database
  query    run one feed query against the database and print the JSON
  get      send one FastCGI request to a running responder and print the answer
  backup   write a consistent copy of the database while it serves (VACUUM INTO)
  check-thumbnails   check thumbnail URLs in the background; the feed then hides broken ones
  enrich-channels    fetch channel metadata (verified, avatar, ...) from an HTTP JSON source

Run `videofeed <command> --help` for a command's options and examples.
Options: -h, --help   this text;  -V, --version   the version";

const SERVE_HELP: &str = "\
videofeed serve --db PATH [--socket PATH | --listen [HOST:]PORT] [--workers N] [--cache-bytes N]
                [--check-thumbnails-every DURATION]

Answers GET /feed as a FastCGI responder. When fd 0 is a listening socket (LiteSpeed,
lighttpd and spawn-fcgi start apps that way) it is used and nothing is bound or removed;
otherwise --socket binds a Unix socket (a stale one is replaced, mode 0660) or --listen a
TCP address (a bare PORT means 127.0.0.1).

Endpoints: GET /feed?q=&region=&limit= (the feed), /feed/health (200 or 503),
/feed/metrics (Prometheus; loopback or the admin token), /feed/openapi.json (the contract),
POST /feed/admin/videos and DELETE /feed/admin/videos/{id} (with VIDEOFEED_ADMIN_TOKEN).

Environment (flags win): VIDEOFEED_DB, VIDEOFEED_SOCKET, VIDEOFEED_LISTEN, VIDEOFEED_WORKERS,
then LSAPI_CHILDREN, PHP_FCGI_CHILDREN (workers, default 16), VIDEOFEED_MAX_PARAMS_BYTES,
VIDEOFEED_MAX_PARAMS, FCGI_WEB_SERVER_ADDRS, VIDEOFEED_CACHE_BYTES (response cache, default
33554432, 0 = off), VIDEOFEED_RANK_INDEX (on/off, default on), VIDEOFEED_TYPO_FALLBACK (on/off),
VIDEOFEED_QUERY_TIMEOUT_MS (default 2000), VIDEOFEED_REQUEST_TIMEOUT_MS (default 10000),
VIDEOFEED_MAX_REQUESTS (exit 0 after N requests so the web server starts a fresh process;
default never), VIDEOFEED_ADMIN_TOKEN (turns the write API on), VIDEOFEED_ADMIN_MAX_BODY,
VIDEOFEED_WRITE_QUEUE, VIDEOFEED_SLOW_MS (slow log threshold, default 250, 0 = off),
VIDEOFEED_METRICS_ALLOW (addresses or networks that may read /feed/metrics without the token,
default 127.0.0.0/8,::1; none = token only), VIDEOFEED_FALLBACK_THUMBNAIL (image shown instead
of a thumbnail check-thumbnails found broken), VIDEOFEED_BROKEN_THUMBNAILS (replace, the default,
or omit), VIDEOFEED_THUMBNAIL_CHECK_EVERY or --check-thumbnails-every (run check-thumbnails
inside serve on its own thread, e.g. 6h; default off) with VIDEOFEED_THUMBNAIL_CONCURRENCY (4), VIDEOFEED_THUMBNAIL_RATE (10/s)
and VIDEOFEED_THUMBNAIL_MAX_AGE (7d), VIDEOFEED_LOG (log filter, default info; RUST_LOG too;
debug adds one line per request).
Signals: SIGTERM, SIGUSR1, SIGINT stop gracefully (requests in flight finish); SIGHUP is ignored.

Example:
  videofeed serve --db /srv/videofeed/videos.db --socket /run/videofeed/videofeed.sock --workers 8";

const INIT_HELP: &str = "\
videofeed init --db PATH

Creates the database with the videofeed schema, or checks an existing one. Idempotent.

Example:
  videofeed init --db /srv/videofeed/videos.db";

const IMPORT_HELP: &str = "\
videofeed import --db PATH [--strict] [--batch-size N] [--no-bulk] [FILE|-]

Imports JSON Lines (one video per line: id, title, channel, duration_seconds, thumbnail,
region, optional published_at and view_count) and upserts by id. A bad line is reported
on stderr with its line number and reason and counted. With --strict the first bad line
stops the import and nothing of its batch (default 10000 rows) is written.
Into an empty database the whole input is one batch (all or nothing) and the full-text
index is built once at the end, about 3x faster; --no-bulk keeps 10000-row batches.
Exit status: 0 all lines imported, 1 some lines rejected, 2 stopped by an error.

Examples:
  videofeed import --db videos.db videos.jsonl
  zcat videos.jsonl.gz | videofeed import --db videos.db --strict -";

const DEMO_HELP: &str = "\
videofeed demo --db PATH [--videos N] [--seed S]

Generates N (default 10000) realistic videos, the same ones for the same seed (default 1),
and writes them to the database (creating it if needed).

Example:
  videofeed demo --db /tmp/demo.db --videos 50000";

const QUERY_HELP: &str = "\
videofeed query --db PATH --q TEXT [--region CC] [--limit N] [--offset N] [--channel NAME]
                [--min-duration S] [--max-duration S] [--sort relevance|recent|popular]

Runs the /feed search directly against the database and prints the same JSON body
/feed answers for the same parameters (typo corrections and paging included), with
the same settings from the environment as serve (VIDEOFEED_TYPO_FALLBACK,
VIDEOFEED_FALLBACK_THUMBNAIL, VIDEOFEED_BROKEN_THUMBNAILS, VIDEOFEED_QUERY_TIMEOUT_MS).
Exit status 2 with the parameter error when the query is invalid.

Example:
  videofeed query --db videos.db --q 'lofi hip' --region DE --limit 5 --offset 5";

const GET_HELP: &str = "\
videofeed get (--socket PATH | --connect HOST:PORT) [--method GET|HEAD] [--timeout SECONDS] URI

Sends one FastCGI request with our own client and prints the CGI answer (headers, blank
line, body). Exit status: 0 for a 1xx-4xx answer, 1 for a 5xx answer, 2 for no answer.
The operator's health check without a web server (it sends REMOTE_ADDR 127.0.0.1, so
/feed/metrics answers too).

Examples:
  videofeed get --socket /run/videofeed/videofeed.sock /feed/health
  videofeed get --socket /run/videofeed/videofeed.sock '/feed?q=music&limit=3'
  videofeed get --socket /run/videofeed/videofeed.sock /feed/metrics | grep ^videofeed_requests";

const CHECK_THUMBNAILS_HELP: &str = "\
videofeed check-thumbnails --db PATH [--concurrency N] [--max-age DURATION] [--rate R]
                           [--timeout DURATION] [--retries N] [--limit N]

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
Exit status: 0 done (or stopped by a signal), 2 the database cannot be used.

Examples:
  videofeed check-thumbnails --db /var/lib/videofeed/videos.db
  videofeed check-thumbnails --db videos.db --concurrency 16 --rate 50 --max-age 3d";

const ENRICH_CHANNELS_HELP: &str = "\
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

const BACKUP_HELP: &str = "\
videofeed backup --db PATH OUT

Writes a consistent, compacted copy of the database to OUT (which must not exist) with
SQLite's VACUUM INTO. Safe while the responder serves and while imports run: the copy is
one snapshot. Restore by stopping the app and moving the copy into place.

Example:
  videofeed backup --db /var/lib/videofeed/videos.db /var/backups/videos-$(date +%F).db";

/// A fatal error: its message (with source chain) and exit code.
struct Fatal(String, u8);

impl<E: std::error::Error> From<E> for Fatal {
    fn from(e: E) -> Self {
        let mut msg = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            source = s.source();
        }
        Fatal(msg, 2)
    }
}

fn fatal(msg: impl Into<String>) -> Fatal {
    Fatal(msg.into(), 2)
}

/// Parsed `--flag value` / `--flag=value` options and positional arguments.
struct Args {
    flags: HashMap<String, String>,
    positional: Vec<String>,
    help: bool,
}

fn parse_args(args: &[String], valued: &[&str], switches: &[&str], usage: &str) -> Result<Args, Fatal> {
    let mut out = Args { flags: HashMap::new(), positional: Vec::new(), help: false };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            out.help = true;
        } else if a == "-" || !a.starts_with('-') {
            out.positional.push(a.clone());
        } else {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (a.as_str(), None),
            };
            if switches.contains(&name) {
                out.flags.insert(name.to_owned(), String::new());
            } else if valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| fatal(format!("{name} needs a value\n\n{usage}")))?,
                };
                out.flags.insert(name.to_owned(), v);
            } else {
                return Err(fatal(format!("unknown option {name}\n\n{usage}")));
            }
        }
    }
    Ok(out)
}

impl Args {
    fn get(&self, name: &str) -> Option<String> {
        self.flags.get(name).cloned()
    }

    fn db(&self, usage: &str) -> Result<PathBuf, Fatal> {
        self.get("--db")
            .or_else(|| std::env::var("VIDEOFEED_DB").ok().filter(|v| !v.is_empty()))
            .map(PathBuf::from)
            .ok_or_else(|| fatal(format!("--db PATH is required (or set VIDEOFEED_DB)\n\n{usage}")))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Fatal> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| fatal(format!("{name} must be a whole number, got {v:?}"))),
        }
    }
}

fn init_logging() {
    let filter =
        std::env::var("VIDEOFEED_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .target(env_logger::Target::Stderr)
        .write_style(env_logger::WriteStyle::Never)
        .format_timestamp_millis()
        .init();
}

fn main() -> ExitCode {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => cmd_serve(&args[1..]),
        Some("init") => cmd_init(&args[1..]),
        Some("import") => cmd_import(&args[1..]),
        Some("demo") => cmd_demo(&args[1..]),
        Some("query") => cmd_query(&args[1..]),
        Some("get") => cmd_get(&args[1..]),
        Some("backup") => cmd_backup(&args[1..]),
        Some("check-thumbnails") => cmd_check_thumbnails(&args[1..]),
        Some("enrich-channels") => cmd_enrich_channels(&args[1..]),
        Some("-V" | "--version" | "version") => {
            say(&format!("videofeed {}", env!("CARGO_PKG_VERSION")));
            Ok(0)
        }
        Some("-h" | "--help" | "help") => {
            say(USAGE);
            Ok(0)
        }
        Some(other) => Err(fatal(format!("unknown command {other:?}\n\n{USAGE}"))),
        None => Err(fatal(USAGE)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fatal(msg, code)) => {
            esay(&format!("videofeed: error: {msg}"));
            ExitCode::from(code)
        }
    }
}

/// Writes a line to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn say(text: &str) {
    let _ = writeln!(io::stdout().lock(), "{text}");
}

/// Writes a line to stderr, ignoring a closed stderr.
fn esay(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

fn help(text: &str) -> Result<u8, Fatal> {
    say(text);
    Ok(0)
}

fn cmd_serve(raw: &[String]) -> Result<u8, Fatal> {
    let valued = ["--db", "--socket", "--listen", "--workers", "--cache-bytes", "--check-thumbnails-every"];
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
    };
    let config = Config::from_raw(&flags, &|k| std::env::var(k).ok())?;
    log::info!(
        "config db={} listen={:?} workers={} cache_bytes={} rank_index={} max_params={} max_requests={:?} grace_ms={} slow_ms={} metrics_allow={}",
        config.db.display(),
        config.listen,
        config.workers,
        config.cache_bytes,
        config.rank_index,
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

fn cmd_init(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db"], &[], INIT_HELP)?;
    if a.help {
        return help(INIT_HELP);
    }
    let db = a.db(INIT_HELP)?;
    let writer = Writer::open(&db)?;
    say(&format!(
        "{}: videofeed schema {} ready, {} videos",
        db.display(),
        videofeed::store::db::SCHEMA_VERSION,
        writer.count()?
    ));
    Ok(0)
}

/// Reads the job flags shared by check-thumbnails and enrich-channels.
fn job_options(a: &Args, defaults: videofeed::jobs::JobOptions) -> Result<videofeed::jobs::JobOptions, Fatal> {
    let duration = |name: &str, default: Duration| -> Result<Duration, Fatal> {
        match a.get(name) {
            None => Ok(default),
            Some(v) => videofeed::jobs::parse_duration(&v)
                .ok_or_else(|| fatal(format!("{name} must be a duration such as 90s, 15m, 12h or 7d, got {v:?}"))),
        }
    };
    let concurrency: usize = a.number("--concurrency", defaults.concurrency)?;
    if !(1..=256).contains(&concurrency) {
        return Err(fatal(format!("--concurrency must be from 1 to 256, got {concurrency}")));
    }
    let rate = match a.get("--rate") {
        None => defaults.rate,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| fatal(format!("--rate must be requests per second (0 = no limit), got {v:?}")))?,
    };
    let timeout = duration("--timeout", defaults.timeout)?;
    if timeout.is_zero() {
        return Err(fatal("--timeout must be more than 0"));
    }
    Ok(videofeed::jobs::JobOptions {
        concurrency,
        rate,
        timeout,
        retries: a.number("--retries", defaults.retries)?,
        max_age: duration("--max-age", defaults.max_age)?,
        limit: a.get("--limit").map(|_| a.number("--limit", 0usize)).transpose()?,
    })
}

/// Runs a job with SIGTERM/SIGINT as "stop", its own single writer, and progress on a terminal.
fn run_job(
    name: &str,
    db: &std::path::Path,
    job: impl FnOnce(
        &AtomicBool,
        &videofeed::store::writer::WriterHandle,
        &mut (dyn FnMut(&videofeed::jobs::Summary) + Send),
    ) -> Result<videofeed::jobs::Summary, videofeed::jobs::Error>,
) -> Result<u8, Fatal> {
    let stop = Arc::new(AtomicBool::new(false));
    server::install_signal_handlers(&stop)?;
    // Creates or upgrades the schema first, so the jobs' tables exist.
    drop(Writer::open(db)?);
    let writer = videofeed::store::writer::WriterHandle::start(db, 16)?;
    let tty = io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut progress = move |s: &videofeed::jobs::Summary| {
        if tty && last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            eprint!(
                "\r{name}: {} of {} done, {} good, {} bad, {} failed   ",
                s.done, s.planned, s.good, s.bad, s.failed
            );
        }
    };
    let summary = job(&stop, &writer, &mut progress);
    if tty {
        eprintln!();
    }
    let summary = summary.map_err(|e| fatal(format!("{name}: {e}")))?;
    say(&format!("{name} {}: {summary}", db.display()));
    Ok(0)
}

fn cmd_check_thumbnails(raw: &[String]) -> Result<u8, Fatal> {
    let valued = ["--db", "--concurrency", "--max-age", "--rate", "--timeout", "--retries", "--limit"];
    let a = parse_args(raw, &valued, &[], CHECK_THUMBNAILS_HELP)?;
    if a.help {
        return help(CHECK_THUMBNAILS_HELP);
    }
    let db = a.db(CHECK_THUMBNAILS_HELP)?;
    let opts = job_options(&a, videofeed::jobs::JobOptions::default())?;
    run_job("check-thumbnails", &db, |stop, writer, progress| {
        videofeed::jobs::check_thumbnails(&db, &opts, stop, writer, progress)
    })
}

fn cmd_enrich_channels(raw: &[String]) -> Result<u8, Fatal> {
    let valued = ["--db", "--source", "--concurrency", "--max-age", "--rate", "--timeout", "--retries", "--limit"];
    let a = parse_args(raw, &valued, &[], ENRICH_CHANNELS_HELP)?;
    if a.help {
        return help(ENRICH_CHANNELS_HELP);
    }
    let db = a.db(ENRICH_CHANNELS_HELP)?;
    let source =
        a.get("--source").ok_or_else(|| fatal(format!("--source URL is required\n\n{ENRICH_CHANNELS_HELP}")))?;
    let defaults = videofeed::jobs::JobOptions { concurrency: 4, rate: 10.0, ..videofeed::jobs::JobOptions::default() };
    let opts = job_options(&a, defaults)?;
    run_job("enrich-channels", &db, |stop, writer, progress| {
        videofeed::jobs::enrich_channels(&db, &source, &opts, stop, writer, progress)
    })
}

/// Prints progress on a terminal at most twice a second (with the share done and the
/// time left when the total is known); silent in pipes, so logs and scripts stay clean.
fn progress_printer(total: Option<u64>) -> impl FnMut(&Summary) {
    let tty = io::stderr().is_terminal();
    let mut last = Instant::now();
    move |s: &Summary| {
        if tty && last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            let share = match total.filter(|t| *t > 0) {
                Some(t) => {
                    let rate = s.rows_per_second().max(1.0);
                    #[expect(clippy::cast_precision_loss, reason = "a percentage for people")]
                    let (done, left) = (s.lines as f64 / t as f64 * 100.0, t.saturating_sub(s.lines) as f64 / rate);
                    format!("{done:.0}% of {t}, ~{left:.0} s left, ")
                }
                None => String::new(),
            };
            eprint!(
                "\r{share}{} lines, {} inserted, {} updated, {} rejected, {:.0} rows/s   ",
                s.lines,
                s.inserted,
                s.updated,
                s.rejected,
                s.rows_per_second()
            );
        }
    }
}

fn cmd_import(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db", "--batch-size"], &["--strict", "--no-bulk"], IMPORT_HELP)?;
    if a.help {
        return help(IMPORT_HELP);
    }
    let db = a.db(IMPORT_HELP)?;
    let opts = Options {
        bulk_when_empty: !a.flags.contains_key("--no-bulk"),
        batch_size: a.number("--batch-size", import::DEFAULT_BATCH)?.max(1),
        strict: a.flags.contains_key("--strict"),
    };
    let source = a.positional.first().cloned().unwrap_or_else(|| "-".into());
    if a.positional.len() > 1 {
        return Err(fatal(format!("import takes one input, got {}\n\n{IMPORT_HELP}", a.positional.len())));
    }
    let input: Box<dyn BufRead + Send> = if source == "-" {
        Box::new(BufReader::with_capacity(1 << 20, io::stdin()))
    } else {
        let f = std::fs::File::open(&source).map_err(|e| fatal(format!("cannot open {source}: {e}")))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let mut writer = Writer::open(&db)?;
    let mut progress = progress_printer(None);
    let mut reject = |r: &import::Rejection| esay(&format!("videofeed: {source}:{}: rejected: {}", r.line, r.reason));
    let result = writer.import(input, opts, &mut reject, &mut progress);
    if io::stderr().is_terminal() {
        eprintln!();
    }
    let summary = result?;
    say(&format!("import {}: {summary}", db.display()));
    Ok(if summary.rejected > 0 { 1 } else { 0 })
}

fn cmd_demo(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db", "--videos", "--seed"], &[], DEMO_HELP)?;
    if a.help {
        return help(DEMO_HELP);
    }
    let db = a.db(DEMO_HELP)?;
    let count: u64 = a.number("--videos", 10_000)?;
    let seed: u64 = a.number("--seed", 1)?;
    let mut writer = Writer::open(&db)?;
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut progress = progress_printer(Some(count));
    let mut batch = Vec::with_capacity(import::DEFAULT_BATCH);
    for v in demo::videos(count, seed) {
        batch.push(v);
        if batch.len() == import::DEFAULT_BATCH {
            writer.write_batch(&batch, &mut summary)?;
            summary.lines += batch.len() as u64;
            summary.elapsed = started.elapsed();
            progress(&summary);
            batch.clear();
        }
    }
    writer.write_batch(&batch, &mut summary)?;
    summary.lines += batch.len() as u64;
    summary.elapsed = started.elapsed();
    if io::stderr().is_terminal() {
        eprintln!();
    }
    say(&format!("demo {} seed={seed}: {summary}", db.display()));
    Ok(0)
}

fn cmd_query(raw: &[String]) -> Result<u8, Fatal> {
    const PARAMS: [(&str, &str); 8] = [
        ("--q", "q"),
        ("--region", "region"),
        ("--limit", "limit"),
        ("--offset", "offset"),
        ("--channel", "channel"),
        ("--min-duration", "min_duration"),
        ("--max-duration", "max_duration"),
        ("--sort", "sort"),
    ];
    let flags: Vec<&str> = std::iter::once("--db").chain(PARAMS.iter().map(|(flag, _)| *flag)).collect();
    let a = parse_args(raw, &flags, &[], QUERY_HELP)?;
    if a.help {
        return help(QUERY_HELP);
    }
    let db = a.db(QUERY_HELP)?;
    let mut qs = url::form_urlencoded::Serializer::new(String::new());
    for (flag, param) in PARAMS {
        if let Some(v) = a.get(flag) {
            qs.append_pair(param, &v);
        }
    }
    let query = request::parse(&qs.finish()).map_err(|e| fatal(format!("--{}: {}", e.param, e.message)))?;
    // The serve settings that shape an answer, from the same environment variables.
    let raw_config = videofeed::config::RawServe { db: Some(db.display().to_string()), ..Default::default() };
    let config = videofeed::config::Config::from_raw(&raw_config, &|k| std::env::var(k).ok())?;
    let shared = search::RankIndex::disabled(db.clone(), config.thumbnails.clone());
    let mut reader = search::Reader::with_index(&db, shared)?;
    reader.set_typo_correction(config.typo_fallback);
    reader.set_time_limit(config.query_timeout);
    let answer = reader.answer(&query)?;
    let json = response::feed_json_corrected(&query, &answer.items, &answer.corrected)
        .map_err(|e| fatal(format!("could not encode the answer: {e}")))?;
    let mut out = io::stdout().lock();
    out.write_all(&json)?;
    out.write_all(b"\n")?;
    Ok(0)
}

fn cmd_get(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--socket", "--connect", "--method", "--timeout"], &[], GET_HELP)?;
    if a.help {
        return help(GET_HELP);
    }
    let uri = a
        .positional
        .first()
        .cloned()
        .ok_or_else(|| fatal(format!("get needs a URI such as '/feed?q=music'\n\n{GET_HELP}")))?;
    let method = a.get("--method").unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
    let timeout = Some(Duration::from_secs(a.number("--timeout", 5u64)?.max(1)));
    let params = client::get_params(&method, &uri);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let answer = match (a.get("--socket"), a.get("--connect")) {
        (Some(path), None) => UnixStream::connect(&path)
            .and_then(|mut s| {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                client::request(&mut s, 1, false, &pairs, &[])
            })
            .map_err(|e| fatal(format!("no answer from {path}: {e}")))?,
        (None, Some(addr)) => TcpStream::connect(&addr)
            .and_then(|mut s| {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                client::request(&mut s, 1, false, &pairs, &[])
            })
            .map_err(|e| fatal(format!("no answer from {addr}: {e}")))?,
        _ => return Err(fatal(format!("give exactly one of --socket PATH or --connect HOST:PORT\n\n{GET_HELP}"))),
    };
    let mut out = io::stdout().lock();
    out.write_all(&answer.stdout)?;
    if !answer.stdout.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    if !answer.stderr.is_empty() {
        esay(&format!("stderr from the application: {}", String::from_utf8_lossy(&answer.stderr)));
    }
    Ok(if answer.status() >= 500 { 1 } else { 0 })
}

fn cmd_backup(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db"], &[], BACKUP_HELP)?;
    if a.help {
        return help(BACKUP_HELP);
    }
    let db = a.db(BACKUP_HELP)?;
    let [out] = a.positional.as_slice() else {
        return Err(fatal(format!("backup needs one output path\n\n{BACKUP_HELP}")));
    };
    let out = PathBuf::from(out);
    if out.exists() {
        return Err(fatal(format!("{} exists already: choose a new file name", out.display())));
    }
    let started = Instant::now();
    videofeed::store::db::backup(&db, &out)?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    say(&format!(
        "backup {} -> {}: {bytes} bytes in {:.2} s",
        db.display(),
        out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(0)
}
