-- Migration 7 -> 8 (issue 34): the full-text index holds search text instead of
-- the raw title and channel: NFKC, Arabic, Hebrew, Greek and German folding, and
-- words inside CJK, Thai, Lao, Khmer and Myanmar text split apart
-- (videofeed_search_text(), src/text/), with combining marks part of words. The
-- index is contentless (the text lives once, in `videos`).
-- This drops the old index and its triggers and creates the new ones, empty; the
-- binary fills it right after (meta 'search_text' 0), in the same open. Runs in
-- one transaction.
DROP TRIGGER IF EXISTS videos_ai;
DROP TRIGGER IF EXISTS videos_ad;
DROP TRIGGER IF EXISTS videos_au;
DROP TABLE videos_fts;

CREATE VIRTUAL TABLE videos_fts USING fts5(
    title,
    channel,
    content = '',
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'",
    prefix = '2 3'
);
INSERT INTO videos_fts (videos_fts, rank) VALUES ('automerge', 16);

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

INSERT OR REPLACE INTO videofeed_meta (key, value) VALUES ('search_text', 0);

PRAGMA user_version = 8;
