-- Migration 2 -> 3: a data version for response caches and ETags ('changes',
-- bumped by any change to any column of a video, where 'generation' counts
-- only changes to what is searched) and the time of the last write
-- ('last_write', Unix seconds) for the health endpoint and Last-Modified.
-- Runs in one transaction (videofeed init / import / demo).
INSERT OR IGNORE INTO videofeed_meta (key, value) VALUES ('changes', 0), ('last_write', 0);

DROP TRIGGER IF EXISTS videos_ai;
DROP TRIGGER IF EXISTS videos_ad;
DROP TRIGGER IF EXISTS videos_au_any;

CREATE TRIGGER videos_ai AFTER INSERT ON videos BEGIN
    INSERT INTO videos_fts (rowid, title, channel) VALUES (new.rowid, new.title, new.channel);
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('generation', 'changes', 'last_write');
END;

CREATE TRIGGER videos_ad AFTER DELETE ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, title, channel)
    VALUES ('delete', old.rowid, old.title, old.channel);
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('generation', 'changes', 'last_write');
END;

CREATE TRIGGER videos_au_any AFTER UPDATE ON videos BEGIN
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('changes', 'last_write');
END;

PRAGMA user_version = 3;
