-- Migration 8 -> 9 (issue 35): browsing without a query and channels matched
-- case- and accent-insensitively.
-- * `sort=recent|popular` without `q` reads a region's videos in that order:
--   one index per order, (region, key, duration), so a page is two short
--   index walks (the region's and GLOBAL's) whatever the catalogue's size,
--   duration filters included; a channel's likewise, (channel, region, ...). `total` counts up to 10,001 entries of
--   (region, duration_seconds) or (channel, region, ...), without the table.
-- * `channel=` matches by videofeed_channel_key(channel) (src/text/: the
--   channel's words, case, accents and punctuation folded): the table
--   channel_keys holds each stored name with its key, kept by triggers.
-- Every videofeed connection registers videofeed_channel_key(); a connection
-- without it (the sqlite3 shell) cannot insert videos or rename a channel, as
-- with videofeed_search_text() since version 8. Runs in one transaction.
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
INSERT INTO channel_keys (name, key) SELECT channel, videofeed_channel_key(channel) FROM videos GROUP BY channel;

PRAGMA user_version = 9;
