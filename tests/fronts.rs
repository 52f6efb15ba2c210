//! Independent clients and real web servers in front of the real binary:
//! Debian's `cgi-fcgi`, `spawn-fcgi` (socket on fd 0), nginx with
//! `fastcgi_pass` and curl, lighttpd spawning videofeed itself, and the PHP
//! client (`clients/php`) under PHPUnit as a template would call it. A missing program skips its test
//! (printed) unless VIDEOFEED_REQUIRE_FRONTS=1, which .ci/run sets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Server, TestDir, TestResult, bin, fixture_db, free_port, have, wait_for_port};

pub(crate) fn render(template: &str, dir: &TestDir, vars: &[(&str, String)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fronts").join(template);
    let mut text = std::fs::read_to_string(&src).unwrap();
    // Workers of a server started as root must still reach the socket in our temp dir.
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let user_line = match (is_root, template.starts_with("nginx")) {
        (true, true) => "user root;".to_owned(),
        _ => String::new(),
    };
    text = text.replace("@USER_LINE@", &user_line).replace("@DIR@", dir.0.to_str().unwrap());
    for (k, v) in vars {
        text = text.replace(&format!("@{k}@"), v);
    }
    let out = dir.path(template.trim_end_matches(".in"));
    std::fs::write(&out, text).unwrap();
    out
}

pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(url: &str) -> (u16, String, serde_json::Value) {
    let out = Command::new("curl").args(["-s", "-i", "--max-time", "10", url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[test]
fn cgi_fcgi_from_libfcgi_gets_a_feed() -> TestResult {
    if !have("cgi-fcgi") {
        return Ok(());
    }
    let dir = TestDir::new("cgifcgi");
    let server = Server::start(&dir, &fixture_db(&dir), 2);
    let out = Command::new("cgi-fcgi")
        .args(["-bind", "-connect", server.socket.to_str().unwrap()])
        .env_clear()
        .envs([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/feed?q=jazz&limit=2"), ("QUERY_STRING", "q=jazz&limit=2")])
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.starts_with("Status: 200 OK\r\n"), "{text}");
    let body: serde_json::Value = serde_json::from_str(text.split_once("\r\n\r\n").ok_or("no body")?.1)?;
    assert_eq!(body["count"], 2);
    Ok(())
}

#[test]
fn spawn_fcgi_hands_the_socket_on_fd_0() -> TestResult {
    if !have("spawn-fcgi") {
        return Ok(());
    }
    let dir = TestDir::new("spawnfcgi");
    let db = fixture_db(&dir);
    let socket = dir.path("spawned.sock");
    let log = dir.path("spawned.log");
    // -n: do not fork, so the child is videofeed itself after exec. No --socket flag is given:
    // the only way it can serve is the inherited fd 0. Started as LiteSpeed starts apps: only
    // the configured environment (no HOME, no PATH), cwd = the binary's directory, and stdout
    // a pipe whose reader is gone (a write would fail with EPIPE).
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let spawn_fcgi = Command::new("sh").args(["-c", "command -v spawn-fcgi"]).output()?;
    let spawn_fcgi = String::from_utf8(spawn_fcgi.stdout)?.trim().to_owned();
    let mut child = Command::new(spawn_fcgi)
        .args(["-n", "-s", socket.to_str().unwrap(), "--", bin().to_str().unwrap(), "serve"])
        .env_clear()
        .env("VIDEOFEED_DB", &db)
        .env("LSAPI_CHILDREN", "3")
        .env("VIDEOFEED_LOG", "info")
        .current_dir(&bin_dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    drop(child.stdout.take());
    let mut guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = std::os::unix::net::UnixStream::connect(&socket)?;
    let resp = crate::util::get_on(&mut s, "/feed?q=music&limit=3", false);
    assert_eq!(resp.status(), 200);
    assert_eq!(crate::util::json(&resp)["count"], 3);
    let log_text = std::fs::read_to_string(&log)?;
    assert!(log_text.contains("inherited on fd 0"), "{log_text}");
    assert!(log_text.contains("workers=3"), "LSAPI_CHILDREN sets the worker count: {log_text}");
    Command::new("kill").args(["-TERM", &guard.0.id().to_string()]).status()?;
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(st) = guard.0.try_wait()? {
            break st;
        }
        assert!(Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(socket.exists(), "an inherited socket belongs to the web server: never unlinked");
    Ok(())
}

/// The admin token of the responder behind nginx, for the PHP client's write tests.
const PHP_TOKEN: &str = "php-client-token";

#[test]
fn nginx_fastcgi_pass_and_the_php_client() -> TestResult {
    if !have("nginx") || !have("curl") {
        return Ok(());
    }
    let dir = TestDir::new("nginx");
    let server = Server::start_with(&dir, &fixture_db(&dir), 8, &[("VIDEOFEED_ADMIN_TOKEN", PHP_TOKEN)]);
    let port = free_port();
    let conf = render(
        "nginx.conf.in",
        &dir,
        &[("PORT", port.to_string()), ("SOCKET", server.socket.to_str().unwrap().into())],
    );
    let nginx = Command::new("nginx")
        .args(["-p", dir.0.to_str().unwrap(), "-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _nginx = Guard(nginx);
    wait_for_port(port);
    let base = format!("http://127.0.0.1:{port}");

    let (status, head, body) = curl(&format!("{base}/feed?q=rain+walk&region=jp&limit=4"));
    assert_eq!(status, 200, "{head}");
    let head_l = head.to_ascii_lowercase();
    assert!(head_l.contains("content-type: application/json; charset=utf-8"), "{head}");
    assert!(head_l.contains("cache-control: public, max-age=300, stale-while-revalidate=3600"), "{head}");
    assert!(head_l.contains("vary: accept-encoding"), "{head}");
    assert_eq!(body["region"], "JP");
    assert!(body["count"].as_u64().is_some_and(|c| (1..=4).contains(&c)));

    let (status, head, body) = curl(&format!("{base}/feed?q=music&limit=500"));
    assert_eq!(status, 400);
    assert!(head.to_ascii_lowercase().contains("cache-control: no-store"));
    assert_eq!(body["error"]["param"], "limit");
    let (status, _, _) = curl(&format!("{base}/feedx?q=music"));
    assert_eq!(status, 404, "nginx only routes /feed…; ours answers 404 for the rest");

    // Issue 35 (7): with the front's gzip on (docs/fronts.md), a client that accepts
    // gzip gets the answer compressed, and the same bytes once decompressed.
    let url = format!("{base}/feed?q=music&limit=100");
    let plain = Command::new("curl").args(["-s", "--max-time", "10", &url]).output()?.stdout;
    let gz = dir.path("answer.gz");
    let head = Command::new("curl")
        .args(["-s", "-D", "-", "-o", gz.to_str().unwrap(), "-H", "Accept-Encoding: gzip", "--max-time", "10", &url])
        .output()?;
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let compressed = std::fs::read(&gz)?;
    let unzipped = Command::new("gzip").args(["-dc", gz.to_str().unwrap()]).output()?;
    assert!(unzipped.status.success());
    assert!(plain.len() > 10_000 && compressed.len() * 3 < plain.len(), "{} -> {}", plain.len(), compressed.len());
    assert_eq!(unzipped.stdout, plain, "the same answer once decompressed");

    // Many requests over nginx's kept-alive upstream connections.
    for i in 0..50 {
        let (status, _, _) = curl(&format!("{base}/feed?q=m{}", i % 10));
        assert!(status == 200 || status == 400, "{status}");
    }

    // The PHP client (clients/php: the functions and the Composer package's class)
    // under PHPUnit against this stack.
    if have("phpunit") {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/php");
        let out = Command::new("phpunit")
            .args(["--colors=never", tests.to_str().unwrap()])
            .env("VF_TOKEN", PHP_TOKEN)
            .env("VF_BASE_URL", format!("{base}/feed"))
            .env("VF_STOPPED_URL", format!("{base}/stopped/feed"))
            .env("VF_ERROR_URL", format!("{base}/error/feed"))
            .env("VF_GARBAGE_URL", format!("{base}/garbage/feed"))
            .env("VF_DOWN_URL", format!("http://127.0.0.1:{}/feed", free_port()))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "phpunit failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("OK (15 tests"), "every test ran, none skipped: {text}");
    }
    Ok(())
}

/// lighttpd in the foreground spawning `bin` with the socket on fd 0, as LiteSpeed does.
struct Lighttpd {
    guard: Guard,
    port: u16,
    error_log: PathBuf,
}

impl Lighttpd {
    fn start(dir: &TestDir, db: &Path, bin: &Path) -> Lighttpd {
        let port = free_port();
        let conf = render(
            "lighttpd.conf.in",
            dir,
            &[
                ("PORT", port.to_string()),
                ("SOCKET", dir.path("lt.sock").to_str().unwrap().into()),
                ("BIN", bin.to_str().unwrap().into()),
                ("DB", db.to_str().unwrap().into()),
            ],
        );
        let child = Command::new("lighttpd")
            .args(["-D", "-f", conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Lighttpd { guard: Guard(child), port, error_log: dir.path("lighttpd-error.log") }
    }

    fn pid(&self) -> u32 {
        self.guard.0.id()
    }

    /// The videofeed process lighttpd spawned (waits for it).
    fn backend(&self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = crate::util::children_of(self.pid()).first() {
                return *pid;
            }
            assert!(Instant::now() < deadline, "lighttpd spawned no backend");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }
}

#[test]
fn lighttpd_spawns_videofeed_with_the_socket_on_fd_0() -> TestResult {
    if !have("lighttpd") {
        return Ok(());
    }
    let dir = TestDir::new("lighttpd");
    let lt = Lighttpd::start(&dir, &fixture_db(&dir), &bin());
    let (status, body) = crate::util::http_get(lt.port, "/feed?q=piano&limit=2")?;
    assert_eq!(status, 200, "{body} {}", lt.log());
    let body: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(body["count"], 2);
    Ok(())
}

#[test]
fn lighttpd_graceful_restart_under_load_fails_no_request() -> TestResult {
    if !have("lighttpd") {
        return Ok(());
    }
    let dir = TestDir::new("ltrestart");
    let lt = Lighttpd::start(&dir, &fixture_db(&dir), &bin());
    let before = lt.backend();
    let port = lt.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, Vec::new());
                let words = ["music", "lofi", "jazz", "rain"];
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    match crate::util::http_get(port, &format!("/feed?q={}&limit=3", words[(i + n) % 4])) {
                        Ok((200, _)) => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    // lighttpd's graceful restart: finish requests, reload, respawn its FastCGI backends.
    Command::new("kill").args(["-USR1", &lt.pid().to_string()]).status()?;
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.join().map_err(|_| "client panicked")?;
        ok += o;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}\n{}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)],
        lt.log()
    );
    assert!(ok > 50, "only {ok} requests ran");
    let after = lt.backend();
    assert_ne!(before, after, "the restart should start a new videofeed process");
    Ok(())
}

#[test]
fn lighttpd_restarts_a_videofeed_that_died() -> TestResult {
    if !have("lighttpd") {
        return Ok(());
    }
    let dir = TestDir::new("ltrespawn");
    let lt = Lighttpd::start(&dir, &fixture_db(&dir), &bin());
    let first = lt.backend();
    assert_eq!(crate::util::http_get(lt.port, "/feed?q=jazz")?.0, 200);
    Command::new("kill").args(["-KILL", &first.to_string()]).status()?;
    // lighttpd notices the dead backend and spawns a new one; requests recover.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, _)) = crate::util::http_get(lt.port, "/feed?q=jazz") {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", lt.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(lt.backend(), first);
    Ok(())
}

#[test]
fn a_binary_replaced_on_disk_is_picked_up_on_the_next_start() -> TestResult {
    if !have("lighttpd") {
        return Ok(());
    }
    let dir = TestDir::new("ltupgrade");
    std::fs::create_dir_all(dir.path("bin"))?;
    let installed = dir.path("bin/videofeed");
    std::fs::copy(bin(), &installed)?;
    let lt = Lighttpd::start(&dir, &fixture_db(&dir), &installed);
    let old = lt.backend();
    assert_eq!(crate::util::http_get(lt.port, "/feed?q=jazz")?.0, 200);
    // Upgrade as install.sh does: a new file moved over the old path (atomic rename).
    std::fs::copy(bin(), dir.path("bin/videofeed.new"))?;
    std::fs::rename(dir.path("bin/videofeed.new"), &installed)?;
    let exe =
        |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_default();
    assert!(exe(old).ends_with("(deleted)"), "the running process keeps the old file: {}", exe(old));
    Command::new("kill").args(["-USR1", &lt.pid().to_string()]).status()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        let pid = lt.backend();
        if pid != old {
            break pid;
        }
        assert!(Instant::now() < deadline, "no restart: {}", lt.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exe(new), installed.display().to_string(), "the new process runs the new file");
    assert_eq!(crate::util::http_get(lt.port, "/feed?q=jazz")?.0, 200);
    Ok(())
}

/// install.sh's options for a test's own install: this build's binary, prefix, database,
/// socket, run directory and nginx config, and no LiteSpeed.
fn install_args(dir: &TestDir, db: &Path, socket: &Path, run_dir: &Path, nginx_conf: &Path) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap_or("").to_owned();
    vec![
        "--binary".to_owned(),
        path(&bin()),
        "--prefix".to_owned(),
        path(&dir.path("prefix")),
        "--db".to_owned(),
        path(db),
        "--socket".to_owned(),
        path(socket),
        "--run-dir".to_owned(),
        path(run_dir),
        "--nginx-conf".to_owned(),
        path(nginx_conf),
        "--lsws-root".to_owned(),
        path(&dir.path("no-lsws")),
        "--env-file".to_owned(),
        path(&dir.path("videofeed.env")),
    ]
}

/// Runs `install.sh ARGS` from the repository; asserts it succeeded and returns its output.
fn install_sh(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let out = Command::new("bash").arg(&script).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "install.sh {args:?}:\n{text}");
    text
}

#[test]
fn nginx_as_an_unprivileged_user_reaches_the_socket_install_sh_gave_its_group() -> TestResult {
    // Issue 21: nginx's workers run as www-data; the socket must be theirs to connect to,
    // and install.sh must tell the group from nginx's own `user` line.
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !have("nginx") || !have("curl") || !root {
        eprintln!("skipped: needs nginx, curl and root (to run nginx's workers as www-data)");
        return Ok(());
    }
    let dir = TestDir::new("nginx-unpriv");
    let db = fixture_db(&dir);
    let run_dir = dir.path("run");
    let socket = run_dir.join("vf.sock");
    let port = free_port();
    let conf = render(
        "nginx.conf.in",
        &dir,
        &[("PORT", port.to_string()), ("SOCKET", socket.to_str().unwrap_or("").to_owned())],
    );
    let text = std::fs::read_to_string(&conf)?.replace("user root;", "user www-data;");
    std::fs::write(&conf, text)?;
    let common = |extra: &[&str]| -> Vec<String> {
        let mut args = install_args(&dir, &db, &socket, &run_dir, &conf);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let args = common(&[]);
    let out = install_sh(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("socket group: www-data (nginx's user in"), "{out}");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&socket)?;
    let www = Command::new("getent").args(["group", "www-data"]).output()?;
    let gid: u32 = String::from_utf8_lossy(&www.stdout).split(':').nth(2).unwrap_or("").trim().parse()?;
    assert_eq!((meta.permissions().mode() & 0o777, meta.gid()), (0o660, gid), "0660, group www-data");

    let nginx = Command::new("nginx")
        .args(["-p", dir.0.to_str().unwrap_or(""), "-c", conf.to_str().unwrap_or("")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _nginx = Guard(nginx);
    wait_for_port(port);
    let workers = Command::new("ps").args(["-o", "user=", "--ppid", &_nginx.0.id().to_string()]).output()?;
    assert!(String::from_utf8_lossy(&workers.stdout).contains("www-data"), "nginx's workers run as www-data");
    let (status, _, body) = curl(&format!("http://127.0.0.1:{port}/feed?q=music&limit=2"));
    assert_eq!((status, body["count"].as_u64()), (200, Some(2)), "{body}");

    // The same socket without the web server's group: nginx's workers are refused.
    let args = common(&["--socket-group", "root"]);
    install_sh(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, _, _) = curl(&format!("http://127.0.0.1:{port}/feed?q=music&limit=2"));
    assert_eq!(status, 502, "a socket www-data may not connect to");
    let log = std::fs::read_to_string(dir.path("nginx-error.log"))?;
    assert!(log.contains("Permission denied"), "{log}");
    install_sh(&["--stop", "--run-dir", run_dir.to_str().unwrap_or("")]);
    Ok(())
}

#[test]
fn the_composer_package_validates_and_its_autoloader_finds_the_client() -> TestResult {
    // Issue 21: clients/php is a Composer package (videofeed/client, PSR-4 Videofeed\).
    if !have("composer") || !have("php") {
        return Ok(());
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/php");
    let out = Command::new("composer")
        .args(["validate", "--strict", "--no-interaction", "--no-check-publish"])
        .current_dir(&package)
        .env("COMPOSER_HOME", std::env::temp_dir().join("vf-composer-home"))
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("is valid"), "{text}");
    // Its own autoloader (written outside the repository) loads the class and the functions.
    let dir = TestDir::new("composer");
    let vendor = dir.path("vendor");
    let out = Command::new("composer")
        .args(["dump-autoload", "--no-interaction"])
        .current_dir(&package)
        .env("COMPOSER_HOME", std::env::temp_dir().join("vf-composer-home"))
        .env("COMPOSER_VENDOR_DIR", &vendor)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!package.join("vendor").exists(), "nothing written into the repository");
    let script = format!(
        r#"require '{}/autoload.php';
        $c = new Videofeed\Client('http://127.0.0.1:9/feed', fallback: [['id' => 'f']], onError: fn () => null);
        echo json_encode([function_exists('fetch_feed'), $c->search('x')->fromFallback, $c->search('x')->results]);"#,
        vendor.display()
    );
    let out = Command::new("php").args(["-r", &script]).output()?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"[true,true,[{"id":"f"}]]"#,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn the_readmes_composer_snippet_installs_the_client() -> TestResult {
    // Issue 35: clients/php/README.md's Install snippet, exactly as written (only its
    // example path replaced by this checkout's), is a Composer project that installs.
    if !have("composer") || !have("php") {
        return Ok(());
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/php");
    let readme = std::fs::read_to_string(package.join("README.md"))?;
    let install = readme.split("## Install").nth(1).ok_or("no Install section")?;
    let snippet = install.split("```json").nth(1).and_then(|b| b.split("```").next()).ok_or("no json snippet")?;
    assert!(snippet.contains("\"videofeed/client\""), "{snippet}");
    let dir = TestDir::new("composer-project");
    let project = dir.path("site");
    std::fs::create_dir_all(&project)?;
    std::fs::write(
        project.join("composer.json"),
        snippet.replace("/srv/videofeed/clients/php", package.to_str().ok_or("path")?),
    )?;
    let out = Command::new("composer")
        .args(["install", "--no-interaction", "--no-progress"])
        .current_dir(&project)
        .env("COMPOSER_HOME", dir.path("composer-home"))
        .output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "composer install with the README's snippet failed:\n{said}");
    let script = r#"require 'vendor/autoload.php';
        $c = new Videofeed\Client('http://127.0.0.1:9/feed', fallback: [['id' => 'f']], onError: fn () => null);
        echo json_encode([function_exists('fetch_feed'), $c->search('x')->results]);"#;
    let out = Command::new("php").args(["-r", script]).current_dir(&project).output()?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"[true,[{"id":"f"}]]"#,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Issue 30: rerunning install.sh (an upgrade) stopped the responder and then started
/// the new one: thousands of 502s in between. Now the new responder takes the socket
/// over and the old one drains and exits: two reruns under a request loop fail nothing,
/// and the pid file names the new responder.
#[test]
fn install_sh_reruns_under_load_take_the_socket_over_and_fail_no_request() -> TestResult {
    let dir = TestDir::new("install-rerun");
    let db = fixture_db(&dir);
    let run_dir = dir.path("run");
    let socket = run_dir.join("vf.sock");
    let mut args = install_args(&dir, &db, &socket, &run_dir, &dir.path("no-nginx.conf"));
    args.extend(["--socket-mode".to_owned(), "0600".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    install_sh(&args);
    let pid_of = || std::fs::read_to_string(run_dir.join("videofeed.pid")).unwrap_or_default().trim().to_owned();
    let first = pid_of();
    let ask = |_| matches!(crate::util::http_get_unix(&socket), Ok(200));
    let (outputs, ok, failed) = crate::util::under_load(3, ask, || [install_sh(&args), install_sh(&args)]);
    assert_eq!(failed, 0, "{failed} of {} requests failed across two reruns:\n{}", ok + failed, outputs.join("\n"));
    assert!(ok > 100, "{ok}");
    assert!(outputs.iter().all(|o| o.contains("taking over from the running responder")), "{}", outputs.join("\n"));
    let now = pid_of();
    assert_ne!(now, first);
    let alive = Command::new("kill").args(["-0", &now]).status()?.success();
    assert!(alive, "the pid file names the running responder");
    let old_alive = Command::new("kill").args(["-0", &first]).status()?.success();
    assert!(!old_alive, "the first responder exited");
    install_sh(&["--stop", "--run-dir", run_dir.to_str().unwrap_or("")]);
    Ok(())
}

/// Issue 30: every install shared `/run/videofeed` (socket, pid file, log) whatever
/// its database: a second install took the first one's socket over, and `--stop`
/// stopped the other's responder. Now each database gets its own run directory,
/// socket, pid file and log by default, and a pid file naming another database's
/// responder is refused.
#[test]
fn two_installs_on_one_box_keep_to_their_own_socket_pid_file_and_log() -> TestResult {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !root {
        eprintln!("skipped: the default run directories are root's (/run/videofeed)");
        return Ok(());
    }
    let dir = TestDir::new("two-installs");
    let (a, b) = (dir.path("a/videos.db"), dir.path("b/videos.db"));
    for db in [&a, &b] {
        std::fs::create_dir_all(db.parent().unwrap_or(&dir.0))?;
        assert!(crate::util::run(&["demo", "--db", db.to_str().unwrap_or(""), "--videos", "300"]).status.success());
    }
    let args = |db: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "--binary",
            bin().to_str().unwrap_or(""),
            "--prefix",
            dir.path("prefix").to_str().unwrap_or(""),
            "--db",
            db.to_str().unwrap_or(""),
            "--nginx-conf",
            dir.path("no-nginx.conf").to_str().unwrap_or(""),
            "--lsws-root",
            dir.path("no-lsws").to_str().unwrap_or(""),
            "--socket-group",
            "root",
            "--env-file",
            dir.path("videofeed.env").to_str().unwrap_or(""),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let install =
        |db: &Path, extra: &[&str]| install_sh(&args(db, extra).iter().map(String::as_str).collect::<Vec<_>>());
    let socket_of = |out: &str| -> PathBuf {
        out.lines().find_map(|l| l.split_once(") on ").map(|(_, s)| PathBuf::from(s.trim()))).unwrap_or_default()
    };
    let (out_a, out_b) = (install(&a, &[]), install(&b, &[]));
    let (sock_a, sock_b) = (socket_of(&out_a), socket_of(&out_b));
    assert_ne!(sock_a, sock_b, "{out_a}\n{out_b}");
    let under_run = |p: &Path| p.to_string_lossy().starts_with("/run/videofeed/videos-");
    assert!(under_run(&sock_a) && under_run(&sock_b), "{sock_a:?} {sock_b:?}");
    assert!(!out_b.contains("taking over"), "the second install took the first one's socket over: {out_b}");
    let log_of = |out: &str| -> PathBuf {
        out.lines()
            .find_map(|l| l.split_once("(log: ").map(|(_, s)| PathBuf::from(s.trim_end_matches(')'))))
            .unwrap_or_default()
    };
    let (log_a, log_b) = (log_of(&out_a), log_of(&out_b));
    assert!(log_a.starts_with("/var/log/videofeed/") && log_a != log_b, "{log_a:?} {log_b:?}");
    assert_eq!(crate::util::http_get_unix(&sock_a)?, 200);
    assert_eq!(crate::util::http_get_unix(&sock_b)?, 200);

    // A pid file of the other database's responder is refused, not taken over.
    let run_dir_b = sock_b.parent().unwrap_or(&dir.0).to_str().unwrap_or("").to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let refused = Command::new("bash").arg(&script).args(args(&a, &["--run-dir", &run_dir_b])).output()?;
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(said.contains("of another database"), "{said}");
    assert_eq!(crate::util::http_get_unix(&sock_b)?, 200, "B still serves");

    // --stop with A's database stops A only.
    install_sh(&["--stop", "--db", a.to_str().unwrap_or("")]);
    assert!(crate::util::http_get_unix(&sock_a).is_err(), "A stopped");
    assert_eq!(crate::util::http_get_unix(&sock_b)?, 200, "B untouched");
    install_sh(&["--stop", "--db", b.to_str().unwrap_or("")]);
    for (sock, log) in [(&sock_a, &log_a), (&sock_b, &log_b)] {
        let _ = std::fs::remove_file(log);
        if let Some(d) = sock.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    Ok(())
}

/// Issue 30: install.sh started the responder with the caller's environment, so a
/// rerun from a shell without `VIDEOFEED_ADMIN_TOKEN` turned the write API off. The
/// settings live in one file (created 0600 when missing, never overwritten): reruns
/// from an empty environment, or one with other values, start the same responder.
#[test]
fn settings_in_the_env_file_survive_reruns_from_any_environment() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("env-file");
    let db = fixture_db(&dir);
    let run_dir = dir.path("run");
    let socket = run_dir.join("vf.sock");
    let env_file = dir.path("videofeed.env");
    let args = install_args(&dir, &db, &socket, &run_dir, &dir.path("no-nginx.conf"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let rerun = |caller: &[(&str, &str)]| -> String {
        let out = Command::new("bash")
            .arg(&script)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(caller.iter().copied())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        text
    };
    let write_status = |token: &str| -> String {
        let line = r#"{"id":"envfile1","title":"Settings kept","channel":"E","duration_seconds":5,"thumbnail":"https://x.example/e.jpg","region":"US"}"#;
        let out = crate::util::run(&[
            "get",
            "-i",
            "--socket",
            socket.to_str().unwrap_or(""),
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-d",
            line,
            "/feed/admin/videos",
        ]);
        String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_owned()
    };
    // First run: the file is created, owner-only, every setting commented out.
    let out = rerun(&[]);
    assert!(out.contains(&format!("created {}", env_file.display())), "{out}");
    assert_eq!(std::fs::metadata(&env_file)?.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&env_file)?.contains("#VIDEOFEED_ADMIN_TOKEN="));
    assert_eq!(write_status("file-token"), "Status: 404 Not Found", "no token yet: the write API is off");
    // The operator puts the token in the file; reruns from an empty environment and
    // from one with another token both keep it.
    let mut text = std::fs::read_to_string(&env_file)?;
    text.push_str("VIDEOFEED_ADMIN_TOKEN=file-token\n");
    std::fs::write(&env_file, &text)?;
    for caller in [&[][..], &[("VIDEOFEED_ADMIN_TOKEN", "caller-token")][..]] {
        let out = rerun(caller);
        assert!(out.contains("settings from") && !out.contains("created"), "{out}");
        assert_eq!(write_status("file-token"), "Status: 200 OK", "{out}");
        assert!(write_status("caller-token").starts_with("Status: 403"), "the caller's environment leaked in");
    }
    assert_eq!(std::fs::read_to_string(&env_file)?, text, "never overwritten");
    install_sh(&["--stop", "--run-dir", run_dir.to_str().unwrap_or("")]);
    Ok(())
}

/// Issue 30: `systemd/videofeed.service` ran as `User=videofeed`, which nothing
/// created, on a directory root owns. `install.sh --systemd` creates the user, gives
/// it the database directory and writes the units with this install's paths. Started
/// as systemd would (the unit's ExecStart as that user), it serves and writes.
#[test]
fn install_sh_systemd_creates_the_user_and_units_the_service_runs_with() -> TestResult {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if !root || !have("setpriv") {
        eprintln!("skipped: needs root and setpriv");
        return Ok(());
    }
    let dir = TestDir::new("systemd");
    let data = dir.path("data");
    std::fs::create_dir_all(&data)?;
    let db = data.join("videos.db");
    assert!(crate::util::run(&["demo", "--db", db.to_str().unwrap_or(""), "--videos", "300"]).status.success());
    let units = dir.path("units");
    let env_file = dir.path("videofeed.env");
    std::fs::write(&env_file, "VIDEOFEED_ADMIN_TOKEN=unit-token\n")?;
    let socket = data.join("vf.sock");
    // (install_args' --env-file is this test's videofeed.env, written above.)
    let mut args = install_args(&dir, &db, &socket, &dir.path("run"), &dir.path("no-nginx.conf"));
    args.extend(
        ["--systemd", "--systemd-dir", units.to_str().unwrap_or(""), "--socket-group", "root"].map(String::from),
    );
    let out = install_sh(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("wrote"), "{out}");
    assert!(Command::new("getent").args(["passwd", "videofeed"]).status()?.success(), "the user exists");
    use std::os::unix::fs::MetadataExt;
    let owner = |p: &Path| std::fs::metadata(p).map(|m| m.uid()).unwrap_or(0);
    let uid: u32 = String::from_utf8(Command::new("id").args(["-u", "videofeed"]).output()?.stdout)?.trim().parse()?;
    assert_eq!((owner(&data), owner(&db)), (uid, uid), "the database directory is videofeed's");
    let service = std::fs::read_to_string(units.join("videofeed.service"))?;
    let socket_unit = std::fs::read_to_string(units.join("videofeed.socket"))?;
    assert!(socket_unit.contains(&format!("ListenStream={}", socket.display())), "{socket_unit}");
    assert!(service.contains(&format!("EnvironmentFile=-{}", env_file.display())), "{service}");
    assert!(service.contains(&format!("Environment=VIDEOFEED_DB={}", db.display())), "{service}");
    // As systemd would start it: the unit's ExecStart and environment, as its user.
    let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).ok_or("no ExecStart")?;
    let mut parts = exec.split_whitespace();
    let program = parts.next().ok_or("empty ExecStart")?;
    let child = Command::new("setpriv")
        .args(["--reuid=videofeed", "--regid=videofeed", "--init-groups", program])
        .args(parts)
        .args(["--socket", socket.to_str().unwrap_or("")])
        .env_clear()
        .env("VIDEOFEED_DB", &db)
        .env("VIDEOFEED_ADMIN_TOKEN", "unit-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _guard = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::util::http_get_unix(&socket).is_err() {
        assert!(Instant::now() < deadline, "the service did not start as videofeed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(crate::util::http_get_unix(&socket)?, 200);
    let line = r#"{"id":"unit1","title":"Written as videofeed","channel":"U","duration_seconds":5,"thumbnail":"https://x.example/u.jpg","region":"US"}"#;
    let out = crate::util::run(&[
        "get",
        "-i",
        "--socket",
        socket.to_str().unwrap_or(""),
        "-H",
        "Authorization: Bearer unit-token",
        "-d",
        line,
        "/feed/admin/videos",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("Status: 200"), "the videofeed user could not write its database: {said}");
    Ok(())
}
