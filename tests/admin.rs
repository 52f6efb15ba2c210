//! The write API and the single writer, through the real binary: auth, batches,
//! limits, bursty concurrent ingestion while serving, kill -9 mid-ingestion,
//! and `videofeed import` running beside it.

use std::io::Write;
use std::time::{Duration, Instant};

use videofeed::fcgi::client::{self, Response};

use crate::util::{Server, TestDir, TestResult, fixture_db, get_on, json, metric, run};

const TOKEN: &str = "s3cret-token-for-tests";

fn video(id: &str, title: &str, region: &str) -> String {
    format!(
        r#"{{"id":"{id}","title":"{title}","channel":"Writers","duration_seconds":60,"thumbnail":"https://x/{id}.jpg","region":"{region}"}}"#
    )
}

/// One write request with the params nginx would send.
fn write(server: &Server, method: &str, uri: &str, token: Option<&str>, body: &[u8]) -> Response {
    let mut params = client::get_params(method, uri);
    params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
    params.push(("CONTENT_TYPE".into(), "application/x-ndjson".into()));
    if let Some(t) = token {
        params.push(("HTTP_AUTHORIZATION".into(), format!("Bearer {t}")));
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut s = server.connect();
    client::request(&mut s, 1, false, &pairs, body).unwrap()
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn admin_server(dir: &TestDir, extra: &[(&str, &str)]) -> (Server, std::path::PathBuf) {
    let db = fixture_db(dir);
    let mut env = vec![("VIDEOFEED_ADMIN_TOKEN", TOKEN)];
    env.extend_from_slice(extra);
    (Server::start_with(dir, &db, 4, &env), db)
}

#[test]
fn write_api_is_off_without_a_token_and_needs_the_right_one() -> TestResult {
    let dir = TestDir::new("auth");
    let body = video("auth0000001", "Auth Test", "US");
    // Off: not set, or set but empty.
    for env in [vec![], vec![("VIDEOFEED_ADMIN_TOKEN", "")]] {
        let sub = TestDir::new("auth-off");
        let db = fixture_db(&sub);
        let server = Server::start_with(&sub, &db, 2, &env);
        let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), body.as_bytes());
        assert_eq!(r.status(), 404, "{env:?}");
        assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id = 'auth0000001'"), 0);
    }
    let (server, db) = admin_server(&dir, &[]);
    let r = write(&server, "POST", "/feed/admin/videos", None, body.as_bytes());
    assert_eq!(r.status(), 401);
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
    let r = write(&server, "POST", "/feed/admin/videos", Some("wrong"), body.as_bytes());
    assert_eq!(r.status(), 403);
    let r = write(&server, "DELETE", "/feed/admin/videos/v0000042818", Some(&format!("{TOKEN}x")), b"");
    assert_eq!(r.status(), 403);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id = 'auth0000001'"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id = 'v0000042818'"), 1);
    assert!(!server.log_text().contains(TOKEN), "the token never appears in logs");
    Ok(())
}

#[test]
fn post_upserts_delete_removes_and_both_purge_the_right_tags() -> TestResult {
    let dir = TestDir::new("crud");
    let (server, db) = admin_server(&dir, &[]);
    let feed = server.get("/feed?q=music&region=de");
    assert_eq!(feed.header("X-LiteSpeed-Tag"), Some("feed, feed-DE"));

    let body = [video("crud0000001", "Quokka Parade", "DE"), video("crud0000002", "Quokka Dance", "FR")].join("\n");
    let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), body.as_bytes());
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    let b = json(&r);
    assert_eq!((b["accepted"].as_u64(), b["inserted"].as_u64()), (Some(2), Some(2)));
    assert!(b["commit_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert_eq!(r.header("X-LiteSpeed-Purge"), Some("tag=feed-DE, tag=feed-FR"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    // Visible on the next query.
    assert_eq!(json(&server.get("/feed?q=quokka&region=DE"))["count"], 1);
    // Again, changed: an update; a GLOBAL video purges every feed.
    let body = video("crud0000001", "Quokka Parade Remix", "GLOBAL");
    let r = write(&server, "POST", "/feed/admin/videos/", Some(TOKEN), body.as_bytes());
    assert_eq!(json(&r)["updated"], 1);
    assert_eq!(r.header("X-LiteSpeed-Purge"), Some("tag=feed"));
    assert_eq!(json(&server.get("/feed?q=quokka&region=US"))["count"], 1);

    let r = write(&server, "DELETE", "/feed/admin/videos/crud0000002", Some(TOKEN), b"");
    assert_eq!(r.status(), 200);
    assert_eq!(json(&r)["deleted"], 1);
    assert_eq!(r.header("X-LiteSpeed-Purge"), Some("tag=feed-FR"));
    assert_eq!(json(&server.get("/feed?q=quokka&region=FR"))["count"], 1, "only the GLOBAL one is left");
    let r = write(&server, "DELETE", "/feed/admin/videos/crud0000002", Some(TOKEN), b"");
    assert_eq!(r.status(), 404);
    let r = write(&server, "PUT", "/feed/admin/videos", Some(TOKEN), b"");
    assert_eq!((r.status(), r.header("Allow")), (405, Some("POST")));
    assert_eq!(count(&db, "SELECT count(*) FROM videos"), 610);
    Ok(())
}

#[test]
fn get_patch_bulk_delete_and_array_bodies() -> TestResult {
    // Issue 35 point 3: one video read back whole, partial updates, bulk delete, array bodies.
    let dir = TestDir::new("crud35");
    let (server, db) = admin_server(&dir, &[]);
    let array =
        format!("[{}, {}]", video("arr0000001", "Axolotl Parade", "DE"), video("arr0000002", "Axolotl Dance", "FR"));
    let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), array.as_bytes());
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!((json(&r)["accepted"].as_u64(), json(&r)["inserted"].as_u64()), (Some(2), Some(2)));
    // An array with a bad element is refused whole, naming its position.
    let bad = format!("[{}, {{\"id\":\"arr0000004\"}}]", video("arr0000003", "Axolotl Nap", "DE"));
    let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), bad.as_bytes());
    assert_eq!(r.status(), 422);
    assert_eq!(
        (json(&r)["rejected"][0]["line"].as_u64(), json(&r)["rejected"][0]["field"].as_str()),
        (Some(2), Some("title"))
    );
    let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), b"[{\"id\": ");
    assert_eq!(r.status(), 400);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id = 'arr0000003'"), 0);

    // GET: every field, null for what is unknown; 404 when absent; the token is needed.
    let r = write(&server, "GET", "/feed/admin/videos/arr0000001", Some(TOKEN), b"");
    assert_eq!((r.status(), r.header("Cache-Control")), (200, Some("no-store")));
    let v = json(&r);
    assert_eq!(v["title"], "Axolotl Parade");
    assert_eq!(
        (v["region"].as_str(), v["view_count"].as_i64(), v["duration_seconds"].as_i64()),
        (Some("DE"), Some(0), Some(60))
    );
    assert!(v.get("published_at").is_some_and(serde_json::Value::is_null), "{v}");
    assert_eq!(write(&server, "GET", "/feed/admin/videos/nope", Some(TOKEN), b"").status(), 404);
    assert_eq!(write(&server, "GET", "/feed/admin/videos/arr0000001", None, b"").status(), 401);

    // PATCH: only the named fields change; numeric strings and dates as for a whole row.
    let r = write(
        &server,
        "PATCH",
        "/feed/admin/videos/arr0000001",
        Some(TOKEN),
        br#"{"view_count":"99","published_at":1714564800}"#,
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!((json(&r)["updated"].as_u64(), r.header("X-LiteSpeed-Purge")), (Some(1), Some("tag=feed-DE")));
    let v = json(&write(&server, "GET", "/feed/admin/videos/arr0000001", Some(TOKEN), b""));
    assert_eq!(
        (v["view_count"].as_i64(), v["published_at"].as_str(), v["title"].as_str()),
        (Some(99), Some("2024-05-01T12:00:00Z"), Some("Axolotl Parade"))
    );
    // A new title and region: searchable at once under the new words, both regions purged.
    let r = write(
        &server,
        "PATCH",
        "/feed/admin/videos/arr0000001",
        Some(TOKEN),
        br#"{"title":"Capybara Parade","region":"fr"}"#,
    );
    assert_eq!((r.status(), r.header("X-LiteSpeed-Purge")), (200, Some("tag=feed-DE, tag=feed-FR")));
    assert_eq!(json(&server.get("/feed?q=capybara&region=FR"))["count"], 1);
    assert_eq!(json(&server.get("/feed?q=axolotl&region=FR"))["count"], 1, "only arr0000002 is left under axolotl");
    // Refused, nothing changed: a bad value (422 naming it), a field that does not exist,
    // another id, a body that is not an object; 404 for no such video.
    for (body, status, param) in [
        (&br#"{"title":""}"#[..], 422, Some("title")),
        (br#"{"duration_seconds":-5}"#, 422, Some("duration_seconds")),
        (br#"{"viewcount":5}"#, 422, None),
        (br#"{"id":"other"}"#, 422, Some("id")),
        (br#"[1]"#, 400, None),
        (br#"{"#, 400, None),
    ] {
        let r = write(&server, "PATCH", "/feed/admin/videos/arr0000001", Some(TOKEN), body);
        assert_eq!(r.status(), status, "{}", String::from_utf8_lossy(body));
        assert_eq!(json(&r)["error"]["param"].as_str(), param, "{}", String::from_utf8_lossy(r.body()));
    }
    assert_eq!(count(&db, "SELECT view_count FROM videos WHERE id = 'arr0000001' AND title = 'Capybara Parade'"), 99);
    let r = write(&server, "PATCH", "/feed/admin/videos/nope", Some(TOKEN), br#"{"view_count":1}"#);
    assert_eq!(r.status(), 404);
    let r = write(&server, "PUT", "/feed/admin/videos/arr0000001", Some(TOKEN), b"");
    assert_eq!((r.status(), r.header("Allow")), (405, Some("GET, PATCH, DELETE")));

    // Bulk delete: a result per id; a bad list deletes nothing.
    let r = write(
        &server,
        "POST",
        "/feed/admin/videos/delete",
        Some(TOKEN),
        br#"{"ids":["arr0000001", 7, "arr0000002", "arr0000002"]}"#,
    );
    assert_eq!(r.status(), 422);
    let rejected: Vec<u64> =
        json(&r)["rejected"].as_array().unwrap().iter().filter_map(|x| x["line"].as_u64()).collect();
    assert_eq!(rejected, [2, 4]);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'arr%'"), 2);
    let r = write(
        &server,
        "POST",
        "/feed/admin/videos/delete",
        Some(TOKEN),
        br#"{"ids":["arr0000001","gone","arr0000002"]}"#,
    );
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    let b = json(&r);
    assert_eq!(b["deleted"], 2);
    let results: Vec<(String, String)> = b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["id"].as_str().unwrap().to_owned(), x["result"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        results,
        [
            ("arr0000001".into(), "deleted".into()),
            ("gone".into(), "not_found".into()),
            ("arr0000002".into(), "deleted".into())
        ]
    );
    assert_eq!(r.header("X-LiteSpeed-Purge"), Some("tag=feed-FR"));
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'arr%'"), 0);
    assert_eq!(json(&server.get("/feed?q=axolotl&region=FR"))["count"], 0);
    assert_eq!(json(&server.get("/feed?q=capybara&region=FR"))["count"], 0);
    for body in [&br#"{"ids":[]}"#[..], br#"{"id":["x"]}"#, b"nope"] {
        assert!(matches!(write(&server, "POST", "/feed/admin/videos/delete", Some(TOKEN), body).status(), 400 | 422));
    }
    // Channel keys follow the writes: a new channel is found in any case and without
    // its accents, a renamed one under its new name only, and a channel's last video
    // takes its name with it.
    let nandu = video("arr0000009", "Rhea Run", "GLOBAL").replace("Writers", "Ñandú Films");
    assert_eq!(write(&server, "POST", "/feed/admin/videos", Some(TOKEN), nandu.as_bytes()).status(), 200);
    assert_eq!(json(&server.get("/feed?channel=NANDU-films"))["total"], 1);
    let r = write(&server, "PATCH", "/feed/admin/videos/arr0000009", Some(TOKEN), br#"{"channel":"Emu Films"}"#);
    assert_eq!(r.status(), 200);
    assert_eq!(json(&server.get("/feed?channel=nandu+films"))["total"], 0);
    assert_eq!(json(&server.get("/feed?channel=emu+films"))["total"], 1);
    assert_eq!(count(&db, "SELECT count(*) FROM channel_keys WHERE name IN ('Ñandú Films', 'Emu Films')"), 1);
    assert_eq!(write(&server, "DELETE", "/feed/admin/videos/arr0000009", Some(TOKEN), b"").status(), 200);
    assert_eq!(count(&db, "SELECT count(*) FROM channel_keys WHERE name = 'Emu Films'"), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM channel_keys WHERE name = 'Writers'"),
        0,
        "arr's own channel left with them"
    );
    Ok(())
}

#[test]
fn the_get_command_writes_and_deletes_like_curl() -> TestResult {
    // Issue 21: `videofeed get -H … -d @file|-` and `-X DELETE` reach the write API.
    let dir = TestDir::new("getwrite");
    let (server, db) = admin_server(&dir, &[]);
    let sock = server.socket.to_str().unwrap().to_owned();
    let auth = format!("Authorization: Bearer {TOKEN}");
    let file = dir.path("batch.jsonl");
    std::fs::write(
        &file,
        format!("{}\n{}\n", video("getw0000001", "Get One", "US"), video("getw0000002", "Get Two", "DE")),
    )?;
    let out =
        run(&["get", "--socket", &sock, "-H", &auth, "-d", &format!("@{}", file.display()), "/feed/admin/videos"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(answer["inserted"], 2, "{answer}");
    // The body from standard input.
    let mut child = std::process::Command::new(crate::util::bin())
        .args(["get", "--socket", &sock, "-H", &auth, "-d", "-", "/feed/admin/videos"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("no stdin")?.write_all(video("getw0000003", "Get Three", "US").as_bytes())?;
    let out = child.wait_with_output()?;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout)?["inserted"], 1);
    let out = run(&["get", "--socket", &sock, "-X", "DELETE", "-H", &auth, "/feed/admin/videos/getw0000002"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'getw%'"), 2);
    // Without the token: a 401 is an answer (exit 0), shown with -i.
    let out = run(&["get", "-i", "--socket", &sock, "-d", "x", "/feed/admin/videos"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout)?.starts_with("Status: 401 "));
    Ok(())
}

// Issue 35 (5): dates without a zone are UTC with VIDEOFEED_ASSUME_UTC=on, refused
// (saying how to fix it) without; numbers as strings and Unix seconds are read.
#[test]
fn the_write_api_reads_real_export_dates_with_assume_utc() -> TestResult {
    let line = r#"{"id":"cms1","title":"From the CMS","channel":"C","duration_seconds":"183","thumbnail":"https://x.test/a.jpg","region":"US","published_at":"2024-05-01 12:00:00","view_count":"9"}"#;
    let dir = TestDir::new("admin-assume-utc-off");
    let (server, _) = admin_server(&dir, &[]);
    let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), line.as_bytes());
    assert_eq!(r.status(), 422);
    let body = json(&r);
    assert!(body["rejected"][0]["reason"].as_str().is_some_and(|r| r.contains("VIDEOFEED_ASSUME_UTC=on")), "{body}");
    let unix = line.replace(r#""2024-05-01 12:00:00""#, "1714564800");
    assert_eq!(write(&server, "POST", "/feed/admin/videos", Some(TOKEN), unix.as_bytes()).status(), 200);

    let dir = TestDir::new("admin-assume-utc-on");
    let (server, db) = admin_server(&dir, &[("VIDEOFEED_ASSUME_UTC", "on")]);
    let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), line.as_bytes());
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    let stored: (String, i64, i64) = rusqlite::Connection::open(&db)?.query_row(
        "SELECT published_at, duration_seconds, view_count FROM videos WHERE id = 'cms1'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    assert_eq!(stored, ("2024-05-01T12:00:00Z".to_owned(), 183, 9));
    Ok(())
}

#[test]
fn bad_batches_are_refused_whole_with_every_reason() -> TestResult {
    let dir = TestDir::new("badbatch");
    let (server, db) = admin_server(&dir, &[("VIDEOFEED_ADMIN_MAX_BODY", "4096")]);
    let good = video("bad00000001", "Fine Line", "US");
    let other = video("bad00000002", "Other Line", "US");
    let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
        (format!("{good}\nnot json"), 422, "not valid JSON", None),
        (
            format!("{good}\n{}", other.replace("60", "\"sixty\"")),
            422,
            "duration_seconds must be a number",
            Some("duration_seconds"),
        ),
        (format!("{good}\n{good}"), 422, "duplicate id", Some("id")),
        ("\n\n".into(), 400, "no videos", None),
        // Issue 21: thumbnails printed into pages and titles without control characters.
        (format!("{good}\n{}", other.replace("https://x/", "https://x/a b")), 422, "white space", Some("thumbnail")),
        (format!("{good}\n{}", other.replace("https://x/", "https://x/\\\"")), 422, "quotes", Some("thumbnail")),
        (format!("{good}\n{}", other.replace("https://x/", "file:///etc/")), 422, "http", Some("thumbnail")),
        (format!("{good}\n{}", other.replace("Other Line", "Other\\u0000Line")), 422, "control", Some("title")),
        (format!("{good}\n{}", other.replace("Writers", "Wri\\u0007ters")), 422, "control", Some("channel")),
    ];
    for (body, status, reason, field) in cases {
        let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), body.as_bytes());
        assert_eq!(r.status(), status, "{body}");
        let text = String::from_utf8_lossy(r.body()).into_owned();
        assert!(text.contains(reason), "{text}");
        if status == 422 {
            assert_eq!(json(&r)["rejected"][0]["line"], 2, "{text}");
            assert_eq!(json(&r)["rejected"][0]["field"].as_str(), field, "{text}");
        }
    }
    // A body that starts with a byte order mark (Windows editors) is JSON Lines all the same.
    let bom = format!("\u{feff}{other}");
    let r = write(&server, "POST", "/feed/admin/videos", Some(TOKEN), bom.as_bytes());
    assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
    // Unknown fields are ignored, as in the import format.
    let extra = good.replace("\"region\"", "\"mood\":\"calm\",\"region\"");
    assert_eq!(write(&server, "POST", "/feed/admin/videos", Some(TOKEN), extra.as_bytes()).status(), 200);
    // Over the cap: refused before the body is read (declared length) or after (no length).
    let big = vec![b'x'; 5000];
    assert_eq!(write(&server, "POST", "/feed/admin/videos", Some(TOKEN), &big).status(), 413);
    assert!(server.log_text().contains("status=413 early=1"), "refused from the declared length, before reading");
    let params = client::get_params("POST", "/feed/admin/videos");
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let auth = format!("Bearer {TOKEN}");
    pairs.push(("HTTP_AUTHORIZATION", &auth));
    let r = client::request(&mut server.connect(), 1, false, &pairs, &big)?;
    assert_eq!(r.status(), 413);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'bad%'"), 2, "only the two good batches");
    Ok(())
}

/// Posts `n` videos in batches of varied size; returns the acknowledged ids.
fn post_many(server_socket: &std::path::Path, writer: usize, n: usize) -> Vec<String> {
    let mut acked = Vec::new();
    let mut i = 0;
    let mut size = 1 + writer;
    while i < n {
        let batch: Vec<(String, String)> = (i..(i + size).min(n))
            .map(|k| {
                let id = format!("w{writer}x{k:06}");
                let line = video(&id, &format!("Burst writer{writer} item{k} music"), ["US", "DE", "GLOBAL"][k % 3]);
                (id, line)
            })
            .collect();
        let body = batch.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
        let mut params = client::get_params("POST", "/feed/admin/videos");
        params.push(("HTTP_AUTHORIZATION".into(), format!("Bearer {TOKEN}")));
        params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
        let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(server_socket) else { break };
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        match client::request(&mut s, 1, false, &pairs, body.as_bytes()) {
            Ok(r) if r.status() == 200 => acked.extend(batch.into_iter().map(|(id, _)| id)),
            Ok(r) if r.status() == 503 => std::thread::sleep(Duration::from_millis(20)), // retry the same batch
            Ok(r) => panic!("writer {writer}: status {} {}", r.status(), String::from_utf8_lossy(r.body())),
            Err(_) => break, // the server died (the kill -9 test)
        }
        if acked.len() > i {
            i = acked.len();
            size = size % 97 + 7;
        }
    }
    acked
}

#[test]
fn bursty_ingestion_while_serving_loses_nothing_and_fails_nothing() -> TestResult {
    let dir = TestDir::new("bursty");
    let (server, db) = admin_server(&dir, &[]);
    let socket = server.socket.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..32)
        .map(|i| {
            let (socket, stop) = (socket.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let (mut ok, mut bad) = (0u32, 0u32);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let q = ["music", "burst", "writer3", "lofi"][i % 4];
                    match get_on(&mut s, &format!("/feed?q={q}&limit=5"), true).status() {
                        200 => ok += 1,
                        _ => bad += 1,
                    }
                }
                (ok, bad)
            })
        })
        .collect();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let socket = socket.clone();
            std::thread::spawn(move || post_many(&socket, w, 1000))
        })
        .collect();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.join().map_err(|_| "writer panicked")?);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut bad) = (0, 0);
    for r in readers {
        let (o, b) = r.join().map_err(|_| "reader panicked")?;
        ok += o;
        bad += b;
    }
    assert_eq!(acked.len(), 8000, "every batch is eventually acknowledged");
    assert_eq!(bad, 0, "readers saw errors");
    assert!(ok > 100, "readers ran {ok} queries");
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'w%x%'"), 8000);
    let conn = rusqlite::Connection::open(&db)?;
    conn.execute("INSERT INTO videos_fts(videos_fts) VALUES('integrity-check')", [])?;
    assert_eq!(count(&db, "SELECT count(*) FROM videos_fts WHERE videos_fts MATCH 'burst'"), 8000);
    assert!(!server.log_text().contains("locked"), "no 'database is locked'");
    // Findable through the feed on the next query.
    let found = json(&server.get("/feed?q=writer7+item999&region=US"));
    assert!(found["results"][0]["title"].as_str().unwrap().contains("writer7 item999"), "{found}");
    assert!(found["results"][1]["title"].as_str().is_none_or(|t| !t.contains("writer7 item999")), "{found}");
    Ok(())
}

/// The database after a kill: integrity and FTS5 checks pass, and every acknowledged id is there.
fn assert_sound_with(db: &std::path::Path, acked: &[String], round: u64) -> TestResult {
    let conn = rusqlite::Connection::open(db)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(check, "ok");
    conn.execute("INSERT INTO videos_fts(videos_fts) VALUES('integrity-check')", [])?;
    let mut present = conn.prepare("SELECT count(*) FROM videos WHERE id = ?1")?;
    for id in acked {
        let n: i64 = present.query_row([id], |r| r.get(0))?;
        assert_eq!(n, 1, "round {round}: acknowledged {id} is missing");
    }
    Ok(())
}

#[test]
fn kill_9_during_ingestion_keeps_every_acknowledged_write_and_a_consistent_database() -> TestResult {
    for round in 0..4u64 {
        let dir = TestDir::new("kill9");
        let (mut server, db) = admin_server(&dir, &[]);
        let socket = server.socket.clone();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let socket = socket.clone();
                std::thread::spawn(move || post_many(&socket, w, 100_000))
            })
            .collect();
        // A different, random moment each round (printed, to reproduce a failure).
        let jitter =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_micros()) % 250;
        let wait = 100 + round * 150 + u64::from(jitter);
        eprintln!("round {round}: SIGKILL after {wait} ms");
        std::thread::sleep(Duration::from_millis(wait));
        server.signal("-KILL");
        let _ = server.wait_exit(Duration::from_secs(5));
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.join().map_err(|_| "writer panicked")?);
        }
        assert!(!acked.is_empty(), "round {round}: some writes were acknowledged before the kill");
        assert_sound_with(&db, &acked, round)?;
    }
    Ok(())
}

#[test]
fn import_runs_beside_the_serving_writer_without_locked_errors() -> TestResult {
    let dir = TestDir::new("coimport");
    let (server, db) = admin_server(&dir, &[]);
    let file = dir.path("more.jsonl");
    let mut f = std::fs::File::create(&file)?;
    for k in 0..30_000 {
        writeln!(f, "{}", video(&format!("imp{k:08}"), &format!("Imported clip {k}"), "US"))?;
    }
    drop(f);
    let socket = server.socket.clone();
    let api = std::thread::spawn(move || post_many(&socket, 9, 2000));
    let t = Instant::now();
    let out = run(&["import", "--db", db.to_str().unwrap(), "--batch-size", "2000", file.to_str().unwrap()]);
    let acked = api.join().map_err(|_| "api writer panicked")?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("locked"));
    assert_eq!(acked.len(), 2000);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'imp%'"), 30_000);
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(json(&server.get("/feed?q=imported+clip+29999"))["count"], 1);
    Ok(())
}

// See: #17 (4). LiteSpeed's restart as measured on OpenLiteSpeed 1.9.1: SIGTERM, then
// SIGKILL 14 ms later, while requests and writes run. Nothing acknowledged is lost,
// a write in flight is committed or was never acknowledged, and the database is sound.
#[test]
fn sigterm_then_sigkill_within_15_ms_loses_nothing_acknowledged() -> TestResult {
    for round in 0..3u64 {
        let dir = TestDir::new("termkill");
        let (mut server, db) = admin_server(&dir, &[]);
        let socket = server.socket.clone();
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let socket = socket.clone();
                std::thread::spawn(move || post_many(&socket, w, 100_000))
            })
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (socket, stop) = (socket.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if crate::util::http_get_unix(&socket).is_ok_and(|s| s == 200) {
                        answered += 1;
                    }
                }
                answered
            })
        };
        std::thread::sleep(Duration::from_millis(300 + round * 200));
        server.signal("-TERM");
        std::thread::sleep(Duration::from_millis(5 + round * 4));
        server.signal("-KILL");
        let _ = server.wait_exit(Duration::from_secs(5));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let answered = reader.join().map_err(|_| "reader panicked")?;
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.join().map_err(|_| "writer panicked")?);
        }
        assert!(
            !acked.is_empty() && answered > 0,
            "round {round}: the load ran ({} writes, {answered} reads)",
            acked.len()
        );
        assert_sound_with(&db, &acked, round)?;
    }
    Ok(())
}

// See: #33 (1). An importer's threads posting at once are never refused while the
// writer's queue has room: past VIDEOFEED_ADMIN_CONCURRENCY (1 of the 4 workers
// here) they wait in the poller for a worker, and no worker waits for a commit, so
// the feed keeps answering. Every acknowledged video is there afterwards, and each
// answer left within 100 ms of its commit. (The build before answered 503 at once.)
#[test]
fn parallel_posters_are_never_refused_while_the_writer_queue_has_room() -> TestResult {
    let dir = TestDir::new("posters");
    let (server, db) = admin_server(&dir, &[]);
    let socket = server.socket.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (socket, stop) = (socket.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    statuses.push(get_on(&mut s, "/feed?q=music&limit=5", true).status());
                }
                statuses
            })
        })
        .collect();
    // 32 posters, 8 batches each of 1..=64 videos, sent all at once: never retried.
    let posters: Vec<_> = (0..32)
        .map(|p| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut refused = Vec::new();
                for b in 0..8 {
                    let n = 1 + (p * 7 + b * 13) % 64;
                    let ids: Vec<String> = (0..n).map(|k| format!("pp{p:02}b{b}k{k:02}")).collect();
                    let body = ids
                        .iter()
                        .map(|id| video(id, &format!("Poster {id} music"), "US"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    let mut params = client::get_params("POST", "/feed/admin/videos");
                    params.push(("HTTP_AUTHORIZATION".into(), format!("Bearer {TOKEN}")));
                    params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
                    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let r = client::request(&mut s, 1, false, &pairs, body.as_bytes()).unwrap();
                    if r.status() == 200 {
                        acked.extend(ids);
                    } else {
                        refused.push(format!("{} {}", r.status(), String::from_utf8_lossy(r.body())));
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for p in posters {
        let (a, r) = p.join().map_err(|_| "poster panicked")?;
        acked.extend(a);
        refused.extend(r);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        let statuses = r.join().map_err(|_| "reader panicked")?;
        assert!(statuses.iter().all(|s| *s == 200), "the feed answered {statuses:?}");
        assert!(!statuses.is_empty());
    }
    assert!(refused.is_empty(), "{} of 256 writes refused, e.g. {:?}", refused.len(), refused.first());
    let expected: usize = (0..32).flat_map(|p| (0..8).map(move |b| 1 + (p * 7 + b * 13) % 64)).sum();
    assert_eq!(acked.len(), expected);
    let stored = count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'pp%'");
    assert_eq!(usize::try_from(stored)?, expected, "every acknowledged video is stored");
    // Answers followed their commits at once (the writer wakes the poller): nearly all
    // within 25 ms (a poller that only looked every 100 ms tick would leave most later).
    let answered = metric(&server, "videofeed_write_answer_delay_seconds_count");
    let prompt = metric(&server, "videofeed_write_answer_delay_seconds_bucket{le=\"0.025\"}");
    assert!(answered >= 256.0, "{answered} answers measured");
    assert!(prompt >= 0.9 * answered, "{prompt} of {answered} answers within 25 ms of their commit");
    Ok(())
}

// See: #33 (1). Only a full writer queue refuses a write: 503 + Retry-After, and
// nothing of it is written. The writer is held by another process's write lock;
// with VIDEOFEED_WRITE_QUEUE=1 the first write is in the writer's hands, the second
// fills the queue, the third is refused at once; the first two land afterwards.
#[test]
fn a_full_writer_queue_refuses_at_once_and_writes_nothing() -> TestResult {
    let dir = TestDir::new("queue-full");
    let (server, db) = admin_server(&dir, &[("VIDEOFEED_WRITE_QUEUE", "1"), ("VIDEOFEED_ADMIN_WAIT_MS", "20000")]);
    let holder = rusqlite::Connection::open(&db)?;
    holder.execute_batch("BEGIN IMMEDIATE")?;
    let post =
        |id: &str| write(&server, "POST", "/feed/admin/videos", Some(TOKEN), video(id, "Queued item", "US").as_bytes());
    let (first, second, third) = std::thread::scope(|s| {
        let first = s.spawn(|| post("qf-first"));
        std::thread::sleep(Duration::from_millis(500));
        let second = s.spawn(|| post("qf-second"));
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let third = post("qf-third");
        let third_took = t.elapsed();
        std::thread::sleep(Duration::from_millis(300));
        holder.execute_batch("ROLLBACK").unwrap();
        (first.join().unwrap(), second.join().unwrap(), (third, third_took))
    });
    let (third, third_took) = third;
    assert_eq!(third.status(), 503, "{}", String::from_utf8_lossy(third.body()));
    assert!(third.header("Retry-After").is_some(), "{:?}", third.headers());
    assert!(json(&third)["error"]["message"].as_str().unwrap_or("").contains("queue is full"), "{}", json(&third));
    assert!(third_took < Duration::from_millis(500), "refused at once, took {third_took:?}");
    assert_eq!(first.status(), 200, "{}", String::from_utf8_lossy(first.body()));
    assert_eq!(second.status(), 200, "{}", String::from_utf8_lossy(second.body()));
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id LIKE 'qf-%'"), 2);
    assert_eq!(count(&db, "SELECT count(*) FROM videos WHERE id = 'qf-third'"), 0, "the refused write wrote nothing");
    Ok(())
}

// See: #33 (1). A write that waits VIDEOFEED_ADMIN_WAIT_MS for a worker without getting
// one is answered 503 by the poller with nothing read or written (here 1 ms while the
// one write worker validates 2,000-line batches); one that got a worker but not its
// commit in time is answered "still queued" and lands.
#[test]
fn a_write_that_gets_no_worker_in_time_is_refused_whole() -> TestResult {
    let dir = TestDir::new("no-worker");
    let (server, db) = admin_server(&dir, &[("VIDEOFEED_ADMIN_WAIT_MS", "1")]);
    let answers: Vec<(usize, Response)> = std::thread::scope(|s| {
        let posts: Vec<_> = (0..8)
            .map(|p| {
                let server = &server;
                s.spawn(move || {
                    let body: Vec<String> =
                        (0..2000).map(|k| video(&format!("nw{p}-{k:04}"), "No worker item", "US")).collect();
                    (p, write(server, "POST", "/feed/admin/videos", Some(TOKEN), body.join("\n").as_bytes()))
                })
            })
            .collect();
        posts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut refused_whole = 0;
    for (p, r) in &answers {
        assert_eq!(r.status(), 503, "{}", String::from_utf8_lossy(r.body()));
        let message = json(r)["error"]["message"].as_str().unwrap_or("").to_owned();
        if message.contains("for a worker") {
            refused_whole += 1;
            assert!(r.header("Retry-After").is_some());
            // Nothing of it is written, now or later.
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(count(&db, &format!("SELECT count(*) FROM videos WHERE id LIKE 'nw{p}-%'")), 0);
        } else {
            assert!(message.contains("still queued"), "{message}");
        }
    }
    assert!(refused_whole >= 1, "no write waited past 1 ms for the one write worker");
    assert!(refused_whole < 8, "the first write gets a worker at once");
    Ok(())
}
