//! Every front in front of the real binary, from Debian's packages: nginx,
//! lighttpd, Apache 2.4 (mod_proxy_fcgi, default `ProxyPass`: a connection per
//! request, no FCGI_KEEP_CONN), HAProxy 2.6 (fcgi-app, no keep-conn), h2o 2.2
//! (kept-alive FastCGI connections) and Caddy 2 (issue 16). Through each: the
//! feed, the trailing slash, a 400, HEAD with Content-Length, a 304, the write
//! API with the token, `/feedback` not routed; and every answer videofeed gives
//! before reading a body (401, 403, 404 with the write API off, 405, 413) to a
//! 2 MB and a 17 MB POST reaches the client with its status and JSON body,
//! because videofeed reads the rest of the body off (on its poller) before it
//! closes or reuses the connection. A missing front skips (printed) unless
//! VIDEOFEED_REQUIRE_FRONTS=1, which .ci/run sets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fronts::{Guard, render};
use crate::util::{Server, TestDir, TestResult, fixture_db, free_port, have, wait_for_port};

const TOKEN: &str = "fronts-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    Nginx,
    Lighttpd,
    Apache,
    Haproxy,
    H2o,
    Caddy,
}

impl Front {
    fn program(self) -> &'static str {
        match self {
            Front::Nginx => "nginx",
            Front::Lighttpd => "lighttpd",
            Front::Apache => "apache2",
            Front::Haproxy => "haproxy",
            Front::H2o => "h2o",
            Front::Caddy => "caddy",
        }
    }

    /// Starts the front on a free port, passing `/feed` to `socket`.
    fn start(self, dir: &TestDir, socket: &Path) -> (Guard, u16) {
        let port = free_port();
        let root = is_root();
        let mut vars = vec![("PORT", port.to_string()), ("SOCKET", socket.to_str().unwrap().to_owned())];
        vars.push(("USER", if root { "www-data".into() } else { whoami() }));
        vars.push(("GROUP", if root { "www-data".into() } else { whoami() }));
        vars.push(("H2O_USER", if root { "user: root".into() } else { String::new() }));
        let dir_s = dir.0.to_str().unwrap();
        let (template, args): (&str, Vec<String>) = match self {
            Front::Nginx => ("nginx.conf.in", vec!["-p".into(), dir_s.into(), "-c".into()]),
            Front::Lighttpd => ("lighttpd-socket.conf.in", vec!["-D".into(), "-f".into()]),
            Front::Apache => ("apache.conf.in", vec!["-DFOREGROUND".into(), "-f".into()]),
            Front::Haproxy => ("haproxy.cfg.in", vec!["-db".into(), "-f".into()]),
            Front::H2o => ("h2o.conf.in", vec!["-c".into()]),
            Front::Caddy => {
                ("Caddyfile.in", vec!["run".into(), "--adapter".into(), "caddyfile".into(), "--config".into()])
            }
        };
        let conf = render(template, dir, &vars);
        let mut cmd = Command::new(self.program());
        cmd.args(&args).arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
        if self == Front::Caddy {
            cmd.env("HOME", dir_s).env("XDG_DATA_HOME", dir_s).env("XDG_CONFIG_HOME", dir_s);
        }
        let child = cmd.spawn().unwrap();
        wait_for_port(port);
        (Guard(child), port)
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

fn whoami() -> String {
    Command::new("id").arg("-un").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap()
}

/// One curl request: (status, headers, body).
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl").args(["-s", "-i", "--max-time", "20"]).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // Skip interim answers (100 Continue) to the final one.
    let mut rest = text.as_str();
    loop {
        let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        if head.starts_with("HTTP/1.1 100") && !body.is_empty() {
            rest = body;
            continue;
        }
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        return (status, head.to_ascii_lowercase(), body.to_owned());
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// A request body file of `mb` megabytes.
fn body_file(dir: &TestDir, mb: usize) -> PathBuf {
    let path = dir.path(&format!("body-{mb}mb"));
    if !path.exists() {
        let line = format!("{}\n", "x".repeat(1023));
        std::fs::write(&path, line.repeat(mb * 1024)).unwrap();
    }
    path
}

/// A videofeed the fronts' workers (www-data when the tests run as root) can reach:
/// its socket is bound with mode 0666 (`VIDEOFEED_SOCKET_MODE`).
fn backend(dir: &TestDir, db: &Path, env: &[(&str, &str)]) -> Server {
    let mut env = env.to_vec();
    env.push(("VIDEOFEED_SOCKET_MODE", "0666"));
    let server = Server::start_with(dir, db, 4, &env);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "VIDEOFEED_SOCKET_MODE applies at bind");
    server
}

/// The functional contract through `front`, and every early answer to big bodies.
fn check_front(front: Front) -> TestResult {
    if !have(front.program()) || !have("curl") {
        return Ok(());
    }
    let dir = TestDir::new(front.program());
    let db = fixture_db(&dir);
    let (two, seventeen) = (body_file(&dir, 2), body_file(&dir, 17));
    let wrong = "Authorization: Bearer not-the-token".to_owned();
    let token = format!("Authorization: Bearer {TOKEN}");
    {
        // The write API on, with a 1 MiB body cap (so 2 MB is over it too).
        let server = backend(&dir, &db, &[("VIDEOFEED_ADMIN_TOKEN", TOKEN), ("VIDEOFEED_ADMIN_MAX_BODY", "1048576")]);
        let (_front, port) = front.start(&dir, &server.socket);
        let base = format!("http://127.0.0.1:{port}");
        let log = || format!("{front:?}: {}", server.log_text());

        let (status, head, body) = curl(&[&format!("{base}/feed?q=music&limit=3")]);
        assert_eq!(status, 200, "{front:?} {head}{body}");
        assert!(head.contains("cache-control: public, max-age=300"), "{front:?} {head}");
        let etag = head.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap_or("").trim().to_owned();
        assert!(!etag.is_empty(), "{front:?} {head}");
        assert_eq!(json(&body)["count"], 3, "{front:?}");
        assert_eq!(curl(&[&format!("{base}/feed/?q=music")]).0, 200, "{front:?}: trailing slash");
        let (status, _, body) = curl(&[&format!("{base}/feed?q=music&limit=500")]);
        assert_eq!((status, json(&body)["error"]["param"].as_str()), (400, Some("limit")), "{front:?}");
        // Issue 21: percent-encoded bytes that are not UTF-8 name q; enum values ignore case.
        // (lighttpd refuses a URL that decodes to invalid UTF-8 with its own 400 first.)
        let (status, _, body) = curl(&[&format!("{base}/feed?q=music%FF")]);
        assert_eq!(status, 400, "{front:?} {body}");
        if front != Front::Lighttpd {
            assert_eq!(json(&body)["error"]["param"].as_str(), Some("q"), "{front:?} {body}");
            assert!(body.contains("not valid UTF-8"), "{front:?} {body}");
        }
        assert_eq!(curl(&[&format!("{base}/feed?q=music&sort=RECENT")]).0, 200, "{front:?}: sort=RECENT");
        if front == Front::Nginx {
            // A raw 0xFF in the request line (nginx passes it on; lighttpd, HAProxy and
            // others answer 400 themselves).
            let (status, body) = crate::util::http_get_raw(port, b"/feed?q=music\xff")?;
            assert_eq!((status, json(&body)["error"]["param"].as_str()), (400, Some("q")), "{front:?} {body}");
        }
        let (status, head, body) = curl(&["-I", &format!("{base}/feed?q=music")]);
        assert_eq!(status, 200, "{front:?}");
        assert!(head.contains("content-length: "), "{front:?}: HEAD without Content-Length: {head}");
        assert!(body.is_empty());
        let (status, _, _) = curl(&["-H", &format!("If-None-Match: {etag}"), &format!("{base}/feed?q=music&limit=3")]);
        assert_eq!(status, 304, "{front:?}");
        let line = r#"{"id":"front0000001","title":"Front write","channel":"F","duration_seconds":5,"thumbnail":"https://x/f.jpg","region":"US"}"#;
        let (status, _, body) =
            curl(&["-X", "POST", "-H", &token, "--data-binary", line, &format!("{base}/feed/admin/videos")]);
        assert_eq!(status, 200, "{front:?}: the token reached videofeed: {body}");
        let (status, _, body) = curl(&[&format!("{base}/feedback")]);
        assert!(status == 404 && json(&body)["error"].is_null(), "{front:?}: /feedback was routed: {status} {body}");

        let admin = format!("{base}/feed/admin/videos");
        let cases: [(&[&str], &str, u16); 4] = [
            (&[], &admin, 401),
            (&["-H", &wrong], &admin, 403),
            (&["-H", &token], &admin, 413),
            (&[], &format!("{base}/feed"), 405),
        ];
        for (headers, url, want) in cases {
            for file in [&two, &seventeen] {
                let data = format!("@{}", file.display());
                let t = Instant::now();
                let mut args: Vec<&str> = vec!["-X", "POST", "--data-binary", &data];
                args.extend_from_slice(headers);
                args.push(url);
                let (status, head, body) = curl(&args);
                assert_eq!(status, want, "{front:?} {url} {}: {head}{body}\n{}", file.display(), log());
                assert_eq!(json(&body)["error"]["status"], want, "{front:?}: the JSON body: {body}");
                assert!(t.elapsed() < Duration::from_secs(15), "{front:?} took {:?}", t.elapsed());
            }
        }
        // The front and videofeed still serve.
        assert_eq!(curl(&[&format!("{base}/feed?q=jazz")]).0, 200, "{front:?}");
    }
    {
        // The write API off: 404 before the body.
        let server = backend(&dir, &db, &[]);
        let (_front, port) = front.start(&dir, &server.socket);
        for file in [&two, &seventeen] {
            let data = format!("@{}", file.display());
            let (status, _, body) =
                curl(&["-X", "POST", "--data-binary", &data, &format!("http://127.0.0.1:{port}/feed/admin/videos")]);
            assert_eq!((status, json(&body)["error"]["status"].as_u64()), (404, Some(404)), "{front:?}: {body}");
        }
    }
    Ok(())
}

#[test]
fn nginx_serves_the_contract_and_every_early_answer() -> TestResult {
    check_front(Front::Nginx)
}

#[test]
fn lighttpd_serves_the_contract_and_every_early_answer() -> TestResult {
    check_front(Front::Lighttpd)
}

#[test]
fn apache_mod_proxy_fcgi_serves_the_contract_and_every_early_answer() -> TestResult {
    check_front(Front::Apache)
}

#[test]
fn haproxy_fcgi_app_serves_the_contract_and_every_early_answer() -> TestResult {
    check_front(Front::Haproxy)
}

#[test]
fn h2o_with_kept_alive_fastcgi_survives_every_early_answer() -> TestResult {
    check_front(Front::H2o)
}

#[test]
fn caddy_serves_the_contract_and_every_early_answer() -> TestResult {
    check_front(Front::Caddy)
}

/// Sixteen clients through `port` until `stop`: (answered 200, failures).
fn load(port: u16, stop: &std::sync::atomic::AtomicBool) -> (usize, Vec<String>) {
    let words = ["music", "lofi", "jazz", "rain", "news", "game", "cook", "walk"];
    std::thread::scope(|s| {
        let clients: Vec<_> = (0..16)
            .map(|i| {
                s.spawn(move || {
                    let (mut ok, mut failed) = (0usize, Vec::new());
                    let mut n = i;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        n += 1;
                        match crate::util::http_get(port, &format!("/feed?q={}&limit=3", words[n % words.len()])) {
                            Ok((200, _)) => ok += 1,
                            other => failed.push(format!("{other:?}")),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let mut total = (0, Vec::new());
        for c in clients {
            let (ok, failed) = c.join().unwrap();
            total.0 += ok;
            total.1.extend(failed);
        }
        total
    })
}

/// Ten restarts under a 16-client load behind `front`, each way a restart
/// happens: without a process manager that keeps the socket, a new `serve
/// --socket PATH` taking the path over from the running one (which serves its
/// backlog and exits 0); and with one that does (systemd socket activation,
/// simulated by `tests/fronts/launcher.py`: stop, then start, the backlog
/// kept). No request fails.
fn restarts_under_load_lose_no_request(front_kind: Front) -> TestResult {
    use std::sync::atomic::{AtomicBool, Ordering};
    if !have(front_kind.program()) || !have("python3") {
        return Ok(());
    }
    let dir = TestDir::new(&format!("restart-{}", front_kind.program()));
    let db = fixture_db(&dir);
    let socket = dir.path("vf.sock");
    let serve = |n: usize| {
        Command::new(crate::util::bin())
            .args(["serve", "--db", db.to_str().unwrap(), "--socket", socket.to_str().unwrap(), "--workers", "4"])
            // The front's workers (www-data when the tests run as root) must reach the
            // socket from the first connection on, so its mode is set at bind.
            .args(["--socket-mode", "0666"])
            .env("VIDEOFEED_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path(&format!("serve-{n}.log"))).unwrap())
            .spawn()
            .unwrap()
    };
    // 1. Takeover on a path.
    let mut current = serve(0);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (front, port) = front_kind.start(&dir, &socket);
    let stop = AtomicBool::new(false);
    let (ok, failed) = std::thread::scope(|s| {
        let clients = s.spawn(|| load(port, &stop));
        std::thread::sleep(Duration::from_millis(500));
        for n in 1..=10 {
            let next = serve(n);
            let status = wait_exit(&mut current, Duration::from_secs(5));
            assert_eq!(status, Some(0), "restart {n}: the old process did not drain and exit 0");
            let log = std::fs::read_to_string(dir.path(&format!("serve-{n}.log"))).unwrap_or_default();
            assert!(log.contains("took over"), "restart {n}: {log}");
            current = next;
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::SeqCst);
        clients.join().unwrap()
    });
    drop(front);
    let _ = current.kill();
    let _ = current.wait();
    assert!(
        failed.is_empty(),
        "takeover: {} of {} failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 200, "only {ok} requests ran");

    // 2. A socket kept by a process manager (systemd-style), restarted by stop + start.
    let launcher_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fronts/launcher.py");
    let launched = dir.path("launcher.log");
    let launcher = Command::new("python3")
        .arg(&launcher_script)
        .arg(&socket)
        .arg(crate::util::bin())
        .args(["serve", "--db", db.to_str().unwrap(), "--workers", "4"])
        .env("VIDEOFEED_LOG", "info")
        .stdout(std::fs::File::create(&launched).unwrap())
        .stderr(std::fs::File::create(dir.path("launched-serve.log")).unwrap())
        .spawn()?;
    let launcher = Guard(launcher);
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::util::http_get_unix(&socket).is_err() {
        assert!(Instant::now() < deadline, "the launched videofeed never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (front, port) = front_kind.start(&dir, &socket);
    let stop = AtomicBool::new(false);
    let (ok, failed) = std::thread::scope(|s| {
        let clients = s.spawn(|| load(port, &stop));
        std::thread::sleep(Duration::from_millis(500));
        for n in 1..=10 {
            Command::new("kill").args(["-HUP", &launcher.0.id().to_string()]).status().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::fs::read_to_string(&launched).unwrap_or_default().lines().count() < n {
                assert!(Instant::now() < deadline, "restart {n} did not happen");
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::SeqCst);
        clients.join().unwrap()
    });
    drop(front);
    drop(launcher);
    let restarts = std::fs::read_to_string(&launched)?;
    assert_eq!(restarts.lines().filter(|l| l.contains("old exited 0")).count(), 10, "{restarts}");
    assert!(
        failed.is_empty(),
        "systemd-style: {} of {} failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 200, "only {ok} requests ran");
    Ok(())
}

#[test]
fn restarts_under_load_behind_nginx_lose_no_request() -> TestResult {
    restarts_under_load_lose_no_request(Front::Nginx)
}

#[test]
fn restarts_under_load_behind_apache_lose_no_request() -> TestResult {
    restarts_under_load_lose_no_request(Front::Apache)
}

#[test]
fn restarts_under_load_behind_haproxy_lose_no_request() -> TestResult {
    restarts_under_load_lose_no_request(Front::Haproxy)
}

#[test]
fn restarts_under_load_behind_lighttpd_lose_no_request() -> TestResult {
    restarts_under_load_lose_no_request(Front::Lighttpd)
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The shipped systemd units match what the restart test exercises: the socket
/// unit owns the socket (mode and group for the web server), the service is
/// started without `--socket` (it adopts fd 3) and stops with SIGTERM.
#[test]
fn the_systemd_units_hand_the_socket_over() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let socket = std::fs::read_to_string(root.join("videofeed.socket"))?;
    let service = std::fs::read_to_string(root.join("videofeed.service"))?;
    for line in ["ListenStream=/run/videofeed/videofeed.sock", "SocketMode=0660", "SocketGroup="] {
        assert!(socket.lines().any(|l| l.starts_with(line)), "videofeed.socket lacks {line}");
    }
    let exec = service.lines().find(|l| l.starts_with("ExecStart=")).ok_or("no ExecStart")?;
    assert!(exec.ends_with("videofeed serve") && !exec.contains("--socket"), "{exec}");
    assert!(service.contains("Requires=videofeed.socket") && service.contains("KillSignal=SIGTERM"));
    assert!(service.lines().any(|l| l.starts_with("Environment=VIDEOFEED_DB=")));
    // Issue 30: the settings install.sh keeps, in every unit that runs videofeed.
    for unit in ["videofeed.service", "videofeed-replica.service", "videofeed-litestream.service"] {
        let text = std::fs::read_to_string(root.join(unit))?;
        assert!(text.lines().any(|l| l == "EnvironmentFile=-/etc/videofeed/videofeed.env"), "{unit}");
    }
    Ok(())
}
