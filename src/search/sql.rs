//! Every SQL statement the read side runs, and the row decoder: the feed
//! statements (plain and filtered, with the thumbnail policy's hidden
//! condition and the bm25 call filled in), the row fetch of the fast path, the
//! meta counters an answer is keyed on, and FTS5's vocabulary.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use rusqlite::Connection;

use super::{DataVersion, Error, FeedItem, Sort, ThumbnailPolicy, bm25};

/// What every result row carries besides the video's columns 0-5: the last
/// thumbnail check of its current thumbnail, the channel's enrichment data, the
/// video's `published_at` and view count (columns 7-14; column 6 is the rank). Joined by primary key, so it costs two lookups per row shown.
pub const EXTRAS: &str =
    "t.ok, t.alternative, c.display_name, c.avatar_url, c.verified, c.subscriber_count, v.published_at, v.view_count";
/// The joins behind [`EXTRAS`].
pub const EXTRA_JOINS: &str = "LEFT JOIN thumbnail_checks t ON t.video_id = v.id AND t.url = v.thumbnail \
     LEFT JOIN channels c ON c.name = v.channel AND c.found = 1";

/// The ranked search. `?1` match expression, `?2` region, `?3` limit, `?4` offset;
/// `{hidden}` is [`hidden`], `{bm25}` [`bm25::sql`].
pub const FEED_SQL: &str = "\
SELECT v.id, v.title, v.channel, v.duration_seconds, v.thumbnail, v.region,
       {bm25} AS rank, {extras}
FROM videos_fts JOIN videos AS v ON v.rowid = videos_fts.rowid {joins}
WHERE videos_fts MATCH ?1 AND v.region IN (?2, 'GLOBAL') AND NOT {hidden}
ORDER BY rank, v.rowid
LIMIT ?3 OFFSET ?4";

/// The filtered search (channel, durations, order): `?1` match, `?2` region, `?3` limit,
/// `?4` offset, `?5` the channel names (a JSON array) or NULL, `?6` min duration or NULL, `?7` max duration or NULL;
/// `{order}` is one of the fixed ORDER BY clauses below. Always SQL-ranked.
pub const FILTERED_SQL: &str = "\
SELECT v.id, v.title, v.channel, v.duration_seconds, v.thumbnail, v.region,
       {bm25} AS rank, {extras}
FROM videos_fts JOIN videos AS v ON v.rowid = videos_fts.rowid {joins}
WHERE videos_fts MATCH ?1 AND v.region IN (?2, 'GLOBAL') AND NOT {hidden}
  AND (?5 IS NULL OR v.channel IN (SELECT value FROM json_each(?5)))
  AND (?6 IS NULL OR v.duration_seconds >= ?6)
  AND (?7 IS NULL OR v.duration_seconds <= ?7)
ORDER BY {order}
LIMIT ?3 OFFSET ?4";

/// The stored channel names whose key (`videofeed_channel_key`, `text::channel_key`)
/// is `?1` (the `channel_keys` table the triggers keep); at most 64.
pub const CHANNEL_NAMES_SQL: &str = "SELECT name FROM channel_keys WHERE key = ?1 ORDER BY name LIMIT 64";

/// The matches of a search counted (the feed's `total`): `?1` match, `?2` region,
/// `?3` the most to count, `?4` the channel names or NULL, `?5`/`?6` durations.
pub const COUNT_SQL: &str = "\
SELECT count(*) FROM (SELECT 1 FROM videos_fts JOIN videos AS v ON v.rowid = videos_fts.rowid
WHERE videos_fts MATCH ?1 AND v.region IN (?2, 'GLOBAL') AND {count_where}
  AND (?4 IS NULL OR v.channel IN (SELECT value FROM json_each(?4)))
LIMIT ?3)";

/// A counting statement ([`COUNT_SQL`]) with the thumbnail policy and the duration filters.
pub fn counting(template: &str, policy: &ThumbnailPolicy) -> String {
    template.replace(
        "{count_where}",
        &format!(
            "NOT {} AND (?5 IS NULL OR v.duration_seconds >= ?5) AND (?6 IS NULL OR v.duration_seconds <= ?6)",
            hidden(policy)
        ),
    )
}

/// One walk of browsing (no query): the rows of region `?2` (and of channel `?1`,
/// or every channel when it is NULL) within the durations `?4`/`?5`, in the order;
/// each row's id and order key (view count or date), read from the index alone
/// (it holds the duration too). `Reader::browse` reads a walk only as far as its
/// page needs, leaves out the thumbnail policy's hidden rows itself (the set it
/// keeps in memory) and merges the walks. `INDEXED BY` pins the index whose order
/// is the answer's, so a page costs about its own rows at any size.
pub const WALK_SQL: &str = "\
SELECT v.rowid, {key} FROM videos AS v INDEXED BY {index}
WHERE v.region = ?2 AND {channel}
  AND (?4 IS NULL OR v.duration_seconds >= ?4) AND (?5 IS NULL OR v.duration_seconds <= ?5)
ORDER BY {order}";

/// The rows of one walk's region (and channel `?1`) with the durations `?4`/`?5`
/// (written as bounds, not `?4 IS NULL OR …`, so a region's count is a range of
/// `(region, duration_seconds)`), counted up to `?3` from an index alone (the thumbnail policy is applied by
/// subtracting [`HIDDEN_IN_SQL`]'s count).
pub const WALK_COUNT_SQL: &str = "\
SELECT count(*) FROM (SELECT 1 FROM videos AS v INDEXED BY {index}
WHERE v.region = ?2 AND {channel}
  AND v.duration_seconds >= coalesce(?4, -1) AND v.duration_seconds <= coalesce(?5, 9223372036854775807)
LIMIT ?3)";

/// How many of the videos the policy leaves out are in region `?2` or GLOBAL, of
/// the channels `?1` (a JSON array, or NULL for all) and within the durations `?4`/`?5`.
pub const HIDDEN_IN_SQL: &str = "\
SELECT count(*) FROM videos AS v WHERE v.rowid IN ({rowids}) AND v.region IN (?2, 'GLOBAL')
  AND (?1 IS NULL OR v.channel IN (SELECT value FROM json_each(?1)))
  AND (?4 IS NULL OR v.duration_seconds >= ?4) AND (?5 IS NULL OR v.duration_seconds <= ?5)";

/// A browse walk ([`WALK_SQL`]) for `sort`, of a channel's rows when `channel`.
/// Relevance without a query (a channel alone) is newest first.
pub fn walk(sort: Sort, channel: bool) -> String {
    let (key, index) = match (sort, channel) {
        (Sort::Popular, false) => ("v.view_count", "videos_region_popular"),
        (Sort::Popular, true) => ("v.view_count", "videos_channel_popular"),
        // Newest first, undated last (SQLite sorts NULL last in DESC): the index's order.
        (Sort::Recent | Sort::Relevance, false) => ("v.published_at", "videos_region_recent"),
        (Sort::Recent | Sort::Relevance, true) => ("v.published_at", "videos_channel_recent"),
    };
    WALK_SQL
        .replace("{order}", &format!("{key} DESC, v.rowid"))
        .replace("{key}", key)
        .replace("{index}", index)
        .replace("{channel}", if channel { "v.channel = ?1" } else { "?1 IS NULL" })
}

/// A walk's count ([`WALK_COUNT_SQL`]): by `(region, duration_seconds)` for a region
/// (a range of it with duration filters), by `(channel, region, …)` for a channel.
pub fn walk_count(channel: bool) -> String {
    let index = if channel { "videos_channel_recent" } else { "videos_region_duration" };
    WALK_COUNT_SQL.replace("{index}", index).replace("{channel}", if channel { "v.channel = ?1" } else { "?1 IS NULL" })
}

/// The database generation (bumped by triggers on every search-relevant change).
pub const GENERATION_SQL: &str = "SELECT value FROM videofeed_meta WHERE key = 'generation'";

/// The data version and the time of the last write (see `sql/schema.sql`).
pub const DATA_VERSION_SQL: &str = "SELECT (SELECT value FROM videofeed_meta WHERE key = 'changes'), \
     (SELECT value FROM videofeed_meta WHERE key = 'last_write')";

/// One result row by row id, for the fast path.
pub const ROW_SQL: &str = "SELECT v.id, v.title, v.channel, v.duration_seconds, v.thumbnail, v.region, 0.0, {extras} \
     FROM videos AS v {joins} WHERE v.rowid = ?1";

/// The meta counters of one read transaction.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// The search generation (rows added or removed, indexed text or region changed).
    pub generation: i64,
    /// The version of the set of videos left out for broken thumbnails.
    pub thumbs: i64,
    /// The data version (any change) and the last write.
    pub version: DataVersion,
}

/// Every counter an answer depends on, read in the answer's own transaction.
pub const META_SQL: &str = "SELECT (SELECT value FROM videofeed_meta WHERE key = 'generation'), \
     (SELECT value FROM videofeed_meta WHERE key = 'thumbs'), \
     (SELECT value FROM videofeed_meta WHERE key = 'changes'), \
     (SELECT value FROM videofeed_meta WHERE key = 'last_write')";

/// Every term of the index with the number of rows holding it, in term order (see `db::open_reader`).
pub const VOCABULARY_SQL: &str = "SELECT term, doc FROM temp.videofeed_vocab";

/// Whether some row holds a term (or a term starting with it): `?1` the quoted
/// token, with `*` for a prefix. Stops at the first match.
pub const KNOWN_SQL: &str = "SELECT 1 FROM videos_fts WHERE videos_fts MATCH ?1 LIMIT 1";

/// The condition on a broken check `h` that makes its video left out; None when no
/// video is (a fallback image replaces every broken thumbnail).
fn left_out(policy: &ThumbnailPolicy) -> Option<&'static str> {
    match (policy.omit, &policy.fallback) {
        (true, _) => Some("h.ok = 0"),
        (false, Some(_)) => None,
        (false, None) => Some("h.ok = 0 AND h.alternative IS NULL"),
    }
}

/// An SQL condition over `v` (a `videos` row): true for videos the feed leaves out.
pub fn hidden(policy: &ThumbnailPolicy) -> String {
    left_out(policy).map_or_else(
        || "0".to_owned(),
        |cond| {
            format!(
                "EXISTS (SELECT 1 FROM thumbnail_checks h WHERE h.video_id = v.id AND h.url = v.thumbnail AND {cond})"
            )
        },
    )
}

/// The row ids of the videos left out, driven from the broken checks (a partial
/// index holds them); None when none are.
pub fn hidden_rowids(policy: &ThumbnailPolicy) -> Option<String> {
    left_out(policy).map(|cond| {
        format!(
            "SELECT v.rowid FROM thumbnail_checks h \
             JOIN videos v ON v.id = h.video_id AND v.thumbnail = h.url WHERE {cond}"
        )
    })
}

/// `template` with the extras, the bm25 call and the hidden condition for `policy` filled in.
pub fn statement(template: &str, policy: &ThumbnailPolicy) -> String {
    template
        .replace("{extras}", EXTRAS)
        .replace("{joins}", EXTRA_JOINS)
        .replace("{bm25}", &bm25::sql())
        .replace("{hidden}", &hidden(policy))
}

/// The filtered statement for `sort` (a fixed ORDER BY per order).
pub fn filtered(sort: Sort, policy: &ThumbnailPolicy) -> String {
    let order = match sort {
        Sort::Relevance => "rank, v.rowid",
        Sort::Recent => "v.published_at IS NULL, v.published_at DESC, v.rowid",
        Sort::Popular => "v.view_count DESC, v.rowid",
    };
    statement(FILTERED_SQL, policy).replace("{order}", order)
}

/// Reads the meta counters in `tx` (absent counters read as 0).
pub fn read_meta(tx: &Connection) -> Result<Meta, Error> {
    Ok(tx.prepare_cached(META_SQL)?.query_row([], |r| {
        Ok(Meta {
            generation: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
            thumbs: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            version: DataVersion {
                changes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                last_write: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
            },
        })
    })?)
}

/// A result row (`ROW_SQL`, `FEED_SQL` or `FILTERED_SQL`: the video in columns 0-5,
/// [`EXTRAS`] in 7-14) and its bm25 rank; a broken thumbnail is replaced per `policy`.
pub fn row_item(r: &rusqlite::Row<'_>, rank: f64, policy: &ThumbnailPolicy) -> rusqlite::Result<FeedItem> {
    let mut thumbnail: String = r.get(4)?;
    if r.get::<_, Option<i64>>(7)? == Some(0) {
        if let Some(replacement) = r.get::<_, Option<String>>(8)?.or_else(|| policy.fallback.clone()) {
            thumbnail = replacement;
        }
    }
    Ok(FeedItem {
        id: r.get(0)?,
        title: r.get(1)?,
        channel: r.get(2)?,
        duration_seconds: r.get(3)?,
        thumbnail,
        region: r.get(5)?,
        score: if rank == 0.0 { 0.0 } else { -rank },
        channel_display_name: r.get(9)?,
        channel_avatar: r.get(10)?,
        channel_verified: r.get::<_, Option<i64>>(11)?.map(|v| v != 0),
        channel_subscribers: r.get(12)?,
        published_at: r.get(13)?,
        view_count: r.get::<_, Option<i64>>(14)?.unwrap_or(0),
        title_highlighted: None,
        channel_highlighted: None,
    })
}

/// How many change-log entries generations (`?1`, `?2`] have, and the lowest one.
pub const CHANGES_COUNT_SQL: &str =
    "SELECT count(*), min(generation) FROM videofeed_changes WHERE generation > ?1 AND generation <= ?2";

/// The rows changed in generations (`?1`, `?2`] as they are now (NULLs: deleted), with
/// the least `kind` of their log entries (1: only their columns changed).
pub const CHANGED_ROWS_SQL: &str = "SELECT c.row, c.kind, v.title, v.channel, v.region, \
     v.duration_seconds, v.published_at, v.view_count, v.channel \
     FROM (SELECT row, min(kind) AS kind FROM videofeed_changes \
           WHERE generation > ?1 AND generation <= ?2 GROUP BY row) c \
     LEFT JOIN videos v ON v.rowid = c.row";
