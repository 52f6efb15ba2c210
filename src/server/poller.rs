//! The poller thread: accepts connections and watches the idle ones (kept alive
//! by the web server between requests) with `poll(2)`; when one becomes
//! readable it hands it to the worker pool through a queue. So idle
//! connections never hold a worker, however many the web server keeps open (up
//! to [`MAX_CONNS`]; past that the kernel backlog queues). Accept errors back
//! off and retry, never stop the loop.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::listener::Listener;
use super::pool::{CONN_TICK, WRITE_TIMEOUT};
use crate::config::Config;
use crate::sys;

/// How often the poller looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// After a stop, how long idle connections may still deliver a request already sent.
const STOP_QUIET: Duration = Duration::from_millis(200);
/// Connections held open at once (idle and in service); reported as FCGI_MAX_CONNS.
pub const MAX_CONNS: usize = 1024;

/// Connections workers give back to the poller, and the socket that wakes it.
pub(super) struct Returns {
    pub(super) back_rx: Mutex<mpsc::Receiver<Stream>>,
    pub(super) wake_rx: UnixStream,
    /// Connections handed to workers and not yet closed or given back.
    pub(super) in_service: AtomicUsize,
}

/// Accepts connections and watches idle ones; hands readable ones to the workers.
pub(super) fn poller(
    listener: &Listener,
    config: &Config,
    stop: &AtomicBool,
    returns: &Returns,
    work_tx: &mpsc::Sender<Stream>,
) {
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

pub(super) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub(super) fn fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
        }
    }
}
