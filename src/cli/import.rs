//! `videofeed import`: JSON Lines into the database, with progress on a terminal.

use std::io::{self, BufRead, BufReader, IsTerminal};
use std::time::{Duration, Instant};

use videofeed::store::{self, ImportOptions, ImportSummary, Store};

use super::{Fatal, esay, fatal, help, parse_args, say};

pub(super) const IMPORT_HELP: &str = "\
videofeed import --db PATH [--strict] [--batch-size N] [--no-bulk] [--assume-utc] [--lenient] [FILE|-]
videofeed import --db PATH --sync [--max-delete N|N%] [--dry-run] [--assume-utc] FILE

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
--sync makes the catalogue equal to FILE (a whole export): its videos are upserted,
then the videos FILE does not hold are deleted, in batches of 10000 and 2000 rows (short
write locks: a serving responder goes on answering and writing). FILE is read once first,
changing nothing: a sync with any rejected line changes nothing (fix the lines, or import
without --sync), and one that would delete more than --max-delete videos is refused,
saying how many (default 10% of the catalogue; N videos, or N% of it).
  --dry-run      print what the sync would insert, update, leave and delete (the first
                 ids to delete), and change nothing
Exit status: 0 all lines imported, 1 some lines rejected, 2 stopped by an error or
refused (--max-delete).

Examples:
  videofeed import --db videos.db videos.jsonl
  zcat videos.jsonl.gz | videofeed import --db videos.db --strict -
  mysql_export_to_jsonl | videofeed import --db videos.db --assume-utc -
  videofeed import --db videos.db --sync --dry-run catalogue-2026-12-07.jsonl
  videofeed import --db videos.db --sync --max-delete 15% catalogue-2026-12-07.jsonl";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(
        raw,
        &["--db", "--batch-size", "--max-delete"],
        &["--strict", "--no-bulk", "--assume-utc", "--lenient", "--sync", "--dry-run"],
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
    let sync = a.flags.contains_key("--sync");
    if !sync && (a.flags.contains_key("--dry-run") || a.flags.contains_key("--max-delete")) {
        return Err(fatal(format!("--dry-run and --max-delete go with --sync\n\n{IMPORT_HELP}")));
    }
    if sync {
        if source == "-" {
            return Err(fatal(format!(
                "--sync needs a FILE (it is read twice: a plan, then the changes)\n\n{IMPORT_HELP}"
            )));
        }
        let max_delete = MaxDelete::parse(a.get("--max-delete").as_deref())?;
        return run_sync(&db, &source, opts, max_delete, a.flags.contains_key("--dry-run"));
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

/// `--max-delete`: how many videos a sync may delete.
#[derive(Debug, Clone, Copy, PartialEq)]
enum MaxDelete {
    /// At most this many.
    Count(u64),
    /// At most this share of the catalogue, in percent.
    Percent(f64),
}

impl MaxDelete {
    /// The default: 10% of the catalogue.
    const DEFAULT: MaxDelete = MaxDelete::Percent(10.0);

    fn parse(value: Option<&str>) -> Result<MaxDelete, Fatal> {
        let Some(v) = value.map(str::trim) else { return Ok(MaxDelete::DEFAULT) };
        let bad = || {
            fatal(format!("--max-delete must be a number of videos (500) or a share of the catalogue (15%), got {v:?}"))
        };
        match v.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxDelete::Percent(p)),
                _ => Err(bad()),
            },
            None => v.parse::<u64>().map(MaxDelete::Count).map_err(|_| bad()),
        }
    }

    /// The most a sync may delete from a catalogue of `catalogue` videos.
    fn limit(self, catalogue: u64) -> u64 {
        match self {
            MaxDelete::Count(n) => n,
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a share of a count, floored, within 0..=catalogue"
            )]
            MaxDelete::Percent(p) => ((catalogue as f64) * p / 100.0).floor() as u64,
        }
    }

    fn describe(self, catalogue: u64) -> String {
        match self {
            MaxDelete::Count(n) => format!("--max-delete {n}"),
            MaxDelete::Percent(p) => format!("--max-delete {p}% of {catalogue} = {}", self.limit(catalogue)),
        }
    }
}

/// `import --sync`: plan (read FILE, change nothing), check, then upsert and delete.
fn run_sync(
    db: &std::path::Path,
    source: &str,
    opts: ImportOptions,
    max_delete: MaxDelete,
    dry_run: bool,
) -> Result<u8, Fatal> {
    let open = || -> Result<BufReader<std::fs::File>, Fatal> {
        let f = std::fs::File::open(source).map_err(|e| fatal(format!("cannot open {source}: {e}")))?;
        Ok(BufReader::with_capacity(1 << 20, f))
    };
    let mut writer = Store::open(db)?;
    let mut kinds: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut reject = |r: &store::Rejection| {
        esay(&format!("videofeed: {source}:{}: rejected: {}", r.line, r.reason));
        *kinds.entry(reason_kind(&r.reason)).or_default() += 1;
    };
    let started = Instant::now();
    let plan = writer.sync_plan(open()?, opts.rules, dry_run, &mut reject)?;
    for (kind, n) in &kinds {
        esay(&format!("videofeed: rejected: {n} line{} {kind}", if *n == 1 { "" } else { "s" }));
    }
    let deletes = u64::try_from(plan.to_delete.len()).unwrap_or(u64::MAX);
    let limit = max_delete.limit(plan.catalogue);
    say(&format!(
        "sync {}: {source} holds {} lines ({} rejected); the catalogue holds {} videos, {deletes} of them not in {source}",
        db.display(),
        plan.lines,
        plan.rejected,
        plan.catalogue
    ));
    let over = deletes > limit;
    if dry_run {
        if let Some(w) = plan.would {
            say(&format!(
                "dry run: would insert {}, update {}, leave {} unchanged, delete {}",
                w.inserted, w.updated, w.unchanged, w.deleted
            ));
        }
        for id in plan.to_delete.iter().take(20) {
            say(&format!("would delete: {id}"));
        }
        if deletes > 20 {
            say(&format!("would delete: … and {} more", deletes - 20));
        }
        if over {
            say(&format!(
                "the sync would be refused: {deletes} deletions is more than {}",
                max_delete.describe(plan.catalogue)
            ));
        }
        say("dry run: nothing was changed");
        return Ok(if plan.rejected > 0 {
            1
        } else if over {
            2
        } else {
            0
        });
    }
    if plan.rejected > 0 {
        esay(&format!(
            "videofeed: sync refused: {} line{} of {source} {} rejected (above): nothing was changed. Fix them, \
             or import without --sync to upsert the valid lines and delete nothing",
            plan.rejected,
            if plan.rejected == 1 { "" } else { "s" },
            if plan.rejected == 1 { "is" } else { "are" }
        ));
        return Ok(1);
    }
    if over {
        esay(&format!(
            "videofeed: sync refused: it would delete {deletes} of {} videos, more than {}: nothing was changed. \
             Check {source} is the whole catalogue (--dry-run lists the ids); if these deletions are right, \
             pass --max-delete {deletes}",
            plan.catalogue,
            max_delete.describe(plan.catalogue)
        ));
        return Ok(2);
    }
    // Upserts (never a bulk load: the catalogue is live), then the deletions.
    let opts = ImportOptions { bulk_when_empty: plan.catalogue == 0 && opts.bulk_when_empty, ..opts };
    let mut progress = progress_printer(Some(plan.lines));
    let mut quiet = |_: &store::Rejection| {};
    let summary = writer.import(open()?, opts, &mut quiet, &mut progress)?;
    let tty = io::stderr().is_terminal();
    let deleted = writer.delete_ids(&plan.to_delete, &mut |n| {
        if tty {
            eprint!("\r{n} of {deletes} deleted   ");
        }
    })?;
    if tty {
        eprintln!();
    }
    say(&format!(
        "sync {}: lines={} inserted={} updated={} unchanged={} deleted={deleted} seconds={:.2}",
        db.display(),
        summary.lines,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        started.elapsed().as_secs_f64()
    ));
    super::leave_index_file(db);
    // A line that turned bad between the plan and the import (the file changed) was
    // reported by neither: say so rather than call the catalogue equal to the file.
    if summary.rejected > 0 {
        esay(&format!(
            "videofeed: {} lines were rejected on the second read: {source} changed during the sync",
            summary.rejected
        ));
        return Ok(1);
    }
    Ok(0)
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
