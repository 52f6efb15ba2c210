-- Migration 3 -> 4: what the background jobs learn (videofeed check-thumbnails,
-- videofeed enrich-channels), kept beside the videos and never in their rows.
-- Runs in one transaction (videofeed init / import / demo / the jobs).

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

PRAGMA user_version = 4;
