//! `videofeed import`: JSON Lines into the database, with progress on a terminal.

use std::io::{self, BufRead, BufReader, IsTerminal};
use std::time::{Duration, Instant};

use videofeed::store::{self, ImportOptions, ImportSummary, Store};

use super::{Fatal, esay, fatal, help, parse_args, say};

pub(super) const IMPORT_HELP: &str = "\
videofeed import --db PATH [--strict] [--batch-size N] [--no-bulk] [--assume-utc] [--lenient] [FILE|-]

Imports JSON Lines (one video per line: id, title, channel, duration_seconds, thumbnail,
region, optional published_at and view_count) and upserts by id. A bad line is reported
on stderr with its line number and reason and counted; the import ends with the count of
rejected lines per reason. With --strict the first bad line stops the import and nothing
of its batch (default 10000 rows) is written. Numbers may be numeric strings (\"183\"), and
published_at RFC 3339 or Unix seconds.
  --assume-utc   published_at without a time zone (2024-05-01 12:00:00, a MySQL DATETIME,
                 or a bare date 2024-05-01) is UTC, instead of a rejected line
  --lenient      a bad optional field (published_at, view_count) imports the row without
                 it (null, 0) and a warning, instead of rejecting the row
Into an empty database the whole input is one batch (all or nothing) and the full-text
index is built once at the end, about 3x faster; --no-bulk keeps 10000-row batches.
Exit status: 0 all lines imported, 1 some lines rejected, 2 stopped by an error.

Examples:
  videofeed import --db videos.db videos.jsonl
  zcat videos.jsonl.gz | videofeed import --db videos.db --strict -
  mysql_export_to_jsonl | videofeed import --db videos.db --assume-utc -";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(
        raw,
        &["--db", "--batch-size"],
        &["--strict", "--no-bulk", "--assume-utc", "--lenient"],
        IMPORT_HELP,
    )?;
    if a.help {
        return help(IMPORT_HELP);
    }
    let db = a.db(IMPORT_HELP)?;
    let opts = ImportOptions {
        bulk_when_empty: !a.flags.contains_key("--no-bulk"),
        batch_size: a.number("--batch-size", store::DEFAULT_BATCH)?.max(1),
        strict: a.flags.contains_key("--strict"),
        rules: store::ParseRules {
            assume_utc: a.flags.contains_key("--assume-utc"),
            lenient: a.flags.contains_key("--lenient"),
        },
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
    // Rejections (and rows kept without a field) by kind of reason, for the summary.
    let mut kinds: std::collections::BTreeMap<(bool, String), u64> = std::collections::BTreeMap::new();
    let mut reject = |r: &store::Rejection| {
        let what = if r.kept { "kept without a field" } else { "rejected" };
        esay(&format!("videofeed: {source}:{}: {what}: {}", r.line, r.reason));
        *kinds.entry((r.kept, reason_kind(&r.reason))).or_default() += 1;
    };
    let result = writer.import(input, opts, &mut reject, &mut progress);
    if io::stderr().is_terminal() {
        eprintln!();
    }
    let summary = result?;
    say(&format!("import {}: {summary}", db.display()));
    for ((kept, kind), n) in &kinds {
        let what = if *kept { "kept without a field" } else { "rejected" };
        esay(&format!("videofeed: {what}: {n} line{} {kind}", if *n == 1 { "" } else { "s" }));
    }
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

/// The kind of a rejection reason, for counting: the reason without the value it
/// quotes (after `, got`, ` (`, `: `) and with numbers as `N`.
fn reason_kind(reason: &str) -> String {
    let cut = [", got ", " (", ": "].iter().filter_map(|m| reason.find(m)).min().unwrap_or(reason.len());
    let mut kind = String::with_capacity(cut);
    let mut in_number = false;
    for c in reason.get(..cut).unwrap_or(reason).chars() {
        if c.is_ascii_digit() {
            if !in_number {
                kind.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            kind.push(c);
        }
    }
    kind
}

#[cfg(test)]
mod tests {
    #[test]
    fn reasons_are_counted_by_kind() {
        assert_eq!(
            super::reason_kind("region must be two letters or GLOBAL, got \"USA\""),
            "region must be two letters or GLOBAL"
        );
        assert_eq!(super::reason_kind("line is longer than 1048576 bytes"), "line is longer than N bytes");
        assert_eq!(
            super::reason_kind("published_at has no time zone (\"2024-05-01 12:00:00\"): import with --assume-utc"),
            "published_at has no time zone"
        );
        assert_eq!(super::reason_kind("not valid JSON: EOF while parsing"), "not valid JSON");
    }
}
