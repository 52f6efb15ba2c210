//! The background jobs through the real binary against a real HTTP server on
//! loopback (started here): thumbnails that exist, 404, 500, a server that
//! stalls, redirects, one that closes mid-answer, HEAD refused; a channel
//! source with good, slow, failing, malformed and unknown answers. Then the
//! feed, served by the real responder, with the results.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{Server, TestDir, TestResult, bin, json, run};

/// The origins here listen on loopback: the checker may contact them only with this set.
const PRIVATE_HOSTS: &str = "VIDEOFEED_CHECK_PRIVATE_HOSTS";

/// `videofeed ARGS` for a job against the loopback origins (private hosts allowed).
fn checker(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).env("VIDEOFEED_LOG", "warn").env(PRIVATE_HOSTS, "1").output().unwrap()
}

/// A small HTTP/1.1 server with fixed routes; counts requests per path.
struct Origin {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Origin {
    fn start() -> Origin {
        Origin::start_on("127.0.0.1")
    }

    fn start_on(addr: &str) -> Origin {
        let listener = TcpListener::bind((addr, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let counted = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let hits = Arc::clone(&counted);
                std::thread::spawn(move || serve(stream, &hits));
            }
        });
        Origin { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn url_on(&self, addr: &str, path: &str) -> String {
        format!("http://{addr}:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn serve(mut stream: TcpStream, hits: &Mutex<HashMap<String, usize>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let mut range = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        range |= h.to_ascii_lowercase().starts_with("range:");
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let n = {
        let mut hits = hits.lock().unwrap();
        let n = hits.entry(path.to_owned()).or_insert(0);
        *n += 1;
        *n
    };
    let name: String = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let reply = |stream: &mut TcpStream, status: &str, extra: &str, body: &str| {
        let body_part = if method == "HEAD" { "" } else { body };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body_part}",
            body.len()
        );
    };
    match path {
        "/ok.jpg" | "/vi/good/hqdefault.jpg" | "/vi/alt/mqdefault.jpg" => reply(&mut stream, "200 OK", "", "JPEG"),
        "/slow-ok.jpg" => {
            std::thread::sleep(Duration::from_millis(200));
            reply(&mut stream, "200 OK", "", "JPEG");
        }
        "/missing.jpg" | "/vi/alt/hqdefault.jpg" => reply(&mut stream, "404 Not Found", "", "no"),
        "/error.jpg" => reply(&mut stream, "500 Internal Server Error", "", "oops"),
        "/flaky.jpg" if n == 1 => reply(&mut stream, "503 Service Unavailable", "", "later"),
        "/flaky.jpg" => reply(&mut stream, "200 OK", "", "JPEG"),
        "/stall.jpg" => std::thread::sleep(Duration::from_secs(30)),
        "/redirect.jpg" => reply(&mut stream, "302 Found", "Location: /ok.jpg\r\n", ""),
        "/loop.jpg" => reply(&mut stream, "302 Found", "Location: /loop.jpg\r\n", ""),
        "/away.jpg" => {
            let to: String = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "to")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            reply(&mut stream, "302 Found", &format!("Location: {to}\r\n"), "");
        }
        "/close.jpg" => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
        }
        "/nohead.jpg" if method == "HEAD" => reply(&mut stream, "405 Method Not Allowed", "Allow: GET\r\n", ""),
        "/nohead.jpg" if range => reply(&mut stream, "206 Partial Content", "Content-Range: bytes 0-0/4\r\n", "J"),
        "/channel" => match name.as_str() {
            "Good" => reply(
                &mut stream,
                "200 OK",
                "Content-Type: application/json\r\n",
                r#"{"name":"Good","display_name":"Good Channel","avatar_url":"https://img.example/good.png","verified":true,"subscriber_count":1234}"#,
            ),
            "Slow" => {
                std::thread::sleep(Duration::from_secs(10));
                reply(&mut stream, "200 OK", "", r#"{"name":"Slow","verified":true}"#);
            }
            "Failing" => reply(&mut stream, "500 Internal Server Error", "", "down"),
            "Garbage" => reply(&mut stream, "200 OK", "Content-Type: application/json\r\n", "<html>proxy error</html>"),
            "Wrong" => reply(&mut stream, "200 OK", "", r#"{"name":"Someone Else","verified":true}"#),
            n if n.starts_with("Slowish") => {
                std::thread::sleep(Duration::from_millis(200));
                reply(&mut stream, "200 OK", "", &format!(r#"{{"name":"{n}","verified":false}}"#));
            }
            _ => reply(&mut stream, "404 Not Found", "", "{}"),
        },
        _ => reply(&mut stream, "404 Not Found", "", "no"),
    }
}

fn video(id: &str, title: &str, channel: &str, thumbnail: &str) -> String {
    format!(
        r#"{{"id":"{id}","title":"{title}","channel":"{channel}","duration_seconds":60,"thumbnail":"{thumbnail}","region":"GLOBAL"}}"#
    )
}

fn import(dir: &TestDir, lines: &[String]) -> std::path::PathBuf {
    let db = dir.path("jobs.db");
    let file = dir.path("videos.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run(&["import", "--db", db.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    db
}

type Check = (Option<i64>, Option<i64>, Option<String>, Option<String>);

fn checks(db: &std::path::Path) -> HashMap<String, Check> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT video_id, ok, status, error, alternative FROM thumbnail_checks").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The thumbnails of the feed's answer for `q`, by video id.
fn feed_thumbnails(server: &Server, q: &str) -> HashMap<String, String> {
    let body = json(&server.get(&format!("/feed?q={q}&limit=100")));
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r["thumbnail"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn thumbnail_checker_records_each_outcome_and_the_feed_never_shows_a_broken_one() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-thumbs");
    let cases = [
        ("ok", "/ok.jpg"),
        ("good", "/vi/good/hqdefault.jpg"),
        ("alt", "/vi/alt/hqdefault.jpg"),
        ("missing", "/missing.jpg"),
        ("error", "/error.jpg"),
        ("flaky", "/flaky.jpg"),
        ("stall", "/stall.jpg"),
        ("redirect", "/redirect.jpg"),
        ("loop", "/loop.jpg"),
        ("close", "/close.jpg"),
        ("nohead", "/nohead.jpg"),
    ];
    let lines: Vec<String> =
        cases.iter().map(|(id, path)| video(id, &format!("Thumbcase {id}"), "Checks", &origin.url(path))).collect();
    let db = import(&dir, &lines);

    let (summary, took) = run_timed(&[
        "check-thumbnails",
        "--db",
        db.to_str().unwrap(),
        "--timeout",
        "1s",
        "--retries",
        "1",
        "--rate",
        "0",
        "--concurrency",
        "4",
    ]);
    assert!(summary.contains("planned=11 done=11"), "{summary}");
    // The stalling server costs two 1 s tries and one back-off, not 30 s.
    assert!(took < Duration::from_secs(8), "took {took:?}");

    let c = checks(&db);
    let ok = |id: &str| c[id].0 == Some(1);
    for id in ["ok", "good", "flaky", "redirect", "nohead"] {
        assert!(ok(id), "{id}: {:?}", c[id]);
    }
    assert_eq!(c["redirect"].1, Some(200), "the status after following the redirect");
    assert_eq!(c["nohead"].1, Some(206), "HEAD refused: a ranged GET");
    assert_eq!(origin.hits("/flaky.jpg"), 2, "a 503 is retried");
    assert_eq!((c["missing"].0, c["missing"].1), (Some(0), Some(404)));
    assert_eq!(origin.hits("/missing.jpg"), 1, "a 404 is final");
    assert_eq!((c["error"].0, c["error"].1), (Some(0), Some(500)));
    assert_eq!(origin.hits("/error.jpg"), 2, "one retry");
    for (id, why) in [("stall", "timed out"), ("close", "connection"), ("loop", "redirects")] {
        assert_eq!((c[id].0, c[id].1), (Some(0), None), "{id}");
        assert!(c[id].2.as_deref().unwrap_or("").contains(why), "{id}: {:?}", c[id].2);
    }
    assert_eq!(c["alt"].0, Some(0));
    assert_eq!(c["alt"].3.as_deref(), Some(origin.url("/vi/alt/mqdefault.jpg").as_str()));
    assert_eq!(c["ok"].3, None);

    // Nothing is due again until --max-age.
    let out = checker(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0"]);
    assert!(String::from_utf8(out.stdout)?.contains("planned=0"));

    // The feed with a fallback image: broken ones replaced, the alternative preferred.
    let fallback = "https://site.example/fallback.jpg";
    let broken = ["missing", "error", "stall", "loop", "close"];
    {
        let server = Server::start_with(&dir, &db, 2, &[("VIDEOFEED_FALLBACK_THUMBNAIL", fallback)]);
        server.wait_log("rank index ready");
        for q in ["thumbcase", "thumbcase&channel=Checks"] {
            let t = feed_thumbnails(&server, q);
            assert_eq!(t.len(), 11, "{q}: every video shown");
            for id in broken {
                assert_eq!(t[id], fallback, "{q}: {id}");
            }
            assert_eq!(t["alt"], origin.url("/vi/alt/mqdefault.jpg"), "{q}");
            assert_eq!(t["ok"], origin.url("/ok.jpg"), "{q}");
        }
    }
    // Without a fallback: a broken thumbnail with no good alternative is left out, on the
    // rank-index path and the SQL path alike.
    {
        let server = Server::start(&dir, &db, 2);
        server.wait_log("rank index ready");
        for q in ["thumbcase", "thumbcase&sort=recent"] {
            let t = feed_thumbnails(&server, q);
            assert_eq!(t.len(), 6, "{q}: {t:?}");
            assert!(broken.iter().all(|id| !t.contains_key(*id)), "{q}");
            assert_eq!(t["alt"], origin.url("/vi/alt/mqdefault.jpg"));
        }
    }
    // omit: every broken one is left out, even with a replacement.
    {
        let env = [("VIDEOFEED_BROKEN_THUMBNAILS", "omit"), ("VIDEOFEED_FALLBACK_THUMBNAIL", fallback)];
        let server = Server::start_with(&dir, &db, 2, &env);
        server.wait_log("rank index ready");
        let t = feed_thumbnails(&server, "thumbcase");
        assert_eq!(t.len(), 5, "{t:?}");
        assert!(!t.contains_key("alt"));
    }
    // A changed thumbnail is due at once, and its old check no longer applies.
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute("UPDATE videos SET thumbnail = ?1 WHERE id = 'missing'", [origin.url("/ok.jpg")])?;
    let server = Server::start(&dir, &db, 1);
    assert!(feed_thumbnails(&server, "thumbcase").contains_key("missing"), "not hidden by a check of another URL");
    drop(server);
    let out = checker(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0"]);
    assert!(String::from_utf8(out.stdout)?.contains("planned=1 done=1 good=1"));
    assert_eq!(checks(&db)["missing"].0, Some(1));
    Ok(())
}

#[test]
fn channel_enrichment_tolerates_slow_failing_and_garbled_sources() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-channels");
    let channels = ["Good", "Slow", "Failing", "Garbage", "Wrong", "Unknown"];
    let lines: Vec<String> =
        channels.iter().map(|c| video(&format!("c{c}"), &format!("Chancase {c}"), c, &origin.url("/ok.jpg"))).collect();
    let db = import(&dir, &lines);
    // An old entry for a channel whose source now fails: it must survive the failed refresh.
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute(
        "INSERT INTO channels (name, found, display_name, verified, fetched_at) VALUES ('Failing', 1, 'Old Name', 1, 0)",
        [],
    )?;
    drop(conn);

    let (summary, took) = run_timed(&[
        "enrich-channels",
        "--db",
        db.to_str().unwrap(),
        "--source",
        &origin.url("/channel"),
        "--timeout",
        "1s",
        "--retries",
        "1",
        "--rate",
        "0",
    ]);
    assert!(summary.contains("planned=6 done=6 good=1 bad=1 replaced=0 failed=4"), "{summary}");
    assert!(took < Duration::from_secs(8), "the slow source is cut off: {took:?}");
    assert_eq!(origin.hits("/channel"), 1 + 2 * 4 + 1, "one try for Good and Unknown, two for the others");

    let conn = rusqlite::Connection::open(&db)?;
    let rows: HashMap<String, (i64, Option<String>, Option<i64>)> = conn
        .prepare("SELECT name, found, display_name, verified FROM channels")?
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?
        .collect::<Result<_, _>>()?;
    assert_eq!(rows["Good"], (1, Some("Good Channel".into()), Some(1)));
    assert_eq!(rows["Unknown"].0, 0);
    assert_eq!(rows["Failing"], (1, Some("Old Name".into()), Some(1)), "a failed refresh keeps the old entry");
    for c in ["Slow", "Garbage", "Wrong"] {
        assert!(!rows.contains_key(c), "nothing written for {c}");
    }

    // The feed: the additive fields only where the channel is known; the rest unchanged.
    let server = Server::start(&dir, &db, 2);
    let body = json(&server.get("/feed?q=chancase&limit=10"));
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in results {
        let o = r.as_object().unwrap();
        for key in ["id", "title", "channel", "duration_seconds", "thumbnail", "region", "score"] {
            assert!(o.contains_key(key), "{key} missing: {r}");
        }
        match r["channel"].as_str().unwrap() {
            "Good" => {
                assert_eq!(r["channel_verified"], true);
                assert_eq!(r["channel_avatar"], "https://img.example/good.png");
                assert_eq!(r["channel_display_name"], "Good Channel");
                assert_eq!(r["channel_subscribers"], 1234);
            }
            "Failing" => assert_eq!(r["channel_display_name"], "Old Name"),
            other => {
                assert!(!o.keys().any(|k| k.starts_with("channel_")), "{other}: {r}");
            }
        }
    }
    Ok(())
}

/// Runs `videofeed ARGS` to a successful end; returns its summary line and how long it took.
fn run_timed(args: &[&str]) -> (String, Duration) {
    let started = Instant::now();
    let out = checker(args);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), took)
}

/// Runs `videofeed ARGS`, sends SIGTERM after 1.5 s, checks that it stops within 3 s
/// with exit status 0 and says so; returns its summary line and its `done=` count.
fn stopped_after_1500ms(args: &[&str]) -> (String, i64) {
    let child = Command::new(bin())
        .env(PRIVATE_HOSTS, "1")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "stopped in {:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("stopped=1"), "{summary}");
    let done = summary.split("done=").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    (summary, done)
}

#[test]
fn sigterm_stops_a_run_and_keeps_every_finished_check() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-sigterm");
    let lines: Vec<String> =
        (0..400).map(|i| video(&format!("s{i}"), "Slow origin", "C", &origin.url("/slow-ok.jpg"))).collect();
    let db = import(&dir, &lines);
    let (summary, done) =
        stopped_after_1500ms(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--concurrency", "4"]);
    let kept = checks(&db).len() as i64;
    assert!(done > 0 && done < 400, "{summary}");
    assert_eq!(kept, done, "every finished check is written, nothing else");
    // The next run picks up the rest.
    let out = checker(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--concurrency", "16"]);
    assert!(String::from_utf8(out.stdout)?.contains(&format!("planned={}", 400 - done)));
    assert_eq!(checks(&db).len(), 400);
    Ok(())
}

// See: #17 (4). SIGKILL (LiteSpeed may kill ~14 ms after its SIGTERM) mid-run: the
// checker loses at most the checks it had not yet written (a batch: at most 200 rows
// or 1 s), the database is sound, and the next run checks exactly what is left.
#[test]
fn sigkill_mid_run_loses_at_most_the_unwritten_batch() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-sigkill");
    let lines: Vec<String> =
        (0..400).map(|i| video(&format!("k{i}"), "Slow origin", "C", &origin.url("/slow-ok.jpg"))).collect();
    let db = import(&dir, &lines);
    let mut child = Command::new(bin())
        .env(PRIVATE_HOSTS, "1")
        .args(["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--concurrency", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(2500));
    assert!(Command::new("kill").args(["-KILL", &child.id().to_string()]).status()?.success());
    let _ = child.wait();
    let conn = rusqlite::Connection::open(&db)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(check, "ok");
    let kept = checks(&db).len();
    assert!(kept > 0 && kept < 400, "some batches were written before the kill: {kept}");
    let out = checker(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--concurrency", "16"]);
    assert!(String::from_utf8(out.stdout)?.contains(&format!("planned={}", 400 - kept)), "exactly the rest");
    assert_eq!(checks(&db).len(), 400);
    Ok(())
}

#[test]
fn sigterm_stops_channel_enrichment_and_keeps_every_finished_channel() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-sigterm-channels");
    let lines: Vec<String> = (0..300)
        .map(|i| video(&format!("e{i}"), "Enrich", &format!("Slowish{i:03}"), &origin.url("/ok.jpg")))
        .collect();
    let db = import(&dir, &lines);
    let source = origin.url("/channel");
    let (summary, done) =
        stopped_after_1500ms(&["enrich-channels", "--db", db.to_str().unwrap(), "--source", &source, "--rate", "0"]);
    let kept: i64 = rusqlite::Connection::open(&db)?.query_row("SELECT count(*) FROM channels", [], |r| r.get(0))?;
    assert!(done > 0 && done < 300, "{summary}");
    assert_eq!(kept, done, "every finished channel is written, nothing else");
    Ok(())
}

#[test]
fn a_running_checker_never_locks_out_an_import_or_the_write_api() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-locks");
    let lines: Vec<String> =
        (0..600).map(|i| video(&format!("l{i}"), "Lock probe", "C", &origin.url("/slow-ok.jpg"))).collect();
    let db = import(&dir, &lines);
    let checker = Command::new(bin())
        .env(PRIVATE_HOSTS, "1")
        .args(["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--concurrency", "32"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Meanwhile: an import in many small transactions, and the write API of a running responder.
    let more = dir.path("more.jsonl");
    let extra: Vec<String> =
        (0..5000).map(|i| video(&format!("m{i}"), "More videos", "D", "https://x.example/m.jpg")).collect();
    std::fs::write(&more, extra.join("\n"))?;
    let token = "jobs-token";
    let server = Server::start_with(&dir, &db, 2, &[("VIDEOFEED_ADMIN_TOKEN", token)]);
    let out =
        run(&["import", "--db", db.to_str().unwrap(), "--no-bulk", "--batch-size", "100", more.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("locked"), "{err}");
    let mut params = videofeed::fcgi::client::get_params("POST", "/feed/admin/videos");
    let body = video("api1", "Api write", "E", "https://x.example/a.jpg");
    params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
    params.push(("HTTP_AUTHORIZATION".into(), format!("Bearer {token}")));
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let r = videofeed::fcgi::client::request(&mut server.connect(), 1, false, &pairs, body.as_bytes())?;
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    let out = checker.wait_with_output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("locked"));
    assert!(String::from_utf8(out.stdout)?.contains("written=600"));
    assert!(!server.log_text().contains("locked"));
    Ok(())
}

#[test]
fn stopping_serve_writes_every_check_its_checker_finished() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-serve-stop");
    let lines: Vec<String> =
        (0..400).map(|i| video(&format!("q{i}"), "Stop probe", "C", &origin.url("/slow-ok.jpg"))).collect();
    let db = import(&dir, &lines);
    let env = [
        ("VIDEOFEED_THUMBNAIL_CHECK_EVERY", "1h"),
        (PRIVATE_HOSTS, "1"),
        ("VIDEOFEED_THUMBNAIL_RATE", "0"),
        ("VIDEOFEED_THUMBNAIL_CONCURRENCY", "4"),
    ];
    let mut server = Server::start_with(&dir, &db, 2, &env);
    std::thread::sleep(Duration::from_millis(1500));
    server.signal("-TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(4)).and_then(|s| s.code()), Some(0));
    let log = server.log_text();
    let line = log.lines().find(|l| l.contains("thumbnail check: planned=400")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("stopped=1"), "{line}");
    let written: usize = line.split("written=").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse()?;
    assert!(written > 0 && written < 400, "{line}");
    assert_eq!(checks(&db).len(), written, "every finished check is in the database");
    Ok(())
}

#[test]
fn a_checker_without_network_stops_and_hides_nothing() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-nonet");
    // Port 9 on loopback: connection refused, as when this machine's network is down.
    let mut lines: Vec<String> =
        (0..120).map(|i| video(&format!("n{i}"), "Nonet probe", "C", "http://127.0.0.1:9/x.jpg")).collect();
    lines.push(video("fine", "Nonet probe", "C", &origin.url("/ok.jpg")));
    let db = import(&dir, &lines);
    let out = checker(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--retries", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("in a row got no answer") && err.contains("recorded none of them"), "{err}");
    assert!(checks(&db).values().all(|c| c.0 == Some(1)), "no video marked broken: {:?}", checks(&db));
    let server = Server::start(&dir, &db, 1);
    let shown = feed_thumbnails(&server, "nonet").len() + feed_thumbnails(&server, "nonet&offset=100").len();
    assert_eq!(shown, 121, "the feed still shows every video");
    Ok(())
}

#[test]
fn the_checker_never_contacts_internal_addresses_unless_allowed() -> TestResult {
    // Issue 21: the feed shows each check's outcome, so catalogue URLs must not probe
    // the internal network. "Public" here is 127.0.0.2 by the test hook; 127.0.0.1 is internal.
    let inside = Origin::start();
    let outside = Origin::start_on("127.0.0.2");
    let dir = TestDir::new("jobs-ssrf");
    let inward = outside.url_on("127.0.0.2", &format!("/away.jpg?to={}", inside.url("/ok.jpg")));
    let lines = vec![
        video("direct", "Guard probe", "C", &inside.url("/ok.jpg")),
        video("named", "Guard probe", "C", &format!("http://localhost:{}/ok.jpg", inside.port)),
        video("metadata", "Guard probe", "C", "http://169.254.169.254/latest/meta-data/x.jpg"),
        video("mapped", "Guard probe", "C", &format!("http://[::ffff:127.0.0.1]:{}/ok.jpg", inside.port)),
        video("redirected", "Guard probe", "C", &inward),
        video("public", "Guard probe", "C", &outside.url_on("127.0.0.2", "/ok.jpg")),
    ];
    let db = import(&dir, &lines);
    let out = Command::new(bin())
        .args(["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--timeout", "2s"])
        .env("VIDEOFEED_TEST_PUBLIC_ADDR", "127.0.0.2")
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(inside.hits("/ok.jpg"), 0, "an internal address was contacted");
    assert_eq!(outside.hits("/away.jpg"), 1, "the public origin was asked once");
    assert_eq!(outside.hits("/ok.jpg"), 1);
    let c = checks(&db);
    assert_eq!((c["public"].0, c["public"].1), (Some(1), Some(200)));
    for id in ["direct", "named", "metadata", "mapped", "redirected"] {
        assert_eq!((c[id].0, c[id].1), (Some(0), None), "{id}: {:?}", c[id]);
        let why = c[id].2.as_deref().unwrap_or("");
        assert!(why.starts_with("refused: ") && why.contains("VIDEOFEED_CHECK_PRIVATE_HOSTS=1"), "{id}: {why}");
    }
    // Allowed: the same checks reach the loopback origin (redirect included).
    rusqlite::Connection::open(&db)?.execute("DELETE FROM thumbnail_checks", [])?;
    let out = checker(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        inside.hits("/ok.jpg") >= 3,
        "direct, named, mapped and redirected reach it now: {} {:?}",
        inside.hits("/ok.jpg"),
        checks(&db)
    );
    assert_eq!(checks(&db)["redirected"].0, Some(1));
    Ok(())
}

#[test]
fn serve_runs_the_checker_on_its_own_thread() -> TestResult {
    let origin = Origin::start();
    let dir = TestDir::new("jobs-serve");
    let lines: Vec<String> = (0..20)
        .map(|i| {
            let path = if i % 2 == 0 { "/ok.jpg" } else { "/missing.jpg" };
            video(&format!("v{i}"), "Inserve probe", "C", &origin.url(path))
        })
        .collect();
    let db = import(&dir, &lines);
    let server = Server::start_with(
        &dir,
        &db,
        2,
        &[
            ("VIDEOFEED_THUMBNAIL_CHECK_EVERY", "1h"),
            (PRIVATE_HOSTS, "1"),
            ("VIDEOFEED_THUMBNAIL_RATE", "0"),
            ("VIDEOFEED_FALLBACK_THUMBNAIL", "/img/none.jpg"),
        ],
    );
    server.wait_log("thumbnail check: planned=20 done=20 good=10 bad=10");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = feed_thumbnails(&server, "inserve");
        if t.values().filter(|u| *u == "/img/none.jpg").count() == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the feed never showed the fallback: {t:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(checks(&db).len(), 20);
    // Health and metrics say what the jobs recorded (re-read within 10 s of a change).
    let deadline = Instant::now() + Duration::from_secs(20);
    let jobs = loop {
        let h = json(&server.get("/feed/health"));
        if h["jobs"]["thumbnails_checked"] == 20 {
            break h["jobs"].clone();
        }
        assert!(Instant::now() < deadline, "health never counted the checks: {h}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(jobs["thumbnails_broken"], 10);
    assert!(jobs["thumbnails_last_checked"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!((jobs["channels_known"].as_i64(), jobs["channels_last_fetched"].is_null()), (Some(0), true));
    let metrics = String::from_utf8(server.get("/feed/metrics").body().to_vec())?;
    assert!(metrics.contains("\nvideofeed_thumbnails_broken 10\n"), "{metrics}");
    Ok(())
}

/// A forward HTTP proxy on loopback, as a corporate one: absolute-form requests
/// (`GET http://host:port/path`) forwarded to the origin in origin-form, CONNECT
/// tunnelled. Counts the targets it was asked for.
struct Proxy {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || Proxy::handle(stream, &log));
            }
        });
        Proxy { port, asked }
    }

    fn handle(mut client: TcpStream, log: &Mutex<Vec<String>>) {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
            if !h.to_ascii_lowercase().starts_with("proxy-") {
                headers.push(h);
            }
        }
        log.lock().unwrap().push(target.clone());
        if method == "CONNECT" {
            let Ok(upstream) = TcpStream::connect(&target) else { return };
            let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
            let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
            let mut down_w = client.try_clone().unwrap();
            std::thread::spawn(move || std::io::copy(&mut up_r, &mut down_w));
            let _ = std::io::copy(&mut reader, &mut up_w);
            return;
        }
        let Some(rest) = target.strip_prefix("http://") else { return };
        let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
        let Ok(mut upstream) = TcpStream::connect(authority) else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        };
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        for h in &headers {
            if !h.to_ascii_lowercase().starts_with("connection:") {
                request.push_str(h);
            }
        }
        request.push_str("Connection: close\r\n\r\n");
        let _ = upstream.write_all(request.as_bytes());
        let _ = std::io::copy(&mut upstream, &mut client);
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

/// Issue 31: ureq took `HTTP(S)_PROXY`/`ALL_PROXY` from the environment, so the guard
/// judged the proxy's address instead of the thumbnail's: with an internal proxy every
/// check was refused and every video hidden; with another, internal URLs were fetched
/// through it. Now the environment's proxy is ignored; `VIDEOFEED_CHECK_PROXY` names
/// one, and then each target (each redirect too) is resolved and judged before it is
/// requested, an internal one never reaching the proxy.
#[test]
fn proxies_are_decided_by_our_setting_and_never_carry_an_internal_request() -> TestResult {
    let inside = Origin::start();
    let outside = Origin::start_on("127.0.0.2");
    let proxy = Proxy::start();
    let dir = TestDir::new("jobs-proxy");
    let inward = outside.url_on("127.0.0.2", &format!("/away.jpg?to={}", inside.url("/ok.jpg")));
    let lines = vec![
        video("public", "Proxy probe", "C", &outside.url_on("127.0.0.2", "/ok.jpg")),
        video("moved", "Proxy probe", "C", &outside.url_on("127.0.0.2", "/redirect.jpg")),
        video("internal", "Proxy probe", "C", &inside.url("/ok.jpg")),
        video("redirected", "Proxy probe", "C", &inward),
    ];
    let db = import(&dir, &lines);
    let check = |env: &[(&str, String)]| {
        rusqlite::Connection::open(&db).unwrap().execute("DELETE FROM thumbnail_checks", []).unwrap();
        let out = Command::new(bin())
            .args([
                "check-thumbnails",
                "--db",
                db.to_str().unwrap(),
                "--rate",
                "0",
                "--timeout",
                "2s",
                "--retries",
                "0",
            ])
            .env("VIDEOFEED_TEST_PUBLIC_ADDR", "127.0.0.2")
            .env("VIDEOFEED_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        checks(&db)
    };
    // 1. The environment's proxy variables (every spelling) are ignored: checked as without them.
    let env_proxy: Vec<(&str, String)> =
        ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]
            .iter()
            .map(|k| (*k, proxy.url()))
            .collect();
    let c = check(&env_proxy);
    assert_eq!(proxy.asked(), Vec::<String>::new(), "the environment's proxy was used");
    assert_eq!((c["public"].0, c["public"].1), (Some(1), Some(200)), "{:?}", c["public"]);
    assert_eq!((c["moved"].0, c["moved"].1), (Some(1), Some(200)), "{:?}", c["moved"]);
    for id in ["internal", "redirected"] {
        assert!(c[id].2.as_deref().unwrap_or("").starts_with("refused: 127.0.0.1"), "{id}: {:?}", c[id]);
    }
    assert_eq!(inside.hits("/ok.jpg"), 0);

    // 2. Our setting: public targets go through the proxy (a redirect's target too);
    //    internal ones, direct or redirected to, are refused without asking the proxy.
    let (public_hits, redirect_hits) = (outside.hits("/ok.jpg"), outside.hits("/redirect.jpg"));
    let c = check(&[("VIDEOFEED_CHECK_PROXY", proxy.url())]);
    assert_eq!((c["public"].0, c["public"].1), (Some(1), Some(200)), "{:?}", c["public"]);
    assert_eq!((c["moved"].0, c["moved"].1), (Some(1), Some(200)), "{:?}", c["moved"]);
    assert_eq!(outside.hits("/redirect.jpg"), redirect_hits + 1);
    assert!(outside.hits("/ok.jpg") >= public_hits + 2, "public and the redirect's target, through the proxy");
    let asked = proxy.asked();
    // (ureq tunnels every request through the proxy with CONNECT host:port.)
    let public_target = format!("127.0.0.2:{}", outside.port);
    assert_eq!(
        asked.iter().filter(|t| t.contains(&public_target)).count(),
        4,
        "public, moved and its target, away: {asked:?}"
    );
    assert!(
        !asked.iter().any(|t| t.contains(&format!("127.0.0.1:{}", inside.port))),
        "an internal target reached the proxy: {asked:?}"
    );
    for id in ["internal", "redirected"] {
        assert_eq!((c[id].0, c[id].1), (Some(0), None), "{id}: {:?}", c[id]);
        assert!(c[id].2.as_deref().unwrap_or("").starts_with("refused: 127.0.0.1"), "{id}: {:?}", c[id]);
    }
    assert_eq!(inside.hits("/ok.jpg"), 0, "an internal address was contacted");
    assert_eq!(outside.hits("/away.jpg"), 2, "the public first hop was asked (once per run)");
    Ok(())
}

/// Issue 31: no job can hide the catalogue. A run where most checks get no answer at
/// all (here: most thumbnails on a port nothing listens on, some on a working origin)
/// stops and records none of the unanswered ones; a run that would record more than
/// VIDEOFEED_CHECK_MAX_HIDE of the catalogue broken stops at the cap and says so, and
/// `--allow-hide` records them all.
#[test]
fn no_check_run_hides_the_catalogue_by_accident() -> TestResult {
    let origin = Origin::start();
    let dead = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port(); // closed at once: refused
    let dir = TestDir::new("jobs-hide");
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(video(&format!("up{i:03}"), "Hide probe", "C", &origin.url(&format!("/ok.jpg?i={i}"))));
    }
    for i in 0..160 {
        lines.push(video(&format!("down{i:03}"), "Hide probe", "C", &format!("http://127.0.0.1:{dead}/x{i}.jpg")));
    }
    let db = import(&dir, &lines);
    let out = checker(&[
        "check-thumbnails",
        "--db",
        db.to_str().unwrap(),
        "--rate",
        "0",
        "--retries",
        "0",
        "--concurrency",
        "4",
    ]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && said.contains("got no answer"), "{said}");
    let c = checks(&db);
    assert!(c.keys().all(|id| id.starts_with("up")), "an unanswered check was recorded broken: {c:?}");
    let server = Server::start(&dir, &db, 1);
    let shown =
        feed_thumbnails(&server, "hide&limit=100").len() + feed_thumbnails(&server, "hide&limit=100&offset=100").len();
    assert_eq!(shown, 200, "every video still in the feed");
    // Health and metrics say the run stopped, and why.
    let health = json(&server.get("/feed/health"));
    let why = health["jobs"]["thumbnails_last_run_stopped"].as_str().unwrap_or("");
    assert!(why.contains("got no answer"), "{health}");
    assert_eq!(crate::util::metric(&server, "videofeed_thumbnail_run_stopped"), 1.0);
    drop(server);

    // 300 thumbnails that really are gone (404), VIDEOFEED_CHECK_MAX_HIDE=10%: at most
    // max(10% of 500, 100) = 100 recorded, then the run stops saying why.
    let dir = TestDir::new("jobs-hide-cap");
    let mut lines = Vec::new();
    for i in 0..200 {
        lines.push(video(&format!("fine{i:03}"), "Cap probe", "C", &origin.url(&format!("/ok.jpg?c={i}"))));
    }
    for i in 0..300 {
        lines.push(video(&format!("gone{i:03}"), "Cap probe", "C", &origin.url(&format!("/missing.jpg?c={i}"))));
    }
    let db = import(&dir, &lines);
    let capped = Command::new(bin())
        .args(["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--retries", "0"])
        .env(PRIVATE_HOSTS, "1")
        .env("VIDEOFEED_CHECK_MAX_HIDE", "10%")
        .output()?;
    let said = String::from_utf8_lossy(&capped.stderr).into_owned();
    assert!(!capped.status.success() && said.contains("--allow-hide"), "{said}");
    let broken = checks(&db).values().filter(|c| c.0 == Some(0)).count();
    assert!(broken <= 100, "{broken} recorded broken past the cap");
    let allowed =
        checker(&["check-thumbnails", "--db", db.to_str().unwrap(), "--rate", "0", "--retries", "0", "--allow-hide"]);
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
    assert_eq!(checks(&db).values().filter(|c| c.0 == Some(0)).count(), 300, "--allow-hide records them all");
    let server = Server::start(&dir, &db, 1);
    assert!(
        json(&server.get("/feed/health"))["jobs"]["thumbnails_last_run_stopped"].is_null(),
        "the last run finished"
    );
    assert_eq!(crate::util::metric(&server, "videofeed_thumbnail_run_stopped"), 0.0);
    Ok(())
}
