//! The `videofeed` command: subcommands and flags (one file per subcommand,
//! arguments lexed by `lexopt`), logging set-up, and errors turned into exit
//! codes (0 ok, 1 finished with rejected lines or a 5xx answer, 2 fatal).
//! Standard output is used only by the admin commands; `serve` never writes
//! to it (under LiteSpeed it is a dead socket).

mod backup;
mod check_thumbnails;
mod demo;
mod diff;
mod enrich_channels;
mod get;
mod heartbeat;
mod import;
mod init;
mod job;
mod query;
mod replica;
mod restore;
mod serve;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
  diff     check that the rank index answers exactly as SQL on this database and a query log
  restore  put a backup's content into the live database while it serves (SQLite's backup API)
  heartbeat          stamp the writer's heartbeat every few seconds (replicas report their data's age)
  replica            keep a read replica's database current from a Litestream replica
  check-thumbnails   check thumbnail URLs in the background; the feed then hides broken ones
  enrich-channels    fetch channel metadata (verified, avatar, ...) from an HTTP JSON source

Run `videofeed <command> --help` for a command's options and examples.
Options: -h, --help   this text;  -V, --version   the version";

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
#[derive(Default)]
struct Args {
    flags: HashMap<String, String>,
    positional: Vec<String>,
    help: bool,
}

/// Lexes `args` with lexopt: `valued` flags take a value (`--db PATH` or `--db=PATH`,
/// even one starting with `-`), `switches` take none, `-h`/`--help` asks for `usage`.
fn parse_args(args: &[String], valued: &[&str], switches: &[&str], usage: &str) -> Result<Args, Fatal> {
    use lexopt::Arg;
    let mut out = Args::default();
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    let text = |v: std::ffi::OsString, what: &str| {
        v.into_string().map_err(|v| fatal(format!("{what} is not valid UTF-8: {}", v.to_string_lossy())))
    };
    while let Some(arg) = parser.next().map_err(|e| fatal(format!("{e}\n\n{usage}")))? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => out.help = true,
            Arg::Long(name) => {
                let flag = format!("--{name}");
                if switches.contains(&flag.as_str()) {
                    out.flags.insert(flag, String::new());
                } else if valued.contains(&flag.as_str()) {
                    let value = parser.value().map_err(|_| fatal(format!("{flag} needs a value\n\n{usage}")))?;
                    let value = text(value, &flag)?;
                    out.flags.insert(flag, value);
                } else {
                    return Err(fatal(format!("unknown option {flag}\n\n{usage}")));
                }
            }
            Arg::Short(c) => return Err(fatal(format!("unknown option -{c}\n\n{usage}"))),
            Arg::Value(v) => out.positional.push(text(v, "an argument")?),
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

/// Runs the command line: dispatches a subcommand and turns its result into an exit code.
pub fn run() -> ExitCode {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve::run(&args[1..]),
        Some("init") => init::run(&args[1..]),
        Some("import") => import::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("query") => query::run(&args[1..]),
        Some("get") => get::run(&args[1..]),
        Some("backup") => backup::run(&args[1..]),
        Some("diff") => diff::run(&args[1..]),
        Some("restore") => restore::run(&args[1..]),
        Some("heartbeat") => heartbeat::run(&args[1..]),
        Some("replica") => replica::run(&args[1..]),
        Some("check-thumbnails") => check_thumbnails::run(&args[1..]),
        Some("enrich-channels") => enrich_channels::run(&args[1..]),
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

/// After a command that leaves a database ready to serve (`init`, `import`, `demo`,
/// `restore`): writes its rank index file, so that the responders started next (all
/// of LiteSpeed's at once) map it instead of each building it; says how long it took.
/// A failure is a warning: the data is written, and each responder builds the index.
/// Skipped with `VIDEOFEED_RANK_INDEX=off`.
fn leave_index_file(db: &std::path::Path) {
    if std::env::var("VIDEOFEED_RANK_INDEX").is_ok_and(|v| v.trim().eq_ignore_ascii_case("off")) {
        return;
    }
    let started = std::time::Instant::now();
    match videofeed::search::index::write_index_file(db) {
        Ok((generation, true)) => say(&format!(
            "rank index file written for generation {generation} in {:.2} s ({}.rank): responders map it at start",
            started.elapsed().as_secs_f64(),
            db.display()
        )),
        Ok((_, false)) => {}
        Err(e) => esay(&format!(
            "videofeed: warning: the rank index file was not written ({e}); each responder builds it at start"
        )),
    }
}

/// Writes a line to stderr, ignoring a closed stderr.
fn esay(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

fn help(text: &str) -> Result<u8, Fatal> {
    say(text);
    Ok(0)
}
