//! Fault tests: panics, a database replaced or deleted while serving, a long write
//! transaction from another process, a corrupted database at start.

use std::time::Duration;

use crate::util::{Server, TestDir, TestResult, fixture_db, json, run};

#[test]
fn a_handler_panic_is_a_500_and_the_worker_goes_on() -> TestResult {
    let dir = TestDir::new("panic");
    let server = Server::start(&dir, &fixture_db(&dir), 1);
    let r = server.get("/feed?q=__test_panic_handler__");
    assert_eq!(r.status(), 500);
    assert_eq!(json(&r)["error"]["status"], 500);
    assert_eq!(server.get("/feed?q=music").status(), 200, "the same (only) worker answers");
    assert!(server.log_text().contains("handler panicked"));
    Ok(())
}

#[test]
fn a_worker_that_dies_is_replaced_and_the_process_lives() -> TestResult {
    let dir = TestDir::new("workerdies");
    let mut server = Server::start(&dir, &fixture_db(&dir), 1);
    assert_eq!(server.get("/feed?q=__test_kill_worker__").status(), 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.get("/feed?q=music").status(), 200, "a replacement worker answers");
    assert!(server.wait_exit(Duration::from_millis(10)).is_none(), "the process lives");
    assert!(server.log_text().contains("worker 0 died; starting a replacement"), "{}", server.log_text());
    Ok(())
}

#[test]
fn readers_keep_answering_while_another_process_holds_a_write_transaction() -> TestResult {
    let dir = TestDir::new("longwrite");
    let db = fixture_db(&dir);
    let server = Server::start(&dir, &db, 2);
    let writer = rusqlite::Connection::open(&db)?;
    // Titles are indexed through videofeed_search_text(), which videofeed registers.
    videofeed::store::db::register_functions(&writer)?;
    writer.execute_batch(
        "BEGIN IMMEDIATE; INSERT INTO videos (id, title, channel, duration_seconds, thumbnail, region)
         VALUES ('held0000001', 'Uncommitted zebra', 'W', 1, 'https://x', 'US');",
    )?;
    for _ in 0..20 {
        let r = server.get("/feed?q=music");
        assert_eq!(r.status(), 200, "a reader never waits for the writer (WAL)");
    }
    assert_eq!(json(&server.get("/feed?q=zebra"))["count"], 0, "uncommitted rows are invisible");
    writer.execute_batch("COMMIT")?;
    assert_eq!(json(&server.get("/feed?q=zebra"))["count"], 1, "and visible right after the commit");
    Ok(())
}

#[test]
fn a_database_replaced_on_disk_is_picked_up_and_a_deleted_one_keeps_serving() -> TestResult {
    let dir = TestDir::new("replaced");
    let db = fixture_db(&dir);
    let server = Server::start(&dir, &db, 2);
    server.wait_log("rank index ready");
    assert_eq!(json(&server.get("/feed?q=zebracorn"))["count"], 0);
    // An operator builds a new database and moves it over the old one (atomic rename).
    let new = dir.path("new.db");
    let line = r#"{"id":"zc000000001","title":"Zebracorn parade","channel":"Z","duration_seconds":9,"thumbnail":"https://x/z","region":"US"}"#;
    std::fs::write(dir.path("new.jsonl"), format!("{line}\n"))?;
    assert!(run(&["import", "--db", new.to_str().unwrap(), dir.path("new.jsonl").to_str().unwrap()]).status.success());
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    std::fs::rename(&new, &db)?;
    // Every worker looks at the path at most once a second: within ~1 s all serve the new file.
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..10 {
        assert_eq!(json(&server.get("/feed?q=zebracorn"))["count"], 1, "the new file is served");
        assert_eq!(json(&server.get("/feed?q=music"))["count"], 0, "the old rows are gone with the old file");
    }
    assert!(server.log_text().contains("database file replaced on disk"));
    // Deleted while serving: the open file still answers (documented), no 500s.
    std::fs::remove_file(&db)?;
    let r = server.get("/feed?q=zebracorn");
    assert!(r.status() == 200 || r.status() == 503, "{}", r.status());
    Ok(())
}

#[test]
fn a_corrupted_database_at_start_is_a_one_line_error_and_exit_2() -> TestResult {
    let dir = TestDir::new("corrupt");
    let db = fixture_db(&dir);
    // Keep SQLite's header, wreck the pages after it.
    let mut bytes = std::fs::read(&db)?;
    for b in bytes.iter_mut().skip(4096) {
        *b = 0xA5;
    }
    std::fs::write(&db, bytes)?;
    let out = run(&["serve", "--db", db.to_str().unwrap(), "--socket", dir.path("s.sock").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(db.to_str().unwrap()), "{err}");
    Ok(())
}

#[test]
fn fd_exhaustion_is_survived_and_service_resumes_after_the_flood() -> TestResult {
    let dir = TestDir::new("fdflood");
    let db = fixture_db(&dir);
    let socket = dir.path("vf.sock");
    let log = dir.path("serve.log");
    // 64 descriptors in all: a flood of 200 connections runs the process out of them.
    let script = format!(
        "ulimit -n 64; exec {} serve --db {} --socket {} --workers 2",
        crate::util::bin().display(),
        db.display(),
        socket.display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("VIDEOFEED_LOG", "info")
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let flood: Vec<_> = (0..200).filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok()).collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    let mut answered = 0;
    for _ in 0..20 {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&socket) {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            if crate::util::get_on(&mut s, "/feed?q=music", false).status() == 200 {
                answered += 1;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log)?;
    assert_eq!(answered, 20, "serves again once the flood ends: {text}");
    assert!(text.contains("accept failed") && text.contains("retrying"), "EMFILE was hit and backed off: {text}");
    assert!(!text.contains("ERROR"), "{text}");
    Ok(())
}

#[test]
fn clients_that_leave_before_during_or_after_the_answer_cost_nothing() -> TestResult {
    use std::io::Write;
    let dir = TestDir::new("leavers");
    let server = Server::start(&dir, &fixture_db(&dir), 1);
    let request = videofeed::fcgi::client::encode_request(
        1,
        true,
        &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/feed?q=music&limit=100"), ("QUERY_STRING", "q=music&limit=100")],
        &[],
    );
    for _ in 0..20 {
        // Before: connect and leave.
        drop(server.connect());
        // During: half the request, then leave.
        let mut s = server.connect();
        s.write_all(&request[..request.len() / 2])?;
        drop(s);
        // After: the whole request, then leave without reading the answer.
        let mut s = server.connect();
        s.write_all(&request)?;
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    // The single worker is still there and answers.
    assert_eq!(server.get("/feed?q=jazz").status(), 200);
    let log = server.log_text();
    assert!(!log.contains("ERROR") && !log.contains("died"), "{log}");
    Ok(())
}

#[test]
fn reader_connections_cannot_write() -> TestResult {
    let dir = TestDir::new("readonly");
    let db = fixture_db(&dir);
    let reader = videofeed::store::db::open_reader(&db)?;
    let attempt = reader.execute("DELETE FROM videos", []);
    assert!(attempt.is_err(), "a write through a reader connection must fail");
    let n: i64 = reader.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?;
    assert_eq!(n, 609);
    Ok(())
}

#[test]
fn disk_full_during_import_is_a_clear_error_and_keeps_the_previous_data() -> TestResult {
    let is_root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !is_root {
        eprintln!("SKIP: mounting a small tmpfs needs root");
        return Ok(());
    }
    let dir = TestDir::new("diskfull");
    let mnt = dir.path("small");
    std::fs::create_dir_all(&mnt)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1200k", "tmpfs", mnt.to_str().unwrap()])
        .status()?
        .success();
    if !mounted {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return Ok(());
    }
    let result = (|| -> TestResult {
        let db = mnt.join("v.db");
        let fixture = crate::util::data("videos.jsonl");
        let out = run(&["import", "--db", db.to_str().unwrap(), fixture.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Far more than fits: 20,000 more videos in 10,000-row batches (not a bulk load).
        let big = dir.path("big.jsonl");
        let mut f = std::fs::File::create(&big)?;
        for k in 0..20_000 {
            use std::io::Write;
            writeln!(
                f,
                r#"{{"id":"full{k:07}","title":"Filling the disk with a long title number {k} and more words","channel":"Filler","duration_seconds":5,"thumbnail":"https://x/{k}","region":"US"}}"#
            )?;
        }
        drop(f);
        let out = run(&["import", "--db", db.to_str().unwrap(), "--no-bulk", big.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("full"), "a clear error: {err}");
        // The previous data is intact and consistent.
        let conn = rusqlite::Connection::open(&db)?;
        let n: i64 = conn.query_row("SELECT count(*) FROM videos WHERE id NOT LIKE 'full%'", [], |r| r.get(0))?;
        assert_eq!(n, 609);
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        assert_eq!(check, "ok");
        conn.execute("INSERT INTO videos_fts(videos_fts) VALUES('integrity-check')", [])?;
        Ok(())
    })();
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    result
}

/// Issue 30: the documented restore (a file renamed over the live database) left a
/// malformed database or killed the responder with SIGBUS whenever the live WAL held
/// writes. `videofeed restore` writes the backup's pages into the live file through
/// SQLite's backup API: under a read loop, with writes before and after the backup,
/// no request fails, the result is exactly the backup's rows, integrity holds, and
/// the rank index comes back for the restored content.
#[test]
fn restore_under_load_gives_exactly_the_backup_and_fails_no_request() -> TestResult {
    let dir = TestDir::new("restore");
    let db = dir.path("videos.db");
    assert!(run(&["demo", "--db", db.to_str().unwrap(), "--videos", "20000", "--seed", "3"]).status.success());
    let server = Server::start_with(&dir, &db, 4, &[("VIDEOFEED_ADMIN_TOKEN", "restore-token")]);
    crate::util::wait_index_current(&server, &db);
    let auth = [("HTTP_AUTHORIZATION", "Bearer restore-token")];
    let write = |id: &str, word: &str| {
        let line = format!(
            r#"{{"id":"{id}","title":"{word} restore check","channel":"R","duration_seconds":9,"thumbnail":"https://x.example/{id}.jpg","region":"US"}}"#
        );
        let r = crate::util::send(&server, "POST", "/feed/admin/videos", &auth, line.as_bytes());
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    };
    write("before-backup", "zebrabefore");
    let backup = dir.path("backup.db");
    let out = run(&["backup", "--db", db.to_str().unwrap(), backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    write("after-backup", "zebraafter");
    let rows_in_backup: i64 =
        rusqlite::Connection::open(&backup)?.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?;
    assert_eq!(json(&server.get("/feed?q=zebraafter"))["count"], 1);

    // Readers hammer the feed while the restore runs.
    let queries = ["/feed?q=music", "/feed?q=zebra", "/feed?q=lofi%20hip", "/feed?q=the&limit=50"];
    let ask = |i: usize| server.get(queries[i % queries.len()]).status() == 200;
    let (out, ok, failed) =
        crate::util::under_load(3, ask, || run(&["restore", "--db", db.to_str().unwrap(), backup.to_str().unwrap()]));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(&format!("{rows_in_backup} videos")), "{said}");
    assert!(ok > 100, "only {ok} answers during the restore");
    assert_eq!(failed, 0, "{failed} of {} requests failed during the restore", ok + failed);

    // Exactly the backup's rows: the write before it is there, the one after is gone.
    assert_eq!(json(&server.get("/feed?q=zebrabefore"))["count"], 1);
    assert_eq!(json(&server.get("/feed?q=zebraafter"))["count"], 0, "a row written after the backup survived");
    let conn = rusqlite::Connection::open(&db)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(integrity, "ok");
    let rows: i64 = conn.query_row("SELECT count(*) FROM videos", [], |r| r.get(0))?;
    assert_eq!(rows, rows_in_backup);
    // The rank index is rebuilt for the restored content and answers again; writes go on.
    crate::util::wait_index_current(&server, &db);
    let by_index = crate::util::index_answers(&server);
    assert_eq!(json(&server.get("/feed?q=zebrabefore%20restore"))["count"], 1);
    assert!(crate::util::index_answers(&server) > by_index, "the rank index did not answer after the restore");
    write("after-restore", "zebrarestored");
    assert_eq!(json(&server.get("/feed?q=zebrarestored"))["count"], 1);
    assert!(!server.log_text().contains("malformed"), "{}", server.log_text());
    Ok(())
}

/// Issue 30: a backup copied and renamed over the live database (what the docs used
/// to say) while its WAL held writes left a malformed database, or SIGBUS. Now the
/// responder notices that the `-wal` beside the new file is the old file's, keeps
/// answering from the open file (no failed read, no crash), refuses writes with the
/// reason, logs it, and serves the new file cleanly after a restart.
#[test]
fn a_file_renamed_over_a_database_with_wal_frames_is_refused_not_corrupted() -> TestResult {
    let dir = TestDir::new("unsafe-mv");
    let db = dir.path("videos.db");
    assert!(run(&["demo", "--db", db.to_str().unwrap(), "--videos", "20000", "--seed", "5"]).status.success());
    let token = [("VIDEOFEED_ADMIN_TOKEN", "mv-token")];
    let mut server = Server::start_with(&dir, &db, 4, &token);
    crate::util::wait_index_current(&server, &db);
    let auth = [("HTTP_AUTHORIZATION", "Bearer mv-token")];
    let write = |server: &Server, id: &str, word: &str| {
        let line = format!(
            r#"{{"id":"{id}","title":"{word} rename check","channel":"R","duration_seconds":9,"thumbnail":"https://x.example/{id}.jpg","region":"US"}}"#
        );
        crate::util::send(server, "POST", "/feed/admin/videos", &auth, line.as_bytes())
    };
    assert_eq!(write(&server, "one", "zebraone").status(), 200);
    let backup = dir.path("backup.db");
    assert!(run(&["backup", "--db", db.to_str().unwrap(), backup.to_str().unwrap()]).status.success());
    assert_eq!(write(&server, "two", "zebratwo").status(), 200);
    let ask = |_| server.get("/feed?q=zebratwo").status() == 200;
    let (renamed, ok, failed) = crate::util::under_load(3, ask, || -> std::io::Result<()> {
        let copy = dir.path("copy.db");
        std::fs::copy(&backup, &copy)?;
        std::fs::rename(&copy, &db)?;
        std::thread::sleep(Duration::from_millis(2200));
        Ok(())
    });
    renamed?;
    assert_eq!(failed, 0, "reads failed after the rename");
    assert!(ok > 50);
    assert!(server.child.try_wait()?.is_none(), "the responder died: {}", server.log_text());
    assert!(server.log_text().contains("not switching to the new database file"), "{}", server.log_text());
    let refused = write(&server, "three", "zebrathree");
    assert_eq!(refused.status(), 503);
    assert!(String::from_utf8_lossy(refused.body()).contains("videofeed restore"));
    // The renamed file was never opened through the old WAL: after a restart (the old
    // connections gone with their -wal/-shm), it is served whole.
    server.signal("-TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    let server = Server::start_with(&dir, &db, 2, &token);
    assert_eq!(json(&server.get("/feed?q=zebraone"))["count"], 1);
    assert_eq!(json(&server.get("/feed?q=zebratwo"))["count"], 0);
    let integrity: String = rusqlite::Connection::open(&db)?.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(integrity, "ok");
    Ok(())
}

/// Issue 32, point 2: the rank index file every process maps, changed in place while
/// serving under load (truncated, overwritten in the middle, copied over as `cp`
/// does), neither ends the process (it used to die of SIGBUS) nor makes it answer
/// wrongly: every answer is a 200 equal to the SQL path's, the cause is logged, and
/// the index is built again and answers.
#[test]
fn an_index_file_changed_in_place_under_load_neither_ends_the_process_nor_misleads_it() -> TestResult {
    use std::io::{Seek, Write};
    use std::os::unix::fs::PermissionsExt;
    let (dir, sql_dir) = (TestDir::new("rank-inplace"), TestDir::new("rank-inplace-sql"));
    let db = dir.path("videos.db");
    assert!(run(&["demo", "--db", db.to_str().unwrap(), "--videos", "20000", "--seed", "5"]).status.success());
    let mut server = Server::start_with(&dir, &db, 4, &[("VIDEOFEED_CACHE_BYTES", "0")]);
    let pid = server.child.id();
    // Running (a process that died is a zombie until the test reaps it).
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
    };
    let sql = Server::start_with(&sql_dir, &db, 2, &[("VIDEOFEED_CACHE_BYTES", "0"), ("VIDEOFEED_RANK_INDEX", "off")]);
    crate::util::wait_index_current(&server, &db);
    let rank = dir.path("videos.db.rank");
    let pristine = dir.path("pristine.rank");
    std::fs::copy(&rank, &pristine)?;
    // Prefixes of every length (wide merges read much of the file) and whole words.
    let words = ["m", "mu", "music", "lo", "lofi hip", "the", "a", "be", "ch", "gam", "no", "ra", "st", "live", "w"];
    let queries: Vec<String> = words
        .iter()
        .flat_map(|w| ["US", "GB", "DE"].map(|r| format!("/feed?q={}&region={r}&limit=50", w.replace(' ', "%20"))))
        .collect();
    let expected: Vec<Vec<u8>> = queries.iter().map(|q| sql.get(q).body().to_vec()).collect();
    let wrong = std::sync::Mutex::new(Vec::new());
    let ask = |i: usize| {
        let k = i % queries.len();
        let r = server.get(&queries[k]);
        if r.status() == 200 && r.body() != expected[k].as_slice() {
            wrong.lock().unwrap().push(queries[k].clone());
        }
        r.status() == 200
    };
    let writable = |path: &std::path::Path| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    let damaged = |server: &Server| crate::util::metric(server, "videofeed_rank_index_file_damaged_total");
    let rebuilt = |server: &Server, times: f64| {
        // The damage is seen (by the next answer at the latest), then the index is built
        // again and answers: a query it ranks counts as an index answer.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let before = crate::util::index_answers(server);
            assert_eq!(server.get("/feed?q=music&limit=7").status(), 200);
            if damaged(server) >= times && crate::util::index_answers(server) > before {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "never rebuilt: {}", server.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    type Change = Box<dyn Fn() -> std::io::Result<()>>;
    let (rank2, rank3, pristine2) = (rank.clone(), rank.clone(), pristine.clone());
    let changes: [(&str, Change); 3] = [
        (
            "truncated to 4096 bytes",
            Box::new(move || {
                writable(&rank)?;
                std::fs::OpenOptions::new().write(true).open(&rank)?.set_len(4096)
            }),
        ),
        (
            "overwritten in the middle",
            Box::new(move || {
                writable(&rank2)?;
                let mut f = std::fs::OpenOptions::new().write(true).open(&rank2)?;
                let len = f.metadata()?.len();
                f.seek(std::io::SeekFrom::Start(len / 2))?;
                f.write_all(&vec![0xA5; 64 << 10])
            }),
        ),
        (
            "copied over (cp: truncate, then write)",
            Box::new(move || {
                writable(&rank3)?;
                std::fs::copy(&pristine2, &rank3).map(|_| ())
            }),
        ),
    ];
    for (n, (what, change)) in changes.iter().enumerate() {
        let (result, ok, failed) = crate::util::under_load(3, ask, || {
            let r = change();
            std::thread::sleep(Duration::from_millis(700));
            r
        });
        result?;
        assert_eq!(failed, 0, "{what}: {failed} of {} answers were not 200", ok + failed);
        assert!(ok > 50, "{what}: only {ok} answers");
        assert!(alive(pid), "{what}: the process ended: {}", server.log_text());
        let wrong_now = std::mem::take(&mut *wrong.lock().unwrap());
        assert!(wrong_now.is_empty(), "{what}: answers unequal to SQL's: {wrong_now:?}");
        rebuilt(&server, (n + 1) as f64);
    }
    let log = server.log_text();
    assert!(log.contains("answering from SQL and building it again"), "{log}");
    assert!(log.contains("replace the file by rename, never in place"), "{log}");
    // And after all that, still exact.
    for (q, want) in queries.iter().zip(&expected) {
        assert_eq!(server.get(q).body(), want.as_slice(), "{q}");
    }
    assert!(server.wait_exit(Duration::from_millis(10)).is_none());
    Ok(())
}
