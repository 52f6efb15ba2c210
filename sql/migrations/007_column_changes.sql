-- Migration 6 -> 7: the rank index answers filtered and re-ordered queries too
-- (channel, durations, sort=recent/popular; issue 15), so it keeps each row's
-- duration, published_at and view count, and a change to those must reach it
-- like a change to the indexed text: a new generation and a change-log entry.
-- `kind` 1 marks an entry that changed only those columns (the index updates
-- the row's columns without re-tokenizing it). FTS5 merges segments 16 at a
-- time instead of 4 (see schema.sql). Runs in one transaction.
ALTER TABLE videofeed_changes ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER videos_au_columns AFTER UPDATE OF duration_seconds, published_at, view_count ON videos
WHEN old.duration_seconds IS NOT new.duration_seconds OR old.published_at IS NOT new.published_at
  OR old.view_count IS NOT new.view_count BEGIN
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
    INSERT INTO videofeed_changes (generation, row, kind)
    SELECT value, new.rowid, 1 FROM videofeed_meta WHERE key = 'generation';
END;

-- Merge FTS5 segments 16 at a time (default 4): live writes cost ~10x less.
INSERT INTO videos_fts (videos_fts, rank) VALUES ('automerge', 16);

PRAGMA user_version = 7;
