-- Migration 5 -> 6: a log of the row each search generation changed, so a
-- responder brings its in-memory rank index up to date by reading only those
-- rows instead of rebuilding it (issue 15). Runs in one transaction.

-- One entry per generation: the row it added, changed (title, channel or region)
-- or deleted. A responder whose index is at generation G reads the entries after
-- G; a gap (a bulk load, which bumps the generation once for many rows, or
-- entries pruned below) makes it rebuild instead.
CREATE TABLE videofeed_changes (
    generation INTEGER PRIMARY KEY,
    row        INTEGER NOT NULL
);

DROP TRIGGER IF EXISTS videos_ai;
DROP TRIGGER IF EXISTS videos_ad;
DROP TRIGGER IF EXISTS videos_au;
DROP TRIGGER IF EXISTS videos_au_region;

CREATE TRIGGER videos_ai AFTER INSERT ON videos BEGIN
    INSERT INTO videos_fts (rowid, title, channel) VALUES (new.rowid, new.title, new.channel);
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('generation', 'changes', 'last_write');
    INSERT INTO videofeed_changes (generation, row)
    SELECT value, new.rowid FROM videofeed_meta WHERE key = 'generation';
END;

CREATE TRIGGER videos_ad AFTER DELETE ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, title, channel)
    VALUES ('delete', old.rowid, old.title, old.channel);
    UPDATE videofeed_meta SET value = CASE key WHEN 'last_write' THEN unixepoch() ELSE value + 1 END
    WHERE key IN ('generation', 'changes', 'last_write');
    INSERT INTO videofeed_changes (generation, row)
    SELECT value, old.rowid FROM videofeed_meta WHERE key = 'generation';
END;

CREATE TRIGGER videos_au AFTER UPDATE OF title, channel ON videos
WHEN old.title IS NOT new.title OR old.channel IS NOT new.channel BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, title, channel)
    VALUES ('delete', old.rowid, old.title, old.channel);
    INSERT INTO videos_fts (rowid, title, channel) VALUES (new.rowid, new.title, new.channel);
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

-- The log keeps the last 200,000 generations (a responder further behind rebuilds).
CREATE TRIGGER videofeed_changes_prune AFTER INSERT ON videofeed_changes
WHEN new.generation % 1000 = 0 BEGIN
    DELETE FROM videofeed_changes WHERE generation <= new.generation - 200000;
END;

PRAGMA user_version = 6;
