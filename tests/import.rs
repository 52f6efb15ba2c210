//! `videofeed init`, `import` and `demo` as an operator runs them.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{TestDir, TestResult, bin, data, run};

/// Reads a number straight from the file with plain SQL.
fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn init_is_idempotent_and_checks_the_schema() -> TestResult {
    let dir = TestDir::new("init");
    let db = dir.path("v.db");
    for _ in 0..2 {
        let out = run(&["init", "--db", db.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            String::from_utf8(out.stdout)?
                .contains(&format!("schema {} ready, 0 videos", videofeed::store::db::SCHEMA_VERSION))
        );
    }
    assert_eq!(count(&db, "PRAGMA user_version"), videofeed::store::db::SCHEMA_VERSION);
    let foreign = dir.path("other.db");
    rusqlite::Connection::open(&foreign)?.execute_batch("CREATE TABLE t(x)")?;
    let out = run(&["init", "--db", foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a usable videofeed database"));
    Ok(())
}

#[test]
fn bad_lines_are_reported_with_line_numbers_and_good_ones_kept() -> TestResult {
    let dir = TestDir::new("mixed");
    let db = dir.path("v.db");
    let out = run(&["import", "--db", db.to_str().unwrap(), data("mixed.jsonl").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "exit 1: finished with rejected lines");
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("mixed.jsonl:2: rejected: not valid JSON"), "{err}");
    assert!(err.contains(":5: rejected: title must not be empty"), "{err}");
    assert!(err.contains(":6: rejected: duration_seconds"), "{err}");
    let summary = String::from_utf8(out.stdout)?;
    assert!(summary.contains("inserted=3") && summary.contains("rejected=3"), "{summary}");
    assert!(summary.contains("rows_per_s="));
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 3);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE region = 'DE'"), 1, "region upper-cased");
    // The FTS index follows the table.
    assert_eq!(count(&db, "SELECT count(*) FROM videos_fts WHERE videos_fts MATCH 'good'"), 3);
    Ok(())
}

/// A CMS export as MySQL writes it (issue 35): `DATETIME` and bare dates, Unix
/// seconds, numbers as strings, one bad view count.
fn cms_export() -> String {
    let line = |id: &str, published: &str, duration: &str, views: &str| {
        format!(
            r#"{{"id":"{id}","title":"Export {id}","channel":"CMS","duration_seconds":{duration},"thumbnail":"https://x.test/{id}.jpg","region":"US","published_at":{published},"view_count":{views}}}"#
        ) + "\n"
    };
    [
        line("m1", r#""2024-05-01 12:00:00""#, "183", "7"),
        line("m2", r#""2024-05-02""#, r#""183""#, r#""42""#),
        line("m3", "1714564800", "60", "1"),
        line("m4", r#""2024-05-03 08:30:00""#, "60", "-5"),
    ]
    .concat()
}

#[test]
fn real_export_dates_and_numbers_import_with_the_rules_that_read_them() -> TestResult {
    let dir = TestDir::new("cms-export");
    let file = dir.path("export.jsonl");
    std::fs::write(&file, cms_export())?;
    // As shipped: the zone-less dates are refused whole, each kind counted in the summary.
    let db = dir.path("strict.db");
    let out = run(&["import", "--db", db.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr)?;
    assert!(
        err.contains("export.jsonl:1: rejected: published_at has no time zone") && err.contains("--assume-utc"),
        "{err}"
    );
    assert!(err.contains("rejected: 3 lines published_at has no time zone"), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 1, "m3 (Unix seconds) is in: {err}");
    // --assume-utc reads them as UTC; numeric strings and Unix seconds are numbers and dates.
    let db = dir.path("utc.db");
    let out = run(&["import", "--db", db.to_str().unwrap(), "--assume-utc", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "m4's view count is still bad");
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("rejected: 1 line view_count must be a whole number from N to N"), "{err}");
    let published = |id: &str| -> rusqlite::Result<Option<String>> {
        rusqlite::Connection::open(&db)?.query_row("SELECT published_at FROM videos WHERE id = ?1", [id], |r| r.get(0))
    };
    assert_eq!(published("m1")?.as_deref(), Some("2024-05-01T12:00:00Z"));
    assert_eq!(published("m2")?.as_deref(), Some("2024-05-02T00:00:00Z"));
    assert_eq!(published("m3")?.as_deref(), Some("2024-05-01T12:00:00Z"));
    assert_eq!(count(&db, "SELECT duration_seconds + view_count FROM videos WHERE id = 'm2'"), 183 + 42);
    // --lenient keeps m4 without its bad view count, and says so.
    let out = run(&["import", "--db", db.to_str().unwrap(), "--assume-utc", "--lenient", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("export.jsonl:4: kept without a field: view_count"), "{err}");
    assert!(String::from_utf8(out.stdout)?.contains("kept_without_a_field=1"));
    assert_eq!(count(&db, "SELECT view_count FROM videos WHERE id = 'm4'"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 4);
    Ok(())
}

#[test]
fn strict_stops_at_the_first_bad_line_with_nothing_of_its_batch_written() -> TestResult {
    let dir = TestDir::new("strict");
    let db = dir.path("v.db");
    let out = run(&["import", "--db", db.to_str().unwrap(), "--strict", data("mixed.jsonl").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("line 2: not valid JSON") && err.contains("--strict"), "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 0, "line 1 was in the same batch");
    // A bulk load (the database was empty) is one batch: its triggers are back after the rollback.
    assert_eq!(count(&db, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"), 17);
    // With --no-bulk and batches of one row, the batch before the bad line stays committed.
    let out = run(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        "--strict",
        "--no-bulk",
        "--batch-size",
        "1",
        data("mixed.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM videos_fts WHERE videos_fts MATCH 'first'"), 1);
    Ok(())
}

#[test]
fn reimport_upserts_by_id_and_the_index_follows() -> TestResult {
    let dir = TestDir::new("upsert");
    let db = dir.path("v.db");
    let dbs = db.to_str().unwrap();
    let fixture = data("videos.jsonl");
    assert!(run(&["import", "--db", dbs, fixture.to_str().unwrap()]).status.success());
    let out = run(&["import", "--db", dbs, fixture.to_str().unwrap()]);
    let summary = String::from_utf8(out.stdout)?;
    assert!(summary.contains("inserted=0 updated=0 unchanged=609"), "{summary}");
    // Change one title through stdin: it is found by its new word and no longer by its old.
    let mut child =
        Command::new(bin()).args(["import", "--db", dbs, "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(
        br#"{"id":"v0060664998","title":"Zebracorn anthem","channel":"AC/DC","duration_seconds":10,"thumbnail":"https://x/y.jpg","region":"US"}"#,
    )?;
    let out = child.wait_with_output()?;
    assert!(String::from_utf8(out.stdout)?.contains("updated=1"));
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 609);
    assert_eq!(count(&db, "SELECT count(*) FROM videos_fts WHERE videos_fts MATCH 'zebracorn'"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM videos_fts WHERE videos_fts MATCH 'black'"), 0);
    // The bulk-loaded index and the trigger-maintained one agree (FTS5's own check).
    rusqlite::Connection::open(&db)?.execute("INSERT INTO videos_fts(videos_fts) VALUES('integrity-check')", [])?;
    Ok(())
}

#[test]
fn demo_is_deterministic_and_searchable() -> TestResult {
    let dir = TestDir::new("demo");
    let a = dir.path("a.db");
    let b = dir.path("b.db");
    for db in [&a, &b] {
        let out = run(&["demo", "--db", db.to_str().unwrap(), "--videos", "3000", "--seed", "9"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let digest = |db: &std::path::Path| -> String {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row(
            "SELECT group_concat(id || title || region, '|') FROM (SELECT * FROM videos ORDER BY id)",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(count(&a, "SELECT count(*) FROM videos"), 3000);
    assert!(count(&a, "SELECT count(*) FROM videos WHERE region = 'GLOBAL'") > 100);
    let out = run(&["query", "--db", a.to_str().unwrap(), "--q", "music"]);
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(body["count"], 24);

    // Issue 21: the same corpus as a JSON Lines file in the import format, imported.
    let file = dir.path("demo.jsonl");
    let out = run(&["demo", "--out", file.to_str().unwrap(), "--videos", "3000", "--seed", "9"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file)?.lines().count(), 3000);
    let c = dir.path("c.db");
    let out = run(&["import", "--db", c.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "every line imports: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(digest(&a), digest(&c));
    let out = run(&["demo", "--out", "-", "--videos", "5", "--seed", "9"]);
    assert_eq!(String::from_utf8(out.stdout)?.lines().count(), 5, "--out - writes to standard output");
    Ok(())
}

/// Runs `videofeed ARGS` under a pseudo-terminal (util-linux `script`) and returns what it wrote.
fn run_on_terminal(args: &str) -> String {
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{} {args}", crate::util::bin().display()), "/dev/null"])
        // Never the test run's own terminal: script would put it in raw mode, and job
        // control signals would reach every test in this process.
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_a_pipe() -> TestResult {
    if !crate::util::have("script") {
        return Ok(());
    }
    let dir = TestDir::new("progress");
    let (tty_db, pipe_db) = (dir.path("tty.db"), dir.path("pipe.db"));
    // Long enough for at least one progress line (they come every half second).
    let shown = run_on_terminal(&format!("demo --db {} --videos 60000", tty_db.display()));
    assert!(shown.contains('\r') && shown.contains("% of 60000") && shown.contains("rows/s"), "{shown:?}");
    assert!(shown.contains("inserted=60000"), "the summary line: {shown:?}");
    let out = run(&["demo", "--db", pipe_db.to_str().unwrap(), "--videos", "60000"]);
    assert!(out.status.success());
    let (stdout, stderr) = (String::from_utf8(out.stdout)?, String::from_utf8(out.stderr)?);
    assert!(!stdout.contains('\r') && !stderr.contains('\r') && !stderr.contains("rows/s"), "{stderr:?}");
    assert!(stdout.contains("inserted=60000"), "the summary still prints: {stdout:?}");
    // import the same way: the pipe gets only the summary.
    let jsonl = dir.path("v.jsonl");
    let lines: Vec<String> =
        (0..60_000).map(|i| format!(r#"{{"id":"p{i}","title":"Progress {i}","channel":"C","duration_seconds":1,"thumbnail":"https://x/{i}.jpg","region":"US"}}"#)).collect();
    std::fs::write(&jsonl, lines.join("\n"))?;
    let shown = run_on_terminal(&format!(
        "import --no-bulk --batch-size 500 --db {} {}",
        dir.path("i.db").display(),
        jsonl.display()
    ));
    assert!(shown.contains('\r') && shown.contains("rows/s"), "{shown:?}");
    let out = run(&[
        "import",
        "--no-bulk",
        "--batch-size",
        "500",
        "--db",
        dir.path("j.db").to_str().unwrap(),
        jsonl.to_str().unwrap(),
    ]);
    assert!(out.status.success() && !String::from_utf8(out.stderr)?.contains('\r'));
    Ok(())
}

#[test]
fn help_and_version() -> TestResult {
    for cmd in ["serve", "init", "import", "demo", "query", "get", "backup", "check-thumbnails", "enrich-channels"] {
        let out = run(&[cmd, "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout)?;
        assert!(text.contains(&format!("videofeed {cmd}")) && text.contains("Example"), "{cmd}: {text}");
    }
    let out = run(&["--version"]);
    assert!(String::from_utf8(out.stdout)?.starts_with("videofeed 0."));
    // Every setting the binary reads is in serve --help, and so is every endpoint.
    let serve = String::from_utf8(run(&["serve", "--help"]).stdout)?;
    for var in videofeed::config::ENV_VARS {
        assert!(serve.contains(var), "serve --help does not mention {var}");
    }
    for endpoint in ["/feed/health", "/feed/metrics", "/feed/openapi.json", "/feed/admin/videos"] {
        assert!(serve.contains(endpoint), "serve --help does not mention {endpoint}");
    }
    assert!(
        String::from_utf8(run(&["get", "--help"]).stdout)?
            .contains("get --socket /run/videofeed/videofeed.sock /feed/health")
    );
    let out = run(&["import", "--db"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}

#[test]
fn backup_copies_the_database_while_it_serves() -> TestResult {
    let dir = TestDir::new("backup");
    let db = crate::util::fixture_db(&dir);
    let server = crate::util::Server::start(&dir, &db, 2);
    let copy = dir.path("copy.db");
    let out = run(&["backup", "--db", db.to_str().unwrap(), copy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&copy, "SELECT count(*) FROM videos"), 609);
    assert_eq!(count(&copy, "PRAGMA user_version"), videofeed::store::db::SCHEMA_VERSION);
    // The copy is a working database: the same query gives the same answer.
    let q = ["query", "--q", "lofi hip", "--limit", "5", "--db"];
    let a = run(&[&q[..], &[db.to_str().unwrap()]].concat());
    let b = run(&[&q[..], &[copy.to_str().unwrap()]].concat());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(server.get("/feed?q=music").status(), 200);
    // Never overwrites.
    let out = run(&["backup", "--db", db.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    Ok(())
}

#[test]
fn a_version_1_database_is_migrated_in_place_and_keeps_its_rows() -> TestResult {
    let dir = TestDir::new("migrate");
    let db = dir.path("v1.db");
    // A version 1 database as the first release wrote it: no generation counter.
    let conn = rusqlite::Connection::open(&db)?;
    let v2 = include_str!("../sql/schema.sql");
    let v1 = v2.split("-- Counters kept").next().ok_or("schema layout")?.to_owned()
        + "CREATE TRIGGER videos_ai AFTER INSERT ON videos BEGIN INSERT INTO videos_fts (rowid, title, channel) VALUES (new.rowid, new.title, new.channel); END;\nPRAGMA user_version = 1;";
    conn.execute_batch(&v1)?;
    conn.execute(
        "INSERT INTO videos (id, title, channel, duration_seconds, thumbnail, region) VALUES ('a1', 'Old Lofi', 'C', 5, 'https://x', 'US')",
        [],
    )?;
    drop(conn);
    // The responder refuses it with the fix in the message.
    let out = run(&["query", "--db", db.to_str().unwrap(), "--q", "lofi"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("videofeed init"));
    // init upgrades it; the row is still found and new writes bump the generation.
    let out = run(&["init", "--db", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(&db, "PRAGMA user_version"), videofeed::store::db::SCHEMA_VERSION);
    assert_eq!(count(&db, "SELECT v FROM videos_fts_config WHERE k = 'automerge'"), 16);
    let out = run(&["query", "--db", db.to_str().unwrap(), "--q", "lofi"]);
    assert!(String::from_utf8(out.stdout)?.contains("\"id\":\"a1\""));
    let before = count(&db, "SELECT value FROM videofeed_meta WHERE key = 'generation'");
    assert!(
        run(&["import", "--db", db.to_str().unwrap(), data("mixed.jsonl").to_str().unwrap()]).status.code() == Some(1)
    );
    assert_eq!(count(&db, "SELECT value FROM videofeed_meta WHERE key = 'generation'"), before + 3);
    // Version 3: the data version and the time of the last write move with every write
    // (and with version 8's re-indexing of the search text at the upgrade: 1 + 3).
    assert_eq!(count(&db, "SELECT value FROM videofeed_meta WHERE key = 'changes'"), 4);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let last_write = count(&db, "SELECT value FROM videofeed_meta WHERE key = 'last_write'");
    assert!(u64::try_from(last_write)?.abs_diff(now) < 60, "last_write {last_write}, now {now}");
    rusqlite::Connection::open(&db)?.execute("UPDATE videos SET thumbnail = 'https://y' WHERE id = 'a1'", [])?;
    assert_eq!(count(&db, "SELECT value FROM videofeed_meta WHERE key = 'changes'"), 5);
    assert_eq!(count(&db, "SELECT value FROM videofeed_meta WHERE key = 'generation'"), before + 3);
    Ok(())
}

#[test]
fn bulk_load_into_an_empty_database_indexes_everything_once() -> TestResult {
    let dir = TestDir::new("bulk");
    let (bulk, batched) = (dir.path("bulk.db"), dir.path("batched.db"));
    let fixture = data("videos.jsonl");
    let out = run(&["import", "--db", bulk.to_str().unwrap(), fixture.to_str().unwrap()]);
    assert!(out.status.success());
    let out = run(&["import", "--db", batched.to_str().unwrap(), "--no-bulk", fixture.to_str().unwrap()]);
    assert!(out.status.success());
    for db in [&bulk, &batched] {
        assert_eq!(count(db, "SELECT count(*) FROM videos"), 609);
        assert_eq!(count(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"), 17);
        // Live writes stay cheap after a bulk load too (FTS5 merges 16 segments at a time).
        assert_eq!(count(db, "SELECT v FROM videos_fts_config WHERE k = 'automerge'"), 16);
        rusqlite::Connection::open(db)?.execute("INSERT INTO videos_fts(videos_fts) VALUES('integrity-check')", [])?;
    }
    // Same search answers either way.
    for q in ["music", "lofi hip", "ch"] {
        let a = run(&["query", "--db", bulk.to_str().unwrap(), "--q", q, "--limit", "50"]);
        let b = run(&["query", "--db", batched.to_str().unwrap(), "--q", q, "--limit", "50"]);
        assert_eq!(a.stdout, b.stdout, "{q}");
    }
    assert!(count(&bulk, "SELECT value FROM videofeed_meta WHERE key = 'generation'") > 0);
    Ok(())
}

/// The ids of the JSON Lines `text`, in order.
fn ids_of(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn sync_refuses_what_it_cannot_do_safely_and_a_dry_run_changes_nothing() -> TestResult {
    // Issue 35 point 4: the plan comes first, and a refused sync changes nothing.
    let dir = TestDir::new("sync-refusals");
    let db = dir.path("s.db");
    let all = dir.path("all.jsonl");
    let out = run(&["demo", "--out", all.to_str().unwrap(), "--videos", "1000", "--seed", "5"]);
    assert!(out.status.success());
    assert!(run(&["import", "--db", db.to_str().unwrap(), all.to_str().unwrap()]).status.success());
    let text = std::fs::read_to_string(&all)?;
    let generation = || count(&db, "SELECT value FROM videofeed_meta WHERE key = 'generation'");
    let before = generation();
    // 850 of 1,000 kept: 150 deletions, over the default 10%.
    let kept: Vec<&str> = text.lines().take(850).collect();
    let file = dir.path("kept.jsonl");
    std::fs::write(&file, kept.join("\n") + "\n")?;
    let sync = |extra: &[&str]| {
        let mut args = vec!["import", "--db", db.to_str().unwrap(), "--sync"];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        run(&args)
    };
    let out = sync(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("it would delete 150 of 1000 videos, more than --max-delete 10% of 1000 = 100"), "{err}");
    assert!(err.contains("pass --max-delete 150"), "{err}");
    assert_eq!((count(&db, "SELECT count(*) FROM videos"), generation()), (1000, before));
    // A dry run says what would change and changes nothing.
    let out = sync(&["--dry-run", "--max-delete", "150"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("dry run: would insert 0, update 0, leave 850 unchanged, delete 150"), "{said}");
    assert!(
        said.contains(&format!("would delete: {}", {
            let mut gone = ids_of(&text).split_off(850);
            gone.sort();
            gone.swap_remove(0)
        })),
        "{said}"
    );
    assert_eq!((count(&db, "SELECT count(*) FROM videos"), generation()), (1000, before));
    // A rejected line: nothing changed, exit 1.
    std::fs::write(&file, kept.join("\n") + "\n{\"id\":\"broken\"}\n")?;
    let out = sync(&["--max-delete", "100%"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync refused: 1 line of"));
    assert_eq!(generation(), before);
    // A sync reads its file twice: not stdin. --dry-run and --max-delete need --sync.
    let out = run(&["import", "--db", db.to_str().unwrap(), "--sync", "-"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["import", "--db", db.to_str().unwrap(), "--dry-run", all.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["import", "--db", db.to_str().unwrap(), "--sync", "--max-delete", "lots", all.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-delete must be a number"));
    // Allowed: it happens, and the catalogue is the file.
    std::fs::write(&file, kept.join("\n") + "\n")?;
    let out = sync(&["--max-delete", "15%"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted=150"));
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 850);
    Ok(())
}

#[test]
fn sync_at_100k_videos_under_load_makes_the_catalogue_equal_to_the_file() -> TestResult {
    // Issue 35 point 4, at size, while a responder serves: the day-2 export drops 5% of
    // the catalogue, retitles 2% and adds 2,000 videos.
    let dir = TestDir::new("sync-100k");
    let db = dir.path("s.db");
    let day1 = dir.path("day1.jsonl");
    assert!(run(&["demo", "--out", day1.to_str().unwrap(), "--videos", "100000", "--seed", "21"]).status.success());
    assert!(run(&["import", "--db", db.to_str().unwrap(), day1.to_str().unwrap()]).status.success());
    let added = dir.path("added.jsonl");
    assert!(run(&["demo", "--out", added.to_str().unwrap(), "--videos", "2000", "--seed", "77"]).status.success());
    let mut day2 = String::new();
    for (i, line) in std::fs::read_to_string(&day1)?.lines().enumerate() {
        if i % 20 == 7 {
            continue;
        }
        if i % 50 == 3 {
            let mut v: serde_json::Value = serde_json::from_str(line)?;
            v["title"] = format!("Zanzibar retitled {i}").into();
            day2.push_str(&v.to_string());
        } else {
            day2.push_str(line);
        }
        day2.push('\n');
    }
    day2.push_str(&std::fs::read_to_string(&added)?);
    let file = dir.path("day2.jsonl");
    std::fs::write(&file, &day2)?;

    let server = crate::util::Server::start(&dir, &db, 2);
    crate::util::wait_index_current(&server, &db);
    let ask = |i: usize| {
        let r = server.get(&format!("/feed?q=music&limit={}", i % 20 + 1));
        r.status() == 200
    };
    let (out, ok, failed) = crate::util::under_load(2, ask, || {
        run(&["import", "--db", db.to_str().unwrap(), "--sync", file.to_str().unwrap()])
    });
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("deleted=5000") && said.contains("inserted=2000") && said.contains("updated=2000"), "{said}");
    assert_eq!(failed, 0, "the feed failed {failed} of {} requests during the sync", ok + failed);
    assert!(ok > 20, "only {ok} answers during the sync");
    // The catalogue is the file: the same ids, every row as the file has it.
    let conn = rusqlite::Connection::open(&db)?;
    let mut stored: Vec<String> =
        conn.prepare("SELECT id FROM videos")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut wanted = ids_of(&day2);
    stored.sort_unstable();
    wanted.sort_unstable();
    assert_eq!(stored.len(), 97_000);
    assert!(stored == wanted, "the catalogue's ids are not the file's");
    for line in day2.lines() {
        let v = videofeed::store::parse_line(line)?;
        assert_eq!(videofeed::store::stored_video(&conn, &v.id)?.as_ref(), Some(&v));
    }
    // And the feed serves it: the new titles found, the deleted videos gone.
    crate::util::wait_index_current(&server, &db);
    let body = crate::util::json(&server.get("/feed?q=zanzibar+retitled&limit=1"));
    let retitled_here =
        count(&db, "SELECT count(*) FROM videos WHERE title LIKE 'Zanzibar retitled %' AND region IN ('US', 'GLOBAL')");
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE title LIKE 'Zanzibar retitled %'"), 2000);
    assert_eq!(body["total"], retitled_here, "{body}");
    Ok(())
}
