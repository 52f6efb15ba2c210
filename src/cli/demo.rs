//! `videofeed demo`: a deterministic, realistic corpus into the database.

use std::io::{self, IsTerminal};
use std::time::Instant;

use videofeed::store::{self, ImportSummary, Store, demo};

use super::import::progress_printer;
use super::{Fatal, help, parse_args, say};

pub(super) const DEMO_HELP: &str = "\
videofeed demo --db PATH [--videos N] [--seed S]

Generates N (default 10000) realistic videos, the same ones for the same seed (default 1),
and writes them to the database (creating it if needed).

Example:
  videofeed demo --db /tmp/demo.db --videos 50000";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db", "--videos", "--seed"], &[], DEMO_HELP)?;
    if a.help {
        return help(DEMO_HELP);
    }
    let db = a.db(DEMO_HELP)?;
    let count: u64 = a.number("--videos", 10_000)?;
    let seed: u64 = a.number("--seed", 1)?;
    let mut writer = Store::open(&db)?;
    let started = Instant::now();
    let mut summary = ImportSummary::default();
    let mut progress = progress_printer(Some(count));
    let mut batch = Vec::with_capacity(store::DEFAULT_BATCH);
    for v in demo::videos(count, seed) {
        batch.push(v);
        if batch.len() == store::DEFAULT_BATCH {
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
