//! `videofeed init`: create or check (and migrate) the schema.

use videofeed::store::Store;

use super::{Fatal, help, parse_args, say};

pub(super) const INIT_HELP: &str = "\
videofeed init --db PATH

Creates the database with the videofeed schema, or checks an existing one. Idempotent.

Example:
  videofeed init --db /srv/videofeed/videos.db";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--db"], &[], INIT_HELP)?;
    if a.help {
        return help(INIT_HELP);
    }
    let db = a.db(INIT_HELP)?;
    let writer = Store::open(&db)?;
    say(&format!(
        "{}: videofeed schema {} ready, {} videos",
        db.display(),
        videofeed::store::db::SCHEMA_VERSION,
        writer.count()?
    ));
    if let Some((videos, took)) = videofeed::store::db::take_reindexed() {
        say(&format!(
            "{}: full-text index rewritten as search text (rules version {}): {videos} videos in {:.1} s",
            db.display(),
            videofeed::text::VERSION,
            took.as_secs_f64()
        ));
    }
    drop(writer);
    super::leave_index_file(&db);
    Ok(0)
}
