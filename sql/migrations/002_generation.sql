-- Migration 1 -> 2: the generation counter that tells the responder's
-- in-memory rank index when the data changed. Triggers are recreated with
-- the counter update. Runs in one transaction (videofeed init / import / demo).
DROP TRIGGER IF EXISTS videos_ai;
DROP TRIGGER IF EXISTS videos_ad;
DROP TRIGGER IF EXISTS videos_au;
DROP TRIGGER IF EXISTS videos_au_region;

-- A counter bumped by every change that can alter search results (rows added
-- or removed, title, channel or region changed), in the same transaction. The
-- responder's in-memory rank index is valid exactly while it is unchanged.
CREATE TABLE videofeed_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO videofeed_meta (key, value) VALUES ('generation', 0);

CREATE TRIGGER videos_ai AFTER INSERT ON videos BEGIN
    INSERT INTO videos_fts (rowid, title, channel) VALUES (new.rowid, new.title, new.channel);
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
END;

CREATE TRIGGER videos_ad AFTER DELETE ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, title, channel)
    VALUES ('delete', old.rowid, old.title, old.channel);
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
END;

-- Only a change to the indexed text touches the index.
CREATE TRIGGER videos_au AFTER UPDATE OF title, channel ON videos
WHEN old.title IS NOT new.title OR old.channel IS NOT new.channel BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, title, channel)
    VALUES ('delete', old.rowid, old.title, old.channel);
    INSERT INTO videos_fts (rowid, title, channel) VALUES (new.rowid, new.title, new.channel);
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
END;

CREATE TRIGGER videos_au_region AFTER UPDATE OF region ON videos
WHEN old.region IS NOT new.region BEGIN
    UPDATE videofeed_meta SET value = value + 1 WHERE key = 'generation';
END;

PRAGMA user_version = 2;
