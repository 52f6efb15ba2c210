//! `videofeed backup`: a consistent copy of the database while it serves (VACUUM INTO).

use std::path::PathBuf;
use std::time::Instant;

use super::{Fatal, fatal, help, parse_args, say};

pub(super) const BACKUP_HELP: &str = "\
videofeed backup --db PATH OUT

Writes a consistent, compacted copy of the database to OUT (which must not exist) with
SQLite's VACUUM INTO. Safe while the responder serves and while imports run: the copy is
one snapshot. Restore it while serving with `videofeed restore --db PATH OUT`.

Example (a name per second, so a cron job can run it many times a day):
  videofeed backup --db /var/lib/videofeed/videos.db /var/backups/videos-$(date +%FT%H%M%S).db";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
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
