//! `videofeed import`: JSON Lines into the database, with progress on a terminal.

use std::io::{self, BufRead, BufReader, IsTerminal};
use std::time::{Duration, Instant};

use videofeed::store::{self, ImportOptions, ImportSummary, Store};

use super::{Fatal, esay, fatal, help, parse_args, say};

pub(super) const IMPORT_HELP: &str = "\
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

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db", "--batch-size"], &["--strict", "--no-bulk"], IMPORT_HELP)?;
    if a.help {
        return help(IMPORT_HELP);
    }
    let db = a.db(IMPORT_HELP)?;
    let opts = ImportOptions {
        bulk_when_empty: !a.flags.contains_key("--no-bulk"),
        batch_size: a.number("--batch-size", store::DEFAULT_BATCH)?.max(1),
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
    let mut writer = Store::open(&db)?;
    let mut progress = progress_printer(None);
    let mut reject = |r: &store::Rejection| esay(&format!("videofeed: {source}:{}: rejected: {}", r.line, r.reason));
    let result = writer.import(input, opts, &mut reject, &mut progress);
    if io::stderr().is_terminal() {
        eprintln!();
    }
    let summary = result?;
    say(&format!("import {}: {summary}", db.display()));
    super::leave_index_file(&db);
    Ok(if summary.rejected > 0 { 1 } else { 0 })
}

/// Prints progress on a terminal at most twice a second (with the share done and the
/// time left when the total is known); silent in pipes, so logs and scripts stay clean.
pub(super) fn progress_printer(total: Option<u64>) -> impl FnMut(&ImportSummary) {
    let tty = io::stderr().is_terminal();
    let mut last = Instant::now();
    move |s: &ImportSummary| {
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
