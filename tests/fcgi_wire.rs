//! FastCGI over a real Unix socket to the real binary.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use videofeed::fcgi::client;
use videofeed::fcgi::record::{self, Decoded, EndRequest, RecordType};

use crate::util::{Server, TestDir, TestResult, fixture_db, get_on, json};

/// Reads records until one of `kind` arrives (or the peer closes: None).
fn read_until<R: Read>(s: &mut R, kind: RecordType) -> Option<record::Record> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Ok(Decoded::Record(rec, used)) = record::decode(&buf) {
            buf.drain(..used);
            if rec.kind == kind {
                return Some(rec);
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn begin_and_params(id: u16, keep: bool, uri: &str) -> Vec<u8> {
    let mut out = Vec::new();
    record::encode_begin_request(&mut out, id, 1, u8::from(keep));
    let mut body = Vec::new();
    for (n, v) in client::get_params("GET", uri) {
        record::encode_pair(&mut body, n.as_bytes(), v.as_bytes());
    }
    record::encode(&mut out, RecordType::Params, id, &body);
    out
}

fn finish(id: u16) -> Vec<u8> {
    let mut out = Vec::new();
    record::encode(&mut out, RecordType::Params, id, &[]);
    record::encode(&mut out, RecordType::Stdin, id, &[]);
    out
}

#[test]
fn two_requests_on_one_kept_alive_connection() -> TestResult {
    let dir = TestDir::new("keepalive");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    let a = get_on(&mut s, "/feed?q=music&limit=2", true);
    let b = get_on(&mut s, "/feed?q=lofi&limit=3", true);
    assert_eq!((a.status(), b.status()), (200, 200));
    assert_eq!(json(&a)["query"], "music");
    assert_eq!(json(&b)["count"], 3);
    assert_eq!((a.app_status, a.protocol_status), (0, 0));
    Ok(())
}

#[test]
fn without_keep_conn_the_responder_closes() -> TestResult {
    let dir = TestDir::new("nokeep");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    assert_eq!(get_on(&mut s, "/feed?q=music", false).status(), 200);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)?;
    assert!(rest.is_empty(), "the connection should be closed after END_REQUEST");
    Ok(())
}

#[test]
fn get_values_reports_worker_count() -> TestResult {
    let dir = TestDir::new("getvalues");
    let server = Server::start(&dir, &fixture_db(&dir), 5);
    let mut s = server.connect();
    let mut body = Vec::new();
    for n in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"] {
        record::encode_pair(&mut body, n.as_bytes(), b"");
    }
    let mut out = Vec::new();
    record::encode(&mut out, RecordType::GetValues, 0, &body);
    s.write_all(&out)?;
    let rec = read_until(&mut s, RecordType::GetValuesResult).ok_or("no GET_VALUES_RESULT")?;
    let pairs = record::decode_pairs(&rec.content)?;
    let as_text: Vec<(String, String)> =
        pairs.into_iter().map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())).collect();
    let max_conns = videofeed::server::MAX_CONNS.to_string();
    assert!(as_text.contains(&("FCGI_MAX_CONNS".into(), max_conns)), "{as_text:?}");
    assert!(as_text.contains(&("FCGI_MAX_REQS".into(), "5".into())), "requests at once = workers");
    assert!(as_text.contains(&("FCGI_MPXS_CONNS".into(), "0".into())));
    // The connection still serves a request afterwards.
    assert_eq!(get_on(&mut s, "/feed?q=music", true).status(), 200);
    Ok(())
}

#[test]
fn unknown_record_type_gets_unknown_type() -> TestResult {
    let dir = TestDir::new("unknowntype");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    let mut out = Vec::new();
    record::encode(&mut out, RecordType::Other(99), 0, b"??");
    s.write_all(&out)?;
    let rec = read_until(&mut s, RecordType::UnknownType).ok_or("no UNKNOWN_TYPE")?;
    assert_eq!(rec.content, vec![99, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(get_on(&mut s, "/feed?q=music", true).status(), 200);
    Ok(())
}

#[test]
fn second_begin_request_gets_cant_mpx_conn() -> TestResult {
    let dir = TestDir::new("mpx");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    let mut out = begin_and_params(1, true, "/feed?q=music");
    record::encode_begin_request(&mut out, 2, 1, 1);
    s.write_all(&out)?;
    let rec = read_until(&mut s, RecordType::EndRequest).ok_or("no END_REQUEST")?;
    assert_eq!(rec.request_id, 2);
    assert_eq!(EndRequest::parse(&rec.content)?.protocol_status, 1);
    // Request 1 still completes.
    s.write_all(&finish(1))?;
    let resp = client::read_response(&mut s, 1)?;
    assert_eq!(resp.status(), 200);
    Ok(())
}

#[test]
fn abort_mid_request_answers_end_request_and_keeps_the_connection() -> TestResult {
    let dir = TestDir::new("abort");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    let mut out = begin_and_params(1, true, "/feed?q=music");
    record::encode(&mut out, RecordType::AbortRequest, 1, &[]);
    s.write_all(&out)?;
    let rec = read_until(&mut s, RecordType::EndRequest).ok_or("no END_REQUEST")?;
    let end = EndRequest::parse(&rec.content)?;
    assert_eq!((end.app_status, end.protocol_status), (0, 0));
    assert_eq!(get_on(&mut s, "/feed?q=lofi", true).status(), 200);
    Ok(())
}

#[test]
fn eof_mid_request_leaves_the_worker_serving() -> TestResult {
    let dir = TestDir::new("eof");
    let server = Server::start(&dir, &fixture_db(&dir), 1);
    for _ in 0..3 {
        let mut s = server.connect();
        s.write_all(&begin_and_params(1, true, "/feed?q=music"))?;
        drop(s);
    }
    // With one worker, this only works if the worker survived every abort.
    assert_eq!(server.get("/feed?q=music").status(), 200);
    assert!(!server.log_text().contains("ERROR"), "{}", server.log_text());
    Ok(())
}

#[test]
fn garbage_header_closes_only_its_own_connection() -> TestResult {
    let dir = TestDir::new("garbage");
    let server = Server::start(&dir, &fixture_db(&dir), 3);
    let mut good = server.connect();
    assert_eq!(get_on(&mut good, "/feed?q=music", true).status(), 200);
    let mut bad = server.connect();
    bad.write_all(b"GET /feed?q=music HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut rest = Vec::new();
    bad.read_to_end(&mut rest)?; // returns only because the responder closed it
    assert!(rest.is_empty());
    assert_eq!(get_on(&mut good, "/feed?q=lofi", true).status(), 200);
    assert_eq!(server.get("/feed?q=rock").status(), 200);
    assert!(server.log_text().contains("WARN"), "a malformed stream is logged at warn");
    Ok(())
}

#[test]
fn a_params_record_over_the_protocols_65535_bytes_closes_the_connection() -> TestResult {
    // One record cannot carry 70 KiB (its length field is 16 bits): what follows the
    // first 64 KiB is not FastCGI, so the connection is closed unanswered. (PARAMS over
    // the cap in well-formed records are answered 431: too_many_params_are_answered_431
    // and feed_api::parameters_over_the_cap_get_a_431_and_the_connection_serves_on.)
    let dir = TestDir::new("oversize");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    let mut out = Vec::new();
    record::encode_begin_request(&mut out, 1, 1, 1);
    let mut body = Vec::new();
    record::encode_pair(&mut body, b"HTTP_X_BIG", &vec![b'x'; 70 * 1024]);
    record::encode(&mut out, RecordType::Params, 1, &body);
    s.write_all(&out)?;
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(server.get("/feed?q=music").status(), 200);
    Ok(())
}

#[test]
fn sixty_four_concurrent_connections_are_all_answered() -> TestResult {
    let dir = TestDir::new("concurrent");
    let server = Server::start(&dir, &fixture_db(&dir), 16);
    let socket = server.socket.clone();
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let words = ["music", "lofi", "rock", "jazz"];
                let a = get_on(&mut s, &format!("/feed?q={}&limit=5", words[i % 4]), true);
                let b = get_on(&mut s, "/feed?q=study", false);
                (a.status(), b.status())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().map_err(|_| "client thread panicked")?, (200, 200));
    }
    Ok(())
}

#[test]
fn sigterm_with_a_request_in_flight_still_answers_it_then_exits_0() -> TestResult {
    let dir = TestDir::new("sigterm");
    let mut server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    // Half a request: the responder has started on it.
    s.write_all(&begin_and_params(1, true, "/feed?q=music&limit=3"))?;
    std::thread::sleep(Duration::from_millis(100));
    // LiteSpeed sends SIGTERM and SIGUSR1 back to back.
    server.signal("-TERM");
    server.signal("-USR1");
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused once stopping (our own socket file is removed).
    assert!(std::os::unix::net::UnixStream::connect(&server.socket).is_err());
    s.write_all(&finish(1))?;
    let resp = client::read_response(&mut s, 1)?;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(&resp)["count"], 3);
    let started = Instant::now();
    let status = server.wait_exit(Duration::from_secs(3)).ok_or("did not exit")?;
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    assert!(started.elapsed() < Duration::from_secs(2));
    Ok(())
}

#[test]
fn idle_kept_alive_connection_does_not_delay_stop() -> TestResult {
    let dir = TestDir::new("idlestop");
    let mut server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    assert_eq!(get_on(&mut s, "/feed?q=music", true).status(), 200);
    let t = Instant::now();
    server.signal("-INT");
    let status = server.wait_exit(Duration::from_secs(3)).ok_or("did not exit")?;
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    Ok(())
}

#[test]
fn tcp_listener_on_loopback_and_web_server_addrs() -> TestResult {
    let dir = TestDir::new("tcp");
    let db = fixture_db(&dir);
    let port = crate::util::free_port();
    let spawn = |env: &[(&str, &str)]| {
        std::process::Command::new(crate::util::bin())
            .args(["serve", "--db", db.to_str().unwrap(), "--listen", &port.to_string(), "--workers", "2"])
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let mut child = spawn(&[])?;
    crate::util::wait_for_port(port);
    let out = crate::util::run(&["get", "--connect", &format!("127.0.0.1:{port}"), "/feed?q=music&limit=1"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout)?.contains("\"count\":1"));

    // FCGI_WEB_SERVER_ADDRS without 127.0.0.1: our loopback connection is closed unanswered.
    let mut child = spawn(&[("FCGI_WEB_SERVER_ADDRS", "192.0.2.1")])?;
    crate::util::wait_for_port(port);
    let out = crate::util::run(&["get", "--connect", &format!("127.0.0.1:{port}"), "/feed?q=music"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(2), "refused peers get no answer");
    Ok(())
}

#[test]
fn a_large_body_is_read_and_answered_not_dropped() -> TestResult {
    let dir = TestDir::new("bigbody");
    let server = Server::start(&dir, &fixture_db(&dir), 1);
    let mut s = server.connect();
    let r = crate::util::request_on(&mut s, "POST", "/feed?q=music", true, &vec![b'z'; 300 * 1024]);
    assert_eq!(r.status(), 405);
    assert_eq!(get_on(&mut s, "/feed?q=music", true).status(), 200);
    Ok(())
}

#[test]
fn bound_socket_is_0660_a_stale_one_is_replaced_and_another_programs_is_not() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("sockmode");
    let db = fixture_db(&dir);
    // A stale socket file left by a crashed process.
    drop(std::os::unix::net::UnixListener::bind(dir.path("vf.sock"))?);
    assert!(dir.path("vf.sock").exists());
    let server = Server::start(&dir, &db, 1);
    let mode = std::fs::metadata(&server.socket)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    assert_eq!(server.get("/feed?q=music").status(), 200);
    // A live socket of another program is never taken.
    let other = dir.path("other.sock");
    let _held = std::os::unix::net::UnixListener::bind(&other)?;
    let out = crate::util::run(&["serve", "--db", db.to_str().unwrap(), "--socket", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another process is serving on this socket") && err.contains("pid"), "{err}");
    assert_eq!(server.get("/feed?q=music").status(), 200);
    Ok(())
}

#[test]
fn a_stalled_request_does_not_hold_the_stop_past_the_grace_period() -> TestResult {
    let dir = TestDir::new("stalled");
    let mut server = Server::start(&dir, &fixture_db(&dir), 2);
    let mut s = server.connect();
    s.write_all(&begin_and_params(1, true, "/feed?q=music"))?; // and never finishes it
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    server.signal("-TERM");
    let status = server.wait_exit(Duration::from_secs(4)).ok_or("did not exit")?;
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_millis(2500), "took {:?}", t.elapsed());
    assert!(server.log_text().contains("still being received after the grace period"), "{}", server.log_text());
    Ok(())
}

#[test]
fn max_requests_recycles_the_process_gracefully() -> TestResult {
    let dir = TestDir::new("recycle");
    let mut server = crate::util::Server::start_with(&dir, &fixture_db(&dir), 2, &[("VIDEOFEED_MAX_REQUESTS", "3")]);
    let mut s = server.connect();
    for _ in 0..3 {
        assert_eq!(get_on(&mut s, "/feed?q=music", true).status(), 200, "every request up to the limit is answered");
    }
    let status = server.wait_exit(Duration::from_secs(3)).ok_or("did not recycle")?;
    assert_eq!(status.code(), Some(0));
    assert!(server.log_text().contains("recycling: 3 requests served"));
    Ok(())
}

#[test]
fn idle_kept_alive_connections_never_hold_a_worker() -> TestResult {
    let dir = TestDir::new("idlehold");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    // Twenty kept-alive connections, each used once and then left idle, as a web server's
    // connection pool does: far more than the two workers.
    let mut parked = Vec::new();
    for _ in 0..20 {
        let mut s = server.connect();
        assert_eq!(get_on(&mut s, "/feed?q=music&limit=1", true).status(), 200);
        parked.push(s);
    }
    // A new connection is still answered at once, and so is every parked one.
    let t = Instant::now();
    assert_eq!(server.get("/feed?q=jazz").status(), 200);
    assert!(t.elapsed() < Duration::from_millis(500), "took {:?}", t.elapsed());
    for s in &mut parked {
        assert_eq!(get_on(s, "/feed?q=rock&limit=1", true).status(), 200);
    }
    Ok(())
}

#[test]
fn many_short_connections_keep_being_accepted() -> TestResult {
    // See the poller's connection count: closed connections must be released.
    let dir = TestDir::new("manyconns");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    for i in 0..(videofeed::server::MAX_CONNS + 100) {
        assert_eq!(server.get("/feed?q=music&limit=1").status(), 200, "connection {i}");
    }
    Ok(())
}

#[test]
fn a_slow_sender_is_cut_off_but_an_idle_kept_alive_connection_is_not() -> TestResult {
    let dir = TestDir::new("slowloris");
    let server =
        crate::util::Server::start_with(&dir, &fixture_db(&dir), 1, &[("VIDEOFEED_REQUEST_TIMEOUT_MS", "600")]);
    // Idle between requests for longer than the limit: still served.
    let mut idle = server.connect();
    assert_eq!(get_on(&mut idle, "/feed?q=music", true).status(), 200);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(get_on(&mut idle, "/feed?q=jazz", true).status(), 200);
    drop(idle);
    // Half a request, then silence: the connection is closed after the limit, and the only
    // worker serves others again.
    let mut slow = server.connect();
    slow.write_all(&begin_and_params(1, true, "/feed?q=music"))?;
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(500) && t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(server.get("/feed?q=music").status(), 200);
    assert!(server.log_text().contains("not completely sent within 600 ms"));
    Ok(())
}

#[test]
fn too_many_params_are_answered_431() -> TestResult {
    let dir = TestDir::new("manyparams");
    let server = crate::util::Server::start_with(&dir, &fixture_db(&dir), 1, &[("VIDEOFEED_MAX_PARAMS", "20")]);
    let mut params: Vec<(String, String)> = client::get_params("GET", "/feed?q=music");
    for i in 0..30 {
        params.push((format!("HTTP_X_{i}"), "1".into()));
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut s = server.connect();
    let r = client::request(&mut s, 1, false, &pairs, &[])?;
    assert_eq!(r.status(), 431, "answered, then closed (issue 21; it used to close without an answer)");
    assert_eq!(server.get("/feed?q=music").status(), 200);
    Ok(())
}

/// One kind of request a peer can flood with, each answered without a worker.
fn early_answered_flood(kind: usize, token: &str) -> Vec<u8> {
    let mut one = Vec::new();
    match kind {
        // GET_VALUES: a management record, answered with GET_VALUES_RESULT.
        0 => {
            let mut body = Vec::new();
            for n in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"] {
                record::encode_pair(&mut body, n.as_bytes(), b"");
            }
            record::encode(&mut one, RecordType::GetValues, 0, &body);
        }
        // 401: a write without the token; 413: a write declaring a body over the cap;
        // 431: more params than allowed. All on a kept connection, with no body.
        _ => {
            let mut params = client::get_params(if kind == 3 { "GET" } else { "POST" }, "/feed/admin/videos");
            if kind == 2 {
                params.push(("CONTENT_LENGTH".into(), "1000000".into()));
                params.push(("HTTP_AUTHORIZATION".into(), format!("Bearer {token}")));
            }
            if kind == 3 {
                params.extend((0..40).map(|i| (format!("HTTP_X_{i}"), "1".to_string())));
            }
            let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            one = client::encode_request(1, true, &pairs, &[]);
        }
    }
    // Far more than the socket buffers hold, answered or not.
    one.repeat((4 << 20) / one.len().max(1))
}

/// Sockets process `pid` has open.
fn open_fds(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn peers_that_never_read_their_early_answers_hold_no_worker() -> TestResult {
    // Issue 31, point 5: 64 connections flood requests answered without a worker (GET_VALUES,
    // 401, 413, 431) and never read. The poller sends what the sockets take and waits for
    // room without blocking, so every worker stays free; the stuck connections are closed
    // once they have not taken their bytes within VIDEOFEED_WRITE_TIMEOUT_MS (3 s here). (Before, the
    // bytes went to a worker that blocked in write for 30 s: two such peers pinned both.)
    let dir = TestDir::new("neverread");
    let token = "never-read-token";
    let env = [
        ("VIDEOFEED_WRITE_TIMEOUT_MS", "3000"),
        ("VIDEOFEED_REQUEST_TIMEOUT_MS", "5000"),
        ("VIDEOFEED_ADMIN_TOKEN", token),
        ("VIDEOFEED_ADMIN_MAX_BODY", "1000"),
        ("VIDEOFEED_MAX_PARAMS", "30"),
        ("VIDEOFEED_LOG", "info"),
    ];
    let server = Server::start_with(&dir, &fixture_db(&dir), 2, &env);
    // Both workers open their database first, so the timing below is the wait alone.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| assert_eq!(server.get("/feed?q=music&limit=1").status(), 200));
        }
    });
    let pid = server.child.id();
    // The warm-up's connections are closed by the poller when it sees their end: wait
    // until the count settles, so none of them is counted as a flooding one later.
    let mut baseline = open_fds(pid);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = open_fds(pid);
        if now == baseline {
            break;
        }
        baseline = now;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..64 {
        let (tx, mut s, flood) = (tx.clone(), server.connect(), early_answered_flood(i % 4, token));
        std::thread::spawn(move || {
            // Writes until the responder stops reading (it does while its answers wait).
            s.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
            // (It times out: how much was taken is not the point.)
            let _ = s.write_all(&flood);
            let _ = tx.send((i, s));
        });
    }
    drop(tx);
    let stuck: Vec<_> = rx.iter().collect();
    let flooded = Instant::now();
    assert_eq!(stuck.len(), 64);
    let during = open_fds(pid);
    assert!(
        during >= baseline + 64,
        "every flooding connection is still open: {during} fds, {baseline} before, after {:?}: {}",
        flooded.elapsed(),
        server.log_text()
    );
    // Every worker is free: a feed request is answered at once.
    let mut took = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = server.get("/feed?q=music&limit=3");
        took.push(t.elapsed());
        assert_eq!(r.status(), 200);
    }
    took.sort();
    assert!(took[2] < Duration::from_millis(50), "median feed answer under the flood: {took:?}");
    assert!(took[4] < Duration::from_secs(1), "slowest feed answer under the flood: {took:?}");
    // The stuck connections are closed after the write timeout (3 s), or the request
    // timeout (5 s), and not much later.
    let deadline = flooded + Duration::from_secs(15);
    while open_fds(pid) > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(open_fds(pid) <= baseline, "stuck connections still open after 15 s: {} fds", open_fds(pid));
    let log = server.log_text();
    // Cut off for not reading, or (a request left half read while its answers waited)
    // for not completing a request within VIDEOFEED_REQUEST_TIMEOUT_MS.
    let cut = log.matches("the peer read none or part of its answer in 3000 ms").count();
    let half_sent = log.matches("the request was not completely sent within 5000 ms").count();
    assert!(cut >= 32, "{cut} connections cut off for not reading:\n{log}");
    assert_eq!(cut + half_sent, 64, "every flooding connection cut off, for one of the two:\n{log}");
    for (i, mut s) in stuck {
        // What they were sent ends: closed, not left hanging.
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut sink = Vec::new();
        match s.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "connection {i}: {e}"),
        }
    }
    assert_eq!(server.get("/feed?q=music").status(), 200);
    Ok(())
}
