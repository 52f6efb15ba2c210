-- Migration 4 -> 5: what keeps every answer path-independent (issue 13).
-- Runs in one transaction (videofeed init / import / demo / the jobs).

-- A video's new thumbnail can hide it (its check of that URL was broken) or show
-- it again: move 'thumbs', the version of the set of videos the feed leaves out,
-- whenever a video with a broken check gets another thumbnail.
CREATE TRIGGER videos_au_thumbnail AFTER UPDATE OF thumbnail ON videos
WHEN old.thumbnail IS NOT new.thumbnail
 AND EXISTS (SELECT 1 FROM thumbnail_checks WHERE video_id = new.id AND ok = 0) BEGIN
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'thumbs';
END;

-- The broken checks alone, so reloading that set reads only them.
CREATE INDEX thumbnail_checks_broken ON thumbnail_checks (video_id) WHERE ok = 0;

-- published_at is stored in UTC as YYYY-MM-DDTHH:MM:SSZ (sort=recent compares the
-- text). Earlier versions stored offsets as given; convert them. A value SQLite
-- cannot read as a date-time at all becomes NULL (sorted last, as "no date").
UPDATE videos SET published_at = strftime('%Y-%m-%dT%H:%M:%SZ', published_at)
WHERE published_at IS NOT NULL AND published_at IS NOT strftime('%Y-%m-%dT%H:%M:%SZ', published_at);

PRAGMA user_version = 5;
