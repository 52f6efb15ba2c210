-- videofeed schema, version 9 (PRAGMA user_version = 9).
-- Applied by `videofeed init` / `import` / `demo` inside one transaction when
-- user_version is 0; embedded in the binary with include_str!. Older databases
-- are upgraded in place by sql/migrations/ (002_generation.sql, 003_changes.sql,
-- 004_thumbnails_channels.sql, 005_exact_answers.sql, 006_change_log.sql,
-- 007_column_changes.sql, 008_search_text.sql).

-- One row per video. `rowid` is explicit so the FTS index can refer to it
-- (external content, https://sqlite.org/fts5.html#external_content_tables).
CREATE TABLE videos (
    rowid            INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    title            TEXT    NOT NULL,
    channel          TEXT    NOT NULL,
    duration_seconds INTEGER NOT NULL CHECK (duration_seconds >= 0),
    thumbnail        TEXT    NOT NULL,
    region           TEXT    NOT NULL,
    published_at     TEXT,    -- UTC, YYYY-MM-DDTHH:MM:SSZ (normalized on import)
    view_count       INTEGER NOT NULL DEFAULT 0 CHECK (view_count >= 0)
);

-- Full-text index over title and channel, as search text: each written through
-- videofeed_search_text() (a function every videofeed connection registers;
-- src/text/): NFKC, Arabic, Hebrew, Greek and German folding, and the words of
-- CJK, Thai, Lao, Khmer and Myanmar text split apart (issue 34). Contentless
-- (the text itself lives once, in `videos`; a delete names the search text it
-- removes, so FTS5's totals stay exact: contentless_delete=1 would leave them
-- counting deleted rows' tokens and bm25 drifting); the triggers below keep it in step inside the same transaction as each write, so a reader
-- never sees one without the other. unicode61 with remove_diacritics 2 folds
-- case and Latin accents ("cafe" finds "Café"), and combining marks (M*) are
-- part of words (Thai vowels, Devanagari signs); prefix='2 3' keeps short prefix
-- queries ("mo*") cheap. A write to `videos` made without videofeed (the sqlite3
-- shell) fails with "no such function: videofeed_search_text" instead of
-- indexing raw text.
CREATE VIRTUAL TABLE videos_fts USING fts5(
    title,
    channel,
    content = '',
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'",
    prefix = '2 3'
);
-- Merge index segments 16 at a time instead of FTS5's default 4: a live write
-- costs ~10x less (a 500-video batch commits in ~15 ms instead of ~150 ms on
-- 1M videos; most of the default's time was incremental merging), for a few
-- more segments per level that an FTS5 query reads (issue 15).
INSERT INTO videos_fts (videos_fts, rank) VALUES ('automerge', 16);

-- Counters kept in the same transaction as every write:
--   generation  bumped by every change that can alter search results (rows added
--               or removed, title, channel or region changed, and the duration,
--               published_at and view count filters and orders read): the responder's
--               in-memory rank index is valid exactly while it is unchanged;
--   changes     bumped by every change to any column of any video: the version
--               of the data that response caches and ETags are keyed on;
--   last_write  Unix time (seconds) of the last change: health and Last-Modified.
CREATE TABLE videofeed_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO videofeed_meta (key, value) VALUES ('generation', 0), ('changes', 0), ('last_write', 0);
-- The version of the search text's rules the index holds (src/text/ VERSION): a
-- binary with other rules re-indexes at start (0: not indexed yet).
INSERT INTO videofeed_meta (key, value) VALUES ('search_text', 0);

-- One entry per generation: the row it added, changed (title, channel or region)
-- or deleted. A responder whose index is at generation G reads the entries after
-- G; a gap (a bulk load, which bumps the generation once for many rows, or
-- entries pruned below) makes it rebuild instead.
-- `kind` 1: only the row's duration, published_at or view count changed (the
-- index updates its columns without re-tokenizing the row); 0: anything else.
CREATE TABLE videofeed_changes (
    generation INTEGER PRIMARY KEY,
    row        INTEGER NOT NULL,
    kind       INTEGER NOT NULL DEFAULT 0
);

CREATE TRIGGER videos_ai AFTER INSERT ON videos BEGIN
    INSERT INTO videos_fts (rowid, title, channel)
    VALUES (new.rowid, videofeed_search_text(new.title), videofeed_search_text(new.channel));
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('generation', 'changes', 'last_write');
    INSERT INTO videofeed_changes (generation, row)
    SELECT value, new.rowid FROM videofeed_meta WHERE key = 'generation';
END;

CREATE TRIGGER videos_ad AFTER DELETE ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, title, channel)
    VALUES ('delete', old.rowid, videofeed_search_text(old.title), videofeed_search_text(old.channel));
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('generation', 'changes', 'last_write');
    INSERT INTO videofeed_changes (generation, row)
    SELECT value, old.rowid FROM videofeed_meta WHERE key = 'generation';
END;

-- Only a change to the indexed text touches the index.
CREATE TRIGGER videos_au AFTER UPDATE OF title, channel ON videos
WHEN old.title IS NOT new.title OR old.channel IS NOT new.channel BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, title, channel)
    VALUES ('delete', old.rowid, videofeed_search_text(old.title), videofeed_search_text(old.channel));
    INSERT INTO videos_fts (rowid, title, channel)
    VALUES (new.rowid, videofeed_search_text(new.title), videofeed_search_text(new.channel));
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO videofeed_changes (generation, row)
    SELECT value, new.rowid FROM videofeed_meta WHERE key = 'generation';
END;

CREATE TRIGGER videos_au_region AFTER UPDATE OF region ON videos
WHEN old.region IS NOT new.region BEGIN
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO videofeed_changes (generation, row)
    SELECT value, new.rowid FROM videofeed_meta WHERE key = 'generation';
END;

-- The columns the rank index filters and sorts on (duration, published_at, views):
-- a new generation, logged as a column-only change.
CREATE TRIGGER videos_au_columns AFTER UPDATE OF duration_seconds, published_at, view_count ON videos
WHEN old.duration_seconds IS NOT new.duration_seconds OR old.published_at IS NOT new.published_at
  OR old.view_count IS NOT new.view_count BEGIN
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO videofeed_changes (generation, row, kind)
    SELECT value, new.rowid, 1 FROM videofeed_meta WHERE key = 'generation';
END;

-- Any change to a video (a new thumbnail, duration or view count included)
-- changes the data a cached answer was made from.
CREATE TRIGGER videos_au_any AFTER UPDATE ON videos BEGIN
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('changes', 'last_write');
END;

-- The last check of a video's thumbnail. `url` is the URL checked: when the
-- video's thumbnail changes the row no longer applies (the feed joins on it)
-- and the next run checks the new one. `ok` 1 = loads, 0 = broken; `status`
-- the final HTTP status (NULL when none came: timeout, refused, cut off);
-- `alternative` a same-video URL checked good (YouTube's mqdefault).
CREATE TABLE thumbnail_checks (
    video_id    TEXT    PRIMARY KEY,
    url         TEXT    NOT NULL,
    ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
    status      INTEGER,
    error       TEXT,
    alternative TEXT,
    checked_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX thumbnail_checks_checked_at ON thumbnail_checks (checked_at);
-- The broken checks alone, so reloading the set of videos left out reads only them.
CREATE INDEX thumbnail_checks_broken ON thumbnail_checks (video_id) WHERE ok = 0;

-- Channel metadata from an enrichment source, keyed by the channel name as it
-- appears in videos.channel. `found` 0 = the source does not know the channel
-- (kept so it is not asked again before the refresh age).
CREATE TABLE channels (
    name             TEXT    PRIMARY KEY,
    found            INTEGER NOT NULL CHECK (found IN (0, 1)),
    display_name     TEXT,
    avatar_url       TEXT,
    verified         INTEGER CHECK (verified IN (0, 1)),
    subscriber_count INTEGER CHECK (subscriber_count >= 0),
    fetched_at       INTEGER NOT NULL
) WITHOUT ROWID;

-- A deleted video takes its check with it.
CREATE TRIGGER videos_ad_thumbnail AFTER DELETE ON videos BEGIN
    DELETE FROM thumbnail_checks WHERE video_id = old.id;
END;

-- What a feed answer shows changes when a thumbnail turns broken or good, or its
-- replacement changes: a new data version (caches, ETags) and a new 'thumbs'
-- version (the responder reloads the set of videos it leaves out; the rank
-- index itself stays valid). A recheck that confirms the same state changes nothing.
INSERT OR IGNORE INTO videofeed_meta (key, value) VALUES ('thumbs', 0);
CREATE TRIGGER thumbnail_checks_ai AFTER INSERT ON thumbnail_checks WHEN new.ok = 0 BEGIN
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('thumbs', 'changes', 'last_write');
END;
CREATE TRIGGER thumbnail_checks_au AFTER UPDATE ON thumbnail_checks
WHEN old.ok IS NOT new.ok OR old.url IS NOT new.url OR old.alternative IS NOT new.alternative BEGIN
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('thumbs', 'changes', 'last_write');
END;
CREATE TRIGGER thumbnail_checks_ad AFTER DELETE ON thumbnail_checks WHEN old.ok = 0 BEGIN
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('thumbs', 'changes', 'last_write');
END;

-- A video's new thumbnail can hide it (its check of that URL was broken) or show
-- it again: move 'thumbs' whenever a video with a broken check gets another thumbnail.
CREATE TRIGGER videos_au_thumbnail AFTER UPDATE OF thumbnail ON videos
WHEN old.thumbnail IS NOT new.thumbnail
 AND EXISTS (SELECT 1 FROM thumbnail_checks WHERE video_id = new.id AND ok = 0) BEGIN
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'thumbs';
END;

-- New or changed channel data changes the answers that show it (not the ranking).
CREATE TRIGGER channels_ai AFTER INSERT ON channels WHEN new.found = 1 BEGIN
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('changes', 'last_write');
END;
CREATE TRIGGER channels_au AFTER UPDATE ON channels
WHEN old.found IS NOT new.found OR old.display_name IS NOT new.display_name
  OR old.avatar_url IS NOT new.avatar_url OR old.verified IS NOT new.verified
  OR old.subscriber_count IS NOT new.subscriber_count BEGIN
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('changes', 'last_write');
END;

-- The log keeps the last 200,000 generations (a responder further behind rebuilds).
CREATE TRIGGER videofeed_changes_prune AFTER INSERT ON videofeed_changes
WHEN new.generation % 1000 = 0 BEGIN
    DELETE FROM videofeed_changes WHERE generation <= new.generation - 200000;
END;

-- Browsing without a query (`sort=recent|popular`, `channel=`) and channels
-- matched by their folded words (videofeed_channel_key(), src/text/): see
-- migrations/009_browse.sql.
CREATE INDEX videos_region_popular ON videos (region, view_count DESC, duration_seconds);
CREATE INDEX videos_region_recent ON videos (region, published_at DESC, duration_seconds);
CREATE INDEX videos_region_duration ON videos (region, duration_seconds);
CREATE INDEX videos_channel_popular ON videos (channel, region, view_count DESC, duration_seconds);
CREATE INDEX videos_channel_recent ON videos (channel, region, published_at DESC, duration_seconds);

-- Every channel name in `videos` with its match key (videofeed_channel_key()):
-- `channel=` finds the stored names by key. Kept by the triggers below; a plain
-- table (not an expression index), so VACUUM, REINDEX and integrity_check work
-- from any SQLite shell. Rebuilt when the text rules change (search_text).
-- (No INSERT OR IGNORE in the triggers: an UPSERT's conflict handling would
-- override it and fail on a name already there.)
CREATE TABLE channel_keys (
    name TEXT PRIMARY KEY,
    key  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX channel_keys_key ON channel_keys (key);
CREATE TRIGGER videos_ai_channel AFTER INSERT ON videos BEGIN
    INSERT INTO channel_keys (name, key) SELECT new.channel, videofeed_channel_key(new.channel)
    WHERE NOT EXISTS (SELECT 1 FROM channel_keys WHERE name = new.channel);
END;
CREATE TRIGGER videos_au_channel AFTER UPDATE OF channel ON videos WHEN old.channel IS NOT new.channel BEGIN
    INSERT INTO channel_keys (name, key) SELECT new.channel, videofeed_channel_key(new.channel)
    WHERE NOT EXISTS (SELECT 1 FROM channel_keys WHERE name = new.channel);
    DELETE FROM channel_keys WHERE name = old.channel
        AND NOT EXISTS (SELECT 1 FROM videos WHERE channel = old.channel);
END;
CREATE TRIGGER videos_ad_channel AFTER DELETE ON videos BEGIN
    DELETE FROM channel_keys WHERE name = old.channel
        AND NOT EXISTS (SELECT 1 FROM videos WHERE channel = old.channel);
END;

PRAGMA user_version = 9;
