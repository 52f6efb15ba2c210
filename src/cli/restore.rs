//! `videofeed restore`: puts a backup's content into the live database while it
//! serves (SQLite's backup API), never by renaming a file over it.

use std::path::PathBuf;
use std::time::Instant;

use super::{Fatal, fatal, help, parse_args, say};

pub(super) const RESTORE_HELP: &str = "\
videofeed restore --db LIVE BACKUP

Replaces the content of the live database LIVE with the backup's, while the responders
keep serving it: the backup is copied beside LIVE (VACUUM INTO, upgraded to this
binary's schema), then written into LIVE in one transaction through SQLite's backup API.
Readers see the old content or the new, never a mix; writes wait for it. Every row
written after the backup is gone afterwards. The data version moves past both files',
so the response cache, ETags and the rank index (rebuilt in the background, SQL
answering meanwhile) never serve the replaced content. LiteSpeed's cache keeps old
answers until max-age (300 s) unless purged: send any write through the write API
behind LiteSpeed, or X-LiteSpeed-Purge: tag=feed from an admin page.
Needs free space for one copy of the backup beside LIVE. Do not `mv` a file over a
live database: its -wal/-shm belong to the open file.

Example:
  videofeed restore --db /var/lib/videofeed/videos.db /var/backups/videos-2026-12-07T030000.db";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db"], &[], RESTORE_HELP)?;
    if a.help {
        return help(RESTORE_HELP);
    }
    let db = a.db(RESTORE_HELP)?;
    let [backup] = a.positional.as_slice() else {
        return Err(fatal(format!("restore needs one backup file\n\n{RESTORE_HELP}")));
    };
    let backup = PathBuf::from(backup);
    if !backup.is_file() {
        return Err(fatal(format!("{} is not a file", backup.display())));
    }
    if !db.is_file() {
        return Err(fatal(format!(
            "{} does not exist: to start from a backup, copy it there (nothing serves it yet)",
            db.display()
        )));
    }
    let started = Instant::now();
    let done = videofeed::store::db::restore(&db, &backup)?;
    say(&format!(
        "restore {} -> {}: {} videos, generation {} in {:.2} s",
        backup.display(),
        db.display(),
        done.videos,
        done.generation,
        started.elapsed().as_secs_f64()
    ));
    super::leave_index_file(&db);
    Ok(0)
}
