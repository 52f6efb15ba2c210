//! The responder process: find or bind the listener, run a fixed pool of
//! worker threads that each accept on it, and stop gracefully on a signal.
//!
//! Listener: a listening socket inherited on fd 0 (how LiteSpeed, lighttpd
//! and spawn-fcgi start FastCGI apps) always wins, and then nothing is bound
//! or unlinked. Otherwise the configured Unix socket (a stale file replaced,
//! mode 0660) or TCP address is bound; the Unix socket file is removed at stop.
//!
//! Threads: one poller accepts connections and watches the idle ones (kept
//! alive by the web server between requests) with `poll(2)`; when one becomes
//! readable it hands it to the `workers` worker threads through a queue. A
//! worker owns one read-only SQLite connection, answers one request, and gives
//! a kept-alive connection back to the poller. So idle connections never hold
//! a worker, however many the web server keeps open (up to [`MAX_CONNS`]; past
//! that the kernel backlog queues). Accept errors back off and retry, never
//! stop the loop. A worker or poller that dies is replaced.
//!
//! Stop: SIGTERM, SIGUSR1 (LiteSpeed sends both) and SIGINT set a flag.
//! Workers stop accepting, finish the request in flight, close idle kept-alive
//! connections, and the process exits 0 within `shutdown_grace`. SIGHUP is ignored.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::{Config, Listen};
use crate::fcgi::conn::{self, End, Limits};
use crate::http::cache::Cache;
use crate::http::handler::{Admin, Handler};
use crate::search::{self, RankIndex, Reader};
use crate::store::writer::WriterThread;
use crate::sys;

/// How often the poller looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// After a stop, how long idle connections may still deliver a request already sent.
const STOP_QUIET: Duration = Duration::from_millis(200);
/// Connections held open at once (idle and in service); reported as FCGI_MAX_CONNS.
pub const MAX_CONNS: usize = 1024;
/// Read timeout on a connection: how often an idle kept-alive connection checks the stop flag.
const CONN_TICK: Duration = Duration::from_millis(200);
/// A peer that does not read its answer for this long loses the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the responder could not start.
#[derive(Debug)]
pub enum Error {
    /// The database is missing, unreadable or not a videofeed database.
    Database(search::Error),
    /// No listener: fd 0 is not a listening socket and none was configured.
    NoListener,
    /// Binding the configured socket failed.
    Bind {
        /// The socket path or address.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// Installing the signal handlers failed.
    Signals(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database(e) => write!(f, "{e}"),
            Error::NoListener => write!(
                f,
                "fd 0 is not a listening socket and no socket was configured: pass --socket PATH or --listen HOST:PORT (or VIDEOFEED_SOCKET / VIDEOFEED_LISTEN)"
            ),
            Error::Bind { what, source } => write!(f, "cannot listen on {what}: {source}"),
            Error::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Database(e) => Some(e),
            Error::Bind { source, .. } | Error::Signals(source) => Some(source),
            Error::NoListener => None,
        }
    }
}

/// The shared listener.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    fn fd(&self) -> RawFd {
        match self {
            Listener::Unix(l) => l.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Unix(l) => l.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        }
    }
}

/// Installs SIGTERM, SIGUSR1 and SIGINT as "stop" on `stop`, and ignores SIGHUP.
///
/// # Errors
/// [`Error::Signals`] if a handler cannot be registered.
pub fn install_signal_handlers(stop: &Arc<AtomicBool>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    for sig in [SIGTERM, SIGUSR1, SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(stop)).map_err(Error::Signals)?;
    }
    signal_hook::flag::register(SIGHUP, Arc::new(AtomicBool::new(false))).map_err(Error::Signals)?;
    Ok(())
}

/// Runs the responder until `stop` is set, then drains and returns.
///
/// # Errors
/// [`Error`] when the database cannot be served or no listener can be had;
/// nothing after start-up is fatal.
pub fn run(config: Arc<Config>, stop: Arc<AtomicBool>) -> Result<(), Error> {
    sys::limit_malloc_arenas();
    // Fail fast, with the file named, if the database is unusable.
    Reader::open_read_only(&config.db).map_err(Error::Database)?;
    // Shared by every worker whether or not the rank index is on (the typo
    // correction's vocabulary and the set of videos left out live there too).
    let index = Some(if config.rank_index {
        RankIndex::with_policy(config.db.clone(), config.thumbnails.clone())
    } else {
        RankIndex::disabled(config.db.clone(), config.thumbnails.clone())
    });
    if let Some(index) = &index {
        index.refresh();
    }
    let (listener, owned_path) = open_listener(&config)?;
    listener.set_nonblocking().map_err(|source| Error::Bind { what: "the listener".into(), source })?;
    let listener = Arc::new(listener);

    // One writer thread for the write API and the in-serve thumbnail checker alike.
    let writer = (config.admin_token.is_some() || config.thumbnail_check_every.is_some())
        .then(|| {
            WriterThread::start(&config.db, config.write_queue)
                .map_err(|e| log::error!("cannot open the database for writing ({e}); writes answer 503"))
                .ok()
        })
        .flatten();
    let admin = config.admin_token.as_ref().map(|token| {
        log::info!("write API on: POST/DELETE {} (bearer token required)", "/feed/admin/videos");
        Arc::new(Admin { token: token.clone(), max_body: config.admin_max_body, writer: writer.clone() })
    });
    let checker = match (config.thumbnail_check_every, writer.clone()) {
        (Some(every), Some(writer)) => start_thumbnail_checker(&config, every, writer, Arc::clone(&stop)),
        _ => None,
    };
    let limits = Limits {
        max_params: config.max_params,
        max_stdin: if admin.is_some() { config.max_stdin.max(config.admin_max_body) } else { config.max_stdin },
        max_conns: MAX_CONNS,
        max_reqs: config.workers.get(),
        max_param_count: config.max_param_count,
        request_timeout: config.request_timeout,
    };
    let served = Arc::new(AtomicU64::new(0));
    let cache = Arc::new(Cache::new(config.cache_bytes));
    crate::obs::metrics::global().set_workers(config.workers.get());
    let health = crate::store::facts::health(config.db.clone());
    if let Err(e) = crate::store::facts::start(&health, Arc::clone(&stop)) {
        log::error!("cannot start the health thread ({e}); /feed/health reports the state at start");
    }
    let (work_tx, work_rx) = mpsc::channel::<Stream>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (back_tx, back_rx) = mpsc::channel::<Stream>();
    let (wake_tx, wake_rx) =
        UnixStream::pair().map_err(|source| Error::Bind { what: "a wake-up socket pair".into(), source })?;
    for s in [&wake_tx, &wake_rx] {
        s.set_nonblocking(true).map_err(|source| Error::Bind { what: "a wake-up socket pair".into(), source })?;
    }
    let wake_tx = Arc::new(wake_tx);
    let returns = Arc::new(Returns { back_rx: Mutex::new(back_rx), wake_rx, in_service: AtomicUsize::new(0) });
    let spawn = |n: usize| -> io::Result<JoinHandle<()>> {
        let (config, stop) = (Arc::clone(&config), Arc::clone(&stop));
        let served = Arc::clone(&served);
        let mut handler = Handler::new(config.db.clone(), index.clone())
            .with_cache(Arc::clone(&cache))
            .with_typo_fallback(config.typo_fallback)
            .with_query_timeout(config.query_timeout)
            .with_health(Arc::clone(&health))
            .with_thumbnail_policy(config.thumbnails.clone())
            .with_metrics_allow(config.metrics_allow.clone())
            .with_slow_log(config.slow);
        if let Some(admin) = &admin {
            handler = handler.with_admin(Arc::clone(admin));
        }
        let (work_rx, back_tx, wake_tx) = (Arc::clone(&work_rx), back_tx.clone(), Arc::clone(&wake_tx));
        let returns = Arc::clone(&returns);
        thread::Builder::new().name(format!("worker-{n}")).spawn(move || {
            let shared = Shared { stop: &stop, served: &served };
            worker(&work_rx, &back_tx, &wake_tx, &returns, &config, &limits, &shared, handler);
        })
    };
    let spawn_poller = |work_tx: mpsc::Sender<Stream>| -> io::Result<JoinHandle<()>> {
        let (listener, config, stop, returns) =
            (Arc::clone(&listener), Arc::clone(&config), Arc::clone(&stop), Arc::clone(&returns));
        thread::Builder::new()
            .name("poller".into())
            .spawn(move || poller(&listener, &config, &stop, &returns, &work_tx))
    };
    let mut poller_handle =
        Some(spawn_poller(work_tx.clone()).map_err(|source| Error::Bind { what: "the poller thread".into(), source })?);
    let mut workers: Vec<Option<JoinHandle<()>>> = Vec::with_capacity(config.workers.get());
    for n in 0..config.workers.get() {
        match spawn(n) {
            Ok(h) => workers.push(Some(h)),
            Err(e) => {
                log::error!("cannot start worker {n}: {e}");
                workers.push(None);
            }
        }
    }
    log::info!(
        "serving db={} workers={} listener={} pid={}",
        config.db.display(),
        config.workers,
        owned_path.as_ref().map_or_else(|| describe(&config.listen), |p| p.display().to_string()),
        std::process::id()
    );

    // Supervise: replace any worker (or the poller) that died until a stop is asked for.
    while !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50));
        for (n, slot) in workers.iter_mut().enumerate() {
            let dead = slot.as_ref().is_none_or(JoinHandle::is_finished);
            if dead && !stop.load(Ordering::SeqCst) {
                if let Some(h) = slot.take() {
                    if h.join().is_err() {
                        log::error!("worker {n} died; starting a replacement");
                    }
                }
                *slot = spawn(n).map_err(|e| log::error!("cannot restart worker {n}: {e}")).ok();
            }
        }
        if poller_handle.as_ref().is_none_or(JoinHandle::is_finished) && !stop.load(Ordering::SeqCst) {
            if let Some(h) = poller_handle.take() {
                if h.join().is_err() {
                    log::error!("the poller died; starting a replacement (idle connections were closed)");
                }
            }
            poller_handle =
                spawn_poller(work_tx.clone()).map_err(|e| log::error!("cannot restart the poller: {e}")).ok();
        }
    }
    // Workers drain the queue, then see it closed once the poller has dropped its sender.
    drop(work_tx);

    let deadline = Instant::now() + config.shutdown_grace;
    log::info!("stopping: no new connections, draining requests in flight");
    if let Some(path) = &owned_path {
        // New connections now fail at connect() instead of waiting in a backlog no one reads.
        let _ = std::fs::remove_file(path);
    }
    for handle in workers.iter_mut() {
        while handle.as_ref().is_some_and(|h| !h.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if handle.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
    // The checker writes what it finished as soon as it sees the stop; give it the rest of
    // the grace period to finish requests in flight and write those too.
    if let Some(h) = checker {
        while !h.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            log::warn!("stopping with thumbnail checks in flight; every check finished before the stop is written");
        }
    }
    let left = workers.iter().filter(|h| h.is_some()).count();
    if left > 0 {
        log::warn!("stopped with {left} worker(s) still busy after the grace period");
    } else {
        log::info!("stopped cleanly");
    }
    Ok(())
}

/// Runs `check-thumbnails` on its own thread: a pass now, then `every` after the end
/// of each pass, until `stop`. Its requests never touch a worker; its results go
/// through the shared writer.
fn start_thumbnail_checker(
    config: &Config,
    every: Duration,
    writer: WriterThread,
    stop: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    let (db, opts) = (config.db.clone(), config.thumbnail_check.clone());
    let spawned = thread::Builder::new().name("thumbnail-check".into()).spawn(move || {
        log::info!("thumbnail checker on: a pass every {} s after the last", every.as_secs());
        while !stop.load(Ordering::SeqCst) {
            match crate::jobs::check_thumbnails(&db, &opts, &stop, &writer, &mut |_| {}) {
                Ok(summary) => log::info!("thumbnail check: {summary}"),
                Err(e) => log::error!("thumbnail check failed: {e}; next pass in {} s", every.as_secs()),
            }
            let next = Instant::now() + every;
            while Instant::now() < next && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(200));
            }
        }
    });
    spawned.map_err(|e| log::error!("cannot start the thumbnail checker: {e}")).ok()
}

fn describe(listen: &Listen) -> String {
    match listen {
        Listen::InheritedOnly => "fd0".into(),
        Listen::Unix(p) => p.display().to_string(),
        Listen::Tcp(a) => a.to_string(),
    }
}

/// Returns the listener and, when we bound a Unix socket, its path (removed at stop).
fn open_listener(config: &Config) -> Result<(Listener, Option<PathBuf>), Error> {
    if let Some(inherited) = sys::inherited_listener() {
        log::info!("using the listening socket inherited on fd 0");
        return Ok((
            match inherited {
                sys::Inherited::Unix(l) => Listener::Unix(l),
                sys::Inherited::Tcp(l) => Listener::Tcp(l),
            },
            None,
        ));
    }
    match &config.listen {
        Listen::InheritedOnly => Err(Error::NoListener),
        Listen::Unix(path) => bind_unix(path, config.socket_mode).map(|l| (Listener::Unix(l), Some(path.clone()))),
        Listen::Tcp(addr) => TcpListener::bind(addr)
            .map(|l| (Listener::Tcp(l), None))
            .map_err(|source| Error::Bind { what: addr.to_string(), source }),
    }
}

fn bind_unix(path: &Path, mode: u32) -> Result<UnixListener, Error> {
    let bind_err = |source| Error::Bind { what: path.display().to_string(), source };
    if path.exists() {
        // Replace a stale socket, but never a live one (another instance) or a regular file.
        if UnixStream::connect(path).is_ok() {
            return Err(bind_err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is serving on this socket",
            )));
        }
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            return Err(bind_err(io::Error::new(io::ErrorKind::AlreadyExists, "the path exists and is not a socket")));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    Ok(listener)
}

/// State every worker shares: the stop flag and the count of requests answered.
struct Shared<'a> {
    stop: &'a AtomicBool,
    served: &'a AtomicU64,
}

impl Shared<'_> {
    fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Counts one answered request; asks for a graceful stop at `VIDEOFEED_MAX_REQUESTS`.
    fn count(&self, max_requests: Option<u64>) {
        let n = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        if max_requests == Some(n) {
            log::info!("recycling: {n} requests served (VIDEOFEED_MAX_REQUESTS); stopping gracefully");
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Connections workers give back to the poller, and the socket that wakes it.
struct Returns {
    back_rx: Mutex<mpsc::Receiver<Stream>>,
    wake_rx: UnixStream,
    /// Connections handed to workers and not yet closed or given back.
    in_service: AtomicUsize,
}

/// Accepts connections and watches idle ones; hands readable ones to the workers.
fn poller(listener: &Listener, config: &Config, stop: &AtomicBool, returns: &Returns, work_tx: &mpsc::Sender<Stream>) {
    let mut idle: Vec<Stream> = Vec::new();
    let mut backoff = Duration::from_millis(5);
    let mut accept_paused_until: Option<Instant> = None;
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut drain = [0u8; 256];
    while !stop.load(Ordering::SeqCst) {
        {
            let back = returns.back_rx.lock().unwrap_or_else(PoisonError::into_inner);
            while let Ok(stream) = back.try_recv() {
                idle.push(stream);
            }
        }
        let in_service = returns.in_service.load(Ordering::SeqCst);
        let accepting = idle.len() + in_service < MAX_CONNS && accept_paused_until.is_none_or(|t| Instant::now() >= t);
        fds.clear();
        fds.push(libc::pollfd { fd: returns.wake_rx.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        fds.push(libc::pollfd { fd: if accepting { listener.fd() } else { -1 }, events: libc::POLLIN, revents: 0 });
        fds.extend(idle.iter().map(|s| libc::pollfd { fd: s.fd(), events: libc::POLLIN, revents: 0 }));
        let tick = if accepting { TICK } else { backoff.min(TICK) };
        match sys::poll(&mut fds, i32::try_from(tick.as_millis()).unwrap_or(100)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => {
                log::warn!("poll failed: {e}");
                thread::sleep(TICK);
                continue;
            }
        }
        if fds.first().is_some_and(|f| f.revents != 0) {
            while (&returns.wake_rx).read(&mut drain).is_ok_and(|n| n > 0) {}
        }
        // Idle connections with data (or EOF) go to the workers; walk backwards to remove in place.
        for i in (0..idle.len()).rev() {
            if fds.get(i + 2).is_some_and(|f| f.revents != 0) {
                let stream = idle.swap_remove(i);
                returns.in_service.fetch_add(1, Ordering::SeqCst);
                if work_tx.send(stream).is_err() {
                    return;
                }
            }
        }
        if fds.get(1).is_some_and(|f| f.fd >= 0 && f.revents != 0) {
            loop {
                let accepted = match listener {
                    Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
                    Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
                };
                match accepted {
                    Ok(stream) => {
                        backoff = Duration::from_millis(5);
                        accept_paused_until = None;
                        if let Some(stream) = admit(stream, config) {
                            idle.push(stream);
                        }
                        if idle.len() + returns.in_service.load(Ordering::SeqCst) >= MAX_CONNS {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => match e.raw_os_error() {
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                            log::warn!("accept failed: {e}; retrying in {} ms", backoff.as_millis());
                            accept_paused_until = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                            break;
                        }
                        _ => {
                            log::debug!("accept failed: {e}; retrying");
                            break;
                        }
                    },
                }
            }
        }
    }
    // Stopping: no more accepts. A request already on its way on an idle kept-alive
    // connection is still served; connections that stay quiet are closed.
    let quiet_until = Instant::now() + STOP_QUIET;
    while !idle.is_empty() && Instant::now() < quiet_until {
        fds.clear();
        fds.extend(idle.iter().map(|s| libc::pollfd { fd: s.fd(), events: libc::POLLIN, revents: 0 }));
        if sys::poll(&mut fds, 20).is_err() {
            break;
        }
        for i in (0..idle.len()).rev() {
            if fds.get(i).is_some_and(|f| f.revents != 0) {
                let stream = idle.swap_remove(i);
                returns.in_service.fetch_add(1, Ordering::SeqCst);
                if work_tx.send(stream).is_err() {
                    return;
                }
            }
        }
    }
}

/// Prepares an accepted connection, or refuses a TCP peer not in FCGI_WEB_SERVER_ADDRS.
fn admit(stream: Stream, config: &Config) -> Option<Stream> {
    match &stream {
        Stream::Unix(s) => {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(CONN_TICK));
            let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
        }
        Stream::Tcp(s) => {
            if !config.web_server_addrs.is_empty() {
                let allowed = s.peer_addr().is_ok_and(|p| config.web_server_addrs.contains(&p.ip()));
                if !allowed {
                    log::warn!("connection from {:?} refused: not in FCGI_WEB_SERVER_ADDRS", s.peer_addr().ok());
                    return None;
                }
            }
            let _ = s.set_nonblocking(false);
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(CONN_TICK));
            let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
        }
    }
    Some(stream)
}

#[expect(clippy::too_many_arguments, reason = "the worker's whole context, passed once at spawn")]
fn worker(
    work_rx: &Mutex<mpsc::Receiver<Stream>>,
    back_tx: &mpsc::Sender<Stream>,
    wake_tx: &UnixStream,
    returns: &Returns,
    config: &Config,
    limits: &Limits,
    shared: &Shared<'_>,
    mut handler: Handler,
) {
    // The database connection opens on the first request (start-up stays fast:
    // LiteSpeed's initTimeout runs from the first request).
    loop {
        let next = work_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(mut stream) = next else { return };
        let keep = serve_stream(&mut stream, config, limits, shared, &mut handler) == Some(End::Idle);
        #[cfg(feature = "test-hooks")]
        if handler.take_test_worker_kill() {
            returns.in_service.fetch_sub(1, Ordering::SeqCst);
            crate::http::handler::test_hook_panic("worker thread dies");
        }
        returns.in_service.fetch_sub(1, Ordering::SeqCst);
        if keep && back_tx.send(stream).is_ok() {
            let _ = (&*wake_tx).write(&[1]);
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
}

/// The handler as the connection layer sees it, counting answered requests.
struct Answer<'a, 'b> {
    handler: &'a mut Handler,
    shared: &'a Shared<'b>,
    max_requests: Option<u64>,
}

impl conn::Respond for Answer<'_, '_> {
    fn early(&mut self, req: &conn::Request) -> Option<Vec<u8>> {
        let response = self.handler.early(req)?;
        self.shared.count(self.max_requests);
        Some(response)
    }

    fn respond(&mut self, req: &conn::Request) -> Vec<u8> {
        let response = self.handler.handle(req);
        self.shared.count(self.max_requests);
        response
    }
}

/// Serves one request (or a closing connection) on `stream`; `Some(End::Idle)`
/// when the connection should go back to the poller.
fn serve_stream(
    stream: &mut Stream,
    config: &Config,
    limits: &Limits,
    shared: &Shared<'_>,
    handler: &mut Handler,
) -> Option<End> {
    let answer = Answer { handler, shared, max_requests: config.max_requests };
    let result = match stream {
        Stream::Unix(s) => conn::serve_one(s, limits, answer, || shared.is_stopping()),
        Stream::Tcp(s) => conn::serve_one(s, limits, answer, || shared.is_stopping()),
    };
    match result {
        Ok(End::Aborted) => {
            log::debug!("connection ended mid-request by the peer");
            Some(End::Aborted)
        }
        Ok(end) => Some(end),
        Err(e) => {
            log::warn!("closing connection: {e}");
            None
        }
    }
}
