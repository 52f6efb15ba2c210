//! The responder process: find or bind the listener, run a fixed pool of
//! worker threads that each accept on it, and stop gracefully on a signal.
//!
//! Listener: a listening socket inherited on fd 0 (how LiteSpeed, lighttpd
//! and spawn-fcgi start FastCGI apps) always wins, and then nothing is bound
//! or unlinked. Otherwise the configured Unix socket (a stale file replaced,
//! mode 0660) or TCP address is bound; the Unix socket file is removed at stop.
//!
//! Workers: `workers` threads, each owning one read-only SQLite connection,
//! each waiting (poll, 100 ms ticks) and accepting on the shared listener and
//! serving one connection at a time. The kernel backlog is the queue; nothing
//! grows without bound. Accept errors back off and retry, never stop the
//! loop. A worker that dies is replaced.
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
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::config::{Config, Listen};
use crate::fcgi::conn::{self, End, Limits};
use crate::handler::Handler;
use crate::search::{self, RankIndex, Reader};
use crate::sys;

/// How often a blocked worker looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);
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
    // Fail fast, with the file named, if the database is unusable.
    Reader::open_read_only(&config.db).map_err(Error::Database)?;
    let index = config.rank_index.then(|| RankIndex::new(config.db.clone()));
    if let Some(index) = &index {
        index.refresh();
    }
    let (listener, owned_path) = open_listener(&config)?;
    listener.set_nonblocking().map_err(|source| Error::Bind { what: "the listener".into(), source })?;
    let listener = Arc::new(listener);

    let limits = Limits { max_params: config.max_params, max_stdin: config.max_stdin, max_conns: config.workers.get() };
    let served = Arc::new(AtomicU64::new(0));
    let cache = Arc::new(Cache::new(config.cache_bytes));
    let spawn = |n: usize| -> io::Result<JoinHandle<()>> {
        let (listener, config, stop) = (Arc::clone(&listener), Arc::clone(&config), Arc::clone(&stop));
        let served = Arc::clone(&served);
        let handler = Handler::new(config.db.clone(), index.clone()).with_cache(Arc::clone(&cache));
        thread::Builder::new()
            .name(format!("worker-{n}"))
            .spawn(move || worker(&listener, &config, &limits, &Shared { stop: &stop, served: &served }, handler))
    };
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

    // Supervise: replace any worker that died until a stop is asked for.
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
    }

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
    let left = workers.iter().filter(|h| h.is_some()).count();
    if left > 0 {
        log::warn!("stopped with {left} worker(s) still busy after the grace period");
    } else {
        log::info!("stopped cleanly");
    }
    Ok(())
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

fn worker(listener: &Listener, config: &Config, limits: &Limits, shared: &Shared<'_>, mut handler: Handler) {
    if let Err(e) = handler.warm() {
        log::warn!("worker could not open the database yet: {e}");
    }
    let mut backoff = Duration::from_millis(5);
    while !shared.is_stopping() {
        match sys::wait_readable(listener.fd(), i32::try_from(TICK.as_millis()).unwrap_or(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                log::warn!("poll on the listener failed: {e}");
                thread::sleep(TICK);
                continue;
            }
        }
        let accepted = match listener {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        };
        match accepted {
            Ok(stream) => {
                backoff = Duration::from_millis(5);
                serve_stream(stream, config, limits, shared, &mut handler);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {} // another worker took it
            Err(e) => match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    log::warn!("accept failed: {e}; retrying in {} ms", backoff.as_millis());
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                _ => log::debug!("accept failed: {e}; retrying"),
            },
        }
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

fn serve_stream(stream: Stream, config: &Config, limits: &Limits, shared: &Shared<'_>, handler: &mut Handler) {
    let mut answer = |req: &conn::Request| {
        let response = handler.handle(req);
        shared.count(config.max_requests);
        response
    };
    let result = match stream {
        Stream::Unix(mut s) => {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(CONN_TICK));
            let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
            conn::serve(&mut s, limits, &mut answer, || shared.is_stopping())
        }
        Stream::Tcp(mut s) => {
            if !config.web_server_addrs.is_empty() {
                let allowed = s.peer_addr().is_ok_and(|p| config.web_server_addrs.contains(&p.ip()));
                if !allowed {
                    log::warn!("connection from {:?} refused: not in FCGI_WEB_SERVER_ADDRS", s.peer_addr().ok());
                    return;
                }
            }
            let _ = s.set_nonblocking(false);
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(CONN_TICK));
            let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
            conn::serve(&mut s, limits, &mut answer, || shared.is_stopping())
        }
    };
    match result {
        Ok(End::Aborted) => log::debug!("connection ended mid-request by the peer"),
        Ok(_) => {}
        Err(e) => log::warn!("closing connection: {e}"),
    }
}
