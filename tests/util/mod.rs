//! Test helpers: a unique temp dir per test, the fixture database built by the
//! real `videofeed import`, the real binary started on a Unix socket, and a
//! FastCGI client built on the crate's own codec.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use videofeed::fcgi::client::{self, Response};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory, removed on drop unless the test panicked.
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        // Short paths: a Unix socket path must fit in 108 bytes.
        let dir = std::env::temp_dir().join(format!("vf-{}-{n}-{}", std::process::id(), &name[..name.len().min(20)]));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_videofeed"))
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Runs `videofeed ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env("VIDEOFEED_LOG", "warn").output().unwrap()
}

/// The fixture database: `videofeed import` of tests/data/videos.jsonl into `dir`.
pub fn fixture_db(dir: &TestDir) -> PathBuf {
    let db = dir.path("videos.db");
    let out = run(&["import", "--db", db.to_str().unwrap(), data("videos.jsonl").to_str().unwrap()]);
    assert!(out.status.success(), "fixture import failed: {}", String::from_utf8_lossy(&out.stderr));
    db
}

/// A running `videofeed serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Server {
    pub fn start(dir: &TestDir, db: &Path, workers: usize) -> Server {
        Self::start_with(dir, db, workers, &[])
    }

    pub fn start_with(dir: &TestDir, db: &Path, workers: usize, env: &[(&str, &str)]) -> Server {
        Self::start_under(dir, db, workers, env, &[])
    }

    /// As [`Server::start_with`], run through `wrapper` (a program and its arguments, such as strace).
    pub fn start_under(dir: &TestDir, db: &Path, workers: usize, env: &[(&str, &str)], wrapper: &[&str]) -> Server {
        let socket = dir.path("vf.sock");
        let log = dir.path("serve.log");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let child = command
            .args(["serve", "--db", db.to_str().unwrap(), "--socket", socket.to_str().unwrap()])
            .args(["--workers", &workers.to_string()])
            .env("VIDEOFEED_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Server { child, socket, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not start: {}", self.log_text());
    }

    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// One GET over a new connection without keep-alive.
    pub fn get(&self, uri: &str) -> Response {
        get_on(&mut self.connect(), uri, false)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits (up to 30 s) until the server's log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log_text().contains(needle) {
            assert!(Instant::now() < deadline, "log never said {needle:?}: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET request on an open stream.
pub fn get_on<S: Read + Write>(stream: &mut S, uri: &str, keep_conn: bool) -> Response {
    request_on(stream, "GET", uri, keep_conn, &[])
}

/// One request with any method and body on an open stream, with the params a web server sends.
pub fn request_on<S: Read + Write>(stream: &mut S, method: &str, uri: &str, keep_conn: bool, body: &[u8]) -> Response {
    let params = client::get_params(method, uri);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    client::request(stream, 1, keep_conn, &pairs, body).unwrap()
}

pub fn json(resp: &Response) -> serde_json::Value {
    serde_json::from_slice(resp.body())
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&resp.stdout)))
}

/// Whether an external program exists; when it does not, a front test skips
/// (printing why) unless VIDEOFEED_REQUIRE_FRONTS=1, when it fails.
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("VIDEOFEED_REQUIRE_FRONTS").as_deref() == Ok("1") {
            panic!("{program} is required (VIDEOFEED_REQUIRE_FRONTS=1) but not installed");
        }
        eprintln!("SKIP: {program} is not installed");
    }
    found
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listening on port {port}");
}

/// One HTTP/1.1 GET to 127.0.0.1:`port` on a new connection: (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_get_raw(port, path.as_bytes())
}

/// [`http_get`] with the request target's bytes sent as they are (say a raw 0xFF).
pub fn http_get_raw(port: u16, path: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET ")?;
    s.write_all(path)?;
    s.write_all(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// Direct children of a process (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| st.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned)))
                .flatten()
                .is_some_and(|ppid| ppid == pid.to_string())
        })
        .collect()
}

/// One request with extra CGI params (headers as `HTTP_*`) and a body, as nginx would send it.
pub fn send(server: &Server, method: &str, uri: &str, extra: &[(&str, &str)], body: &[u8]) -> Response {
    let mut params = client::get_params(method, uri);
    if !body.is_empty() {
        params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
        params.push(("CONTENT_TYPE".into(), "application/x-ndjson".into()));
    }
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        params.push(((*name).to_owned(), (*value).to_owned()));
    }
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    client::request(&mut server.connect(), 1, false, &pairs, body).unwrap()
}

/// A counter or gauge from the server's `/feed/metrics` (loopback may read it), 0 when absent.
pub fn metric(server: &Server, series: &str) -> f64 {
    let text = String::from_utf8(server.get("/feed/metrics").body().to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Feed answers the rank index computed so far (see `videofeed_searches_total`).
pub fn index_answers(server: &Server) -> f64 {
    metric(server, "videofeed_searches_total{path=\"index\"}")
}

/// Waits (up to 30 s) until the server's rank index is built from the database's current generation.
pub fn wait_index_current(server: &Server, db: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    loop {
        let generation: i64 = rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT value FROM videofeed_meta WHERE key = 'generation'", [], |r| r.get(0))
            .unwrap();
        // A query starts a rebuild when the index is behind, and brings the delta up
        // to a compacted base (a new limit each time: a cached answer would do neither).
        attempt = attempt % 100 + 1;
        server.get(&format!("/feed?q=zzzwaitindex&limit={attempt}"));
        if metric(server, "videofeed_rank_index_generation") == generation as f64 {
            return;
        }
        assert!(Instant::now() < deadline, "rank index never caught up: {}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One FastCGI GET of the feed over a Unix socket (readiness checks).
pub fn http_get_unix(socket: &Path) -> std::io::Result<u16> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let params = videofeed::fcgi::client::get_params("GET", "/feed?q=music&limit=1");
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    Ok(videofeed::fcgi::client::request(&mut s, 1, false, &pairs, &[])?.status())
}

/// Runs `during` while `clients` threads call `ask` in a loop (with a growing request
/// number; `ask` says whether the answer was a success), from 200 ms before it to 300 ms
/// after. Returns what `during` returned, the successes and the failures.
pub fn under_load<T>(
    clients: usize,
    ask: impl Fn(usize) -> bool + Sync,
    during: impl FnOnce() -> T,
) -> (T, usize, usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = AtomicBool::new(false);
    let (ok, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let out = std::thread::scope(|s| {
        for k in 0..clients {
            let (stop, ok, failed, ask) = (&stop, &ok, &failed, &ask);
            s.spawn(move || {
                let mut i = k;
                while !stop.load(Ordering::Relaxed) {
                    i += clients;
                    let counter = if ask(i) { ok } else { failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(200));
        let out = during();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        out
    });
    (out, ok.into_inner(), failed.into_inner())
}
