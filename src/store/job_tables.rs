//! The tables the background jobs fill (`thumbnail_checks`, `channels`): their
//! rows, how the writer thread writes them, and the read-only queries that
//! plan a run (what is missing, changed, or older than the refresh age).

use rusqlite::{Connection, params};

/// One thumbnail check, as stored in `thumbnail_checks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailCheck {
    /// The video.
    pub video_id: String,
    /// The URL checked (the video's thumbnail at planning time).
    pub url: String,
    /// Whether it loads.
    pub ok: bool,
    /// The final HTTP status, if one came.
    pub status: Option<u16>,
    /// What went wrong, in words.
    pub error: Option<String>,
    /// A same-video URL that loads, when `url` does not.
    pub alternative: Option<String>,
    /// Unix seconds.
    pub checked_at: i64,
}

/// One channel's enrichment data, as stored in `channels`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelRecord {
    /// The channel name as in `videos.channel`.
    pub name: String,
    /// Whether the source knows it.
    pub found: bool,
    /// Display name.
    pub display_name: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Verified flag.
    pub verified: Option<bool>,
    /// Subscriber count.
    pub subscriber_count: Option<i64>,
    /// Unix seconds.
    pub fetched_at: i64,
}

/// Upserts checks (the writer thread's part of `Op::Thumbnails`); returns rows written.
///
/// # Errors
/// SQLite errors; the caller's transaction then rolls back.
pub fn write_thumbnail_checks(conn: &Connection, checks: &[ThumbnailCheck]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO thumbnail_checks (video_id, url, ok, status, error, alternative, checked_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM videos WHERE id = ?1)
         ON CONFLICT (video_id) DO UPDATE SET url = excluded.url, ok = excluded.ok, status = excluded.status,
             error = excluded.error, alternative = excluded.alternative, checked_at = excluded.checked_at",
    )?;
    let mut n = 0u64;
    for c in checks {
        n += u64::try_from(stmt.execute(params![
            c.video_id,
            c.url,
            c.ok,
            c.status,
            c.error,
            c.alternative,
            c.checked_at
        ])?)
        .unwrap_or(0);
    }
    Ok(n)
}

/// Upserts channel records (the writer thread's part of `Op::Channels`); returns rows written.
///
/// # Errors
/// SQLite errors; the caller's transaction then rolls back.
pub fn write_channels(conn: &Connection, channels: &[ChannelRecord]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO channels (name, found, display_name, avatar_url, verified, subscriber_count, fetched_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE SET found = excluded.found, display_name = excluded.display_name,
             avatar_url = excluded.avatar_url, verified = excluded.verified,
             subscriber_count = excluded.subscriber_count, fetched_at = excluded.fetched_at",
    )?;
    let mut n = 0u64;
    for c in channels {
        n += u64::try_from(stmt.execute(params![
            c.name,
            c.found,
            c.display_name,
            c.avatar_url,
            c.verified,
            c.subscriber_count,
            c.fetched_at
        ])?)
        .unwrap_or(0);
    }
    Ok(n)
}

/// Videos whose thumbnail has no check, a check of another URL, or one older than
/// `due_before` (Unix seconds).
///
/// # Errors
/// SQLite errors.
pub fn due_thumbnail_count(conn: &Connection, due_before: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM videos v LEFT JOIN thumbnail_checks t ON t.video_id = v.id
         WHERE t.video_id IS NULL OR t.url IS NOT v.thumbnail OR t.checked_at < ?1",
        [due_before],
        |r| r.get(0),
    )
}

/// The next page of due thumbnails after row id `after`: (row id, video id, URL), by row id.
///
/// # Errors
/// SQLite errors.
pub fn due_thumbnail_page(
    conn: &Connection,
    after: i64,
    due_before: i64,
    page: i64,
) -> rusqlite::Result<Vec<(i64, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.rowid, v.id, v.thumbnail FROM videos v
         LEFT JOIN thumbnail_checks t ON t.video_id = v.id
         WHERE v.rowid > ?1 AND (t.video_id IS NULL OR t.url IS NOT v.thumbnail OR t.checked_at < ?2)
         ORDER BY v.rowid LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after, due_before, page], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Channels named in videos with no entry or one fetched before `due_before`, by name.
///
/// # Errors
/// SQLite errors.
pub fn due_channels(conn: &Connection, due_before: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT v.channel FROM videos v LEFT JOIN channels c ON c.name = v.channel
         WHERE c.name IS NULL OR c.fetched_at < ?1 ORDER BY v.channel",
    )?;
    let rows = stmt.query_map([due_before], |r| r.get(0))?;
    rows.collect()
}
