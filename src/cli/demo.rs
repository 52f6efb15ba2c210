//! `videofeed demo`: a deterministic, realistic corpus into the database, or
//! into a JSON Lines file in the import format (a test corpus with nothing from
//! outside the repository).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::time::Instant;

use videofeed::store::{self, ImportSummary, Store, demo};

use super::import::progress_printer;
use super::{Fatal, fatal, help, parse_args, say};

pub(super) const DEMO_HELP: &str = "\
videofeed demo (--db PATH | --out FILE.jsonl|-) [--videos N] [--seed S]

Generates N (default 10000) realistic videos (Zipf-distributed title words,
2,000 channels, regions with GLOBAL among them, durations, dates and view
counts), the same ones for the same seed (default 1). --db writes them to the
database (creating it if needed); --out writes them as JSON Lines in the
import format (- for standard output), for `videofeed import`, the write API
or another tool. Give one or both.

Examples:
  videofeed demo --db /tmp/demo.db --videos 50000
  videofeed demo --out /tmp/videos.jsonl --videos 100000 --seed 7
  videofeed import --db /tmp/videos.db /tmp/videos.jsonl";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db", "--out", "--videos", "--seed"], &[], DEMO_HELP)?;
    if a.help {
        return help(DEMO_HELP);
    }
    let count: u64 = a.number("--videos", 10_000)?;
    let seed: u64 = a.number("--seed", 1)?;
    let out = a.get("--out");
    let db = if out.is_some() && a.get("--db").is_none() && std::env::var_os("VIDEOFEED_DB").is_none() {
        None
    } else {
        Some(a.db(DEMO_HELP)?)
    };
    let mut file: Option<Box<dyn Write>> = match out.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufWriter::new(io::stdout().lock()))),
        Some(path) => Some(Box::new(BufWriter::new(
            File::create(path).map_err(|e| fatal(format!("--out {path}: {e} (does the directory exist?)")))?,
        ))),
    };
    let mut writer = db.as_deref().map(Store::open).transpose()?;
    let started = Instant::now();
    let mut summary = ImportSummary::default();
    let mut progress = progress_printer(Some(count));
    let mut batch = Vec::with_capacity(store::DEFAULT_BATCH);
    let mut flush = |batch: &mut Vec<store::Video>, summary: &mut ImportSummary| -> Result<(), Fatal> {
        if let Some(w) = writer.as_mut() {
            w.write_batch(batch, summary)?;
        }
        if let Some(f) = file.as_mut() {
            for v in batch.iter() {
                writeln!(f, "{}", v.to_json_line()).map_err(|e| fatal(format!("--out: {e}")))?;
            }
        }
        summary.lines += batch.len() as u64;
        summary.elapsed = started.elapsed();
        batch.clear();
        Ok(())
    };
    for v in demo::videos(count, seed) {
        batch.push(v);
        if batch.len() == store::DEFAULT_BATCH {
            flush(&mut batch, &mut summary)?;
            progress(&summary);
        }
    }
    flush(&mut batch, &mut summary)?;
    if let Some(mut f) = file.take() {
        f.flush().map_err(|e| fatal(format!("--out: {e}")))?;
    }
    if io::stderr().is_terminal() {
        eprintln!();
    }
    match (&db, &out) {
        (Some(db), _) => {
            say(&format!("demo {} seed={seed}: {summary}", db.display()));
            super::leave_index_file(db);
        }
        (None, Some(path)) if path != "-" => say(&format!("demo {path} seed={seed}: {count} videos written")),
        _ => {}
    }
    Ok(0)
}
