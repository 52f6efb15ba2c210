//! The poller thread: accepts connections, reads every connection that is not
//! in service (non-blocking), and assembles its FastCGI request there
//! ([`Conn`]); only a complete request goes to the worker pool, through a
//! queue. So neither an idle kept-alive connection nor a client that sends
//! part of a request (a few header bytes, half a PARAMS stream) ever holds a
//! worker, however many there are (up to [`MAX_CONNS`]; past that the kernel
//! backlog queues). A request not complete within `VIDEOFEED_REQUEST_TIMEOUT_MS`
//! of its first byte is cut off here. Accept errors back off and retry, never
//! stop the loop.
//!
//! The poller also answers what needs no worker (management records such as
//! GET_VALUES, and requests answered from their head: 401, 413, 431) and sends
//! every byte a connection still has to send: writes never block, here or in a
//! worker ([`sys::send_nowait`]). A connection with bytes waiting is watched for
//! room to write and not read meanwhile (what a peer that never reads can make
//! us hold is bounded by what one wake-up reads), and it is closed when they are
//! not all sent within `VIDEOFEED_WRITE_TIMEOUT_MS`.
//!
//! Writes: a write request goes to a worker only while fewer than
//! `VIDEOFEED_ADMIN_CONCURRENCY` workers hold one; the others wait here, in
//! arrival order, never refused ([`Waiting`]). The worker validates the body,
//! queues the op for the writer thread and gives the connection back *parked*
//! ([`Parked`]): the writer wakes the poller after the commit and the answer is
//! sent from here, so no worker ever waits for a commit.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::listener::{Listener, OwnedPath};
use super::pool::Counters;
use crate::config::Config;
use crate::fcgi::conn::{self, Conn, Limits, Ready};
use crate::http::{Gate, Pending};
use crate::sys;

/// How often the poller looks at the stop flag and the request deadlines.
const TICK: Duration = Duration::from_millis(100);
/// After a stop, how long idle connections may still deliver a request already sent.
const STOP_QUIET: Duration = Duration::from_millis(200);
/// Connections held open at once (idle and in service); reported as FCGI_MAX_CONNS.
pub const MAX_CONNS: usize = 1024;
/// Bytes read from one connection per wake-up, so one large body cannot starve the others.
const READ_PER_WAKE: usize = 1 << 20;

/// Connections workers give back to the poller, and the socket that wakes it.
pub(super) struct Returns {
    pub(super) back_rx: Mutex<mpsc::Receiver<Connection>>,
    pub(super) wake_rx: UnixStream,
    /// Connections handed to workers and not yet closed or given back.
    pub(super) in_service: AtomicUsize,
    /// Of those, the ones handed over with a write request (bounded by
    /// `VIDEOFEED_ADMIN_CONCURRENCY`).
    pub(super) writes_in_service: AtomicUsize,
    /// When a stop must be over (set once by whichever thread sees the stop first).
    pub(super) stop_deadline: OnceLock<Instant>,
}

/// A connection and its protocol state (what was received of the next request,
/// what is still to be sent).
pub(super) struct Connection {
    pub(super) stream: Stream,
    pub(super) conn: Conn,
    /// Close once everything in `conn.out()` is sent (the last answer on a
    /// connection the web server does not keep, or one answered while stopping).
    pub(super) close_after_out: bool,
    /// When the bytes waiting in `conn.out()` must all be sent by (set when a write
    /// could not take them all; cleared once they are sent).
    pub(super) write_deadline: Option<Instant>,
    /// A write queued for the writer, answered here after its commit (the
    /// connection is not read meanwhile).
    pub(super) parked: Option<Parked>,
    /// A write request a worker found after the one it answered: it goes through
    /// the poller's write gate like any other.
    pub(super) held: Option<Ready>,
}

/// A write request whose answer follows its commit.
pub(super) struct Parked {
    /// The FastCGI request id.
    pub(super) id: u16,
    /// The queued write.
    pub(super) pending: Pending,
    /// Whether the web server keeps the connection after the answer.
    pub(super) keep: bool,
}

/// Write requests waiting for a worker (past `VIDEOFEED_ADMIN_CONCURRENCY`), in
/// arrival order, each with the time it is answered 503 by if still waiting.
#[derive(Default)]
pub(super) struct Waiting {
    queue: VecDeque<(Connection, Ready, Instant)>,
}

impl Connection {
    fn new(stream: Stream) -> Connection {
        Connection { stream, conn: Conn::new(), close_after_out: false, write_deadline: None, parked: None, held: None }
    }

    /// Writes what the socket takes now of `conn.out()`, never waiting; true when
    /// nothing is left to send. A write that leaves bytes behind starts the write
    /// deadline (`write_timeout` from now); one that sends everything clears it.
    ///
    /// # Errors
    /// The write error (the peer left, or the socket failed): close the connection.
    pub(super) fn send_nowait(&mut self, write_timeout: Duration) -> io::Result<bool> {
        while !self.conn.out().is_empty() {
            match sys::send_nowait(self.stream.fd(), self.conn.out()) {
                Ok(0) => break,
                Ok(n) => self.conn.sent_part(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.conn.out().is_empty() {
            self.write_deadline = None;
            return Ok(true);
        }
        self.write_deadline.get_or_insert_with(|| Instant::now() + write_timeout);
        Ok(false)
    }

    /// After the last answer on a connection that is to close: close once it is
    /// sent, or first read off a body the web server is still sending for it.
    pub(super) fn close_after_answer(&mut self, limits: &Limits) {
        if !self.conn.close_when_drained(limits) {
            self.close_after_out = true;
        }
    }

    /// Whether nothing more is to be done on this connection once its bytes are sent.
    pub(super) fn is_done(&self) -> bool {
        self.close_after_out || self.conn.is_finished() || self.conn.wants_close()
    }
}

/// Work for a worker: a connection with a complete request to answer.
pub(super) struct Job {
    pub(super) connection: Connection,
    pub(super) ready: Ready,
    /// A write request (counted in [`Returns::writes_in_service`] until the worker is done).
    pub(super) write: bool,
}

/// What the poller needs besides the listener and the stop flag.
pub(super) struct Context<'a> {
    pub(super) config: &'a Config,
    pub(super) limits: &'a Limits,
    pub(super) gate: &'a Gate,
    /// The Unix socket path we bound, if we did.
    pub(super) owned: Option<&'a OwnedPath>,
    /// The stop flag and the count of requests answered (early answers count too).
    pub(super) counters: &'a Counters<'a>,
}

/// What reading a connection came to.
enum Outcome {
    /// Nothing complete yet, or bytes still to send: keep watching it.
    Wait,
    /// Hand it to a worker.
    Work(Ready),
    /// Close it.
    Close,
}

/// What to watch a connection for: room to write while it has bytes to send
/// (and not its input meanwhile, unless it is reading off a body before
/// closing), its input otherwise.
fn interest(c: &Connection) -> libc::c_short {
    if c.conn.out().is_empty() {
        libc::POLLIN
    } else if c.conn.is_closing() {
        libc::POLLIN | libc::POLLOUT
    } else {
        libc::POLLOUT
    }
}

/// Accepts connections and watches the ones not in service; hands complete requests to the workers.
pub(super) fn poller(
    listener: &Listener,
    cx: &Context<'_>,
    stop: &AtomicBool,
    returns: &Returns,
    work_tx: &mpsc::Sender<Job>,
) {
    let mut idle: Vec<Connection> = Vec::new();
    let mut waiting = Waiting::default();
    let mut backoff = Duration::from_millis(5);
    let mut accept_paused_until: Option<Instant> = None;
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut chunk = vec![0u8; conn::READ_CHUNK];
    while !stop.load(Ordering::SeqCst) {
        if !settle_writes(&mut idle, &mut waiting, cx, returns, work_tx) {
            return;
        }
        let in_service = returns.in_service.load(Ordering::SeqCst);
        let held = idle.len() + waiting.queue.len() + in_service;
        let accepting = held < MAX_CONNS && accept_paused_until.is_none_or(|t| Instant::now() >= t);
        fds.clear();
        fds.push(libc::pollfd { fd: returns.wake_rx.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        fds.push(libc::pollfd { fd: if accepting { listener.fd() } else { -1 }, events: libc::POLLIN, revents: 0 });
        fds.extend(idle.iter().map(watch));
        let tick = if accepting { TICK } else { backoff.min(TICK) };
        let polled = sys::poll(&mut fds, i32::try_from(tick.as_millis()).unwrap_or(100));
        if let Err(e) = polled {
            log::warn!("poll failed: {e}");
            thread::sleep(TICK);
            continue;
        }
        if fds.first().is_some_and(|f| f.revents != 0) {
            let mut drain = [0u8; 256];
            while (&returns.wake_rx).read(&mut drain).is_ok_and(|n| n > 0) {}
        }
        // Read the connections with data (or EOF); walk backwards to remove in place.
        if !serve_readable(&mut idle, &mut waiting, &fds, 2, cx, returns, work_tx, &mut chunk) {
            return;
        }
        cut_off_overdue(&mut idle, cx);
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
                        if let Some(stream) = admit(stream, cx.config) {
                            idle.push(Connection::new(stream));
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
    // Stopping. New connections must go elsewhere: our path is unlinked unless another
    // videofeed has taken it over (then it already points there). What is already in
    // the backlog was sent to us: accept it and serve it, never reset it.
    if let Some(owned) = cx.owned.filter(|o| o.is_ours()) {
        let _ = std::fs::remove_file(&owned.path);
    }
    let backlog = accept_all(listener, cx.config, &mut idle);
    if backlog > 0 {
        log::info!("stopping: serving {backlog} connection(s) from the backlog");
    }
    // A client that looked our path up just before it was renamed or unlinked may still
    // be connecting (a connect is a lookup, then a queueing: under load a thread can be
    // preempted between the two). On a path we bound, keep accepting while draining.
    let late = cx.owned.map(|_| listener);
    drain_at_stop(&mut idle, &mut waiting, cx, returns, work_tx, &mut chunk, late);
}

/// The poll entry for `c`: none while it is parked (nothing to read or send until its commit).
fn watch(c: &Connection) -> libc::pollfd {
    let fd = if c.parked.is_some() { -1 } else { c.stream.fd() };
    libc::pollfd { fd, events: interest(c), revents: 0 }
}

/// Takes back what the workers returned, answers parked writes whose commit is
/// in (or whose wait is over), and hands waiting writes to workers as the write
/// gate allows (answering 503 those that waited past `VIDEOFEED_ADMIN_WAIT_MS`).
/// False when the workers' queue is gone.
fn settle_writes(
    idle: &mut Vec<Connection>,
    waiting: &mut Waiting,
    cx: &Context<'_>,
    returns: &Returns,
    work_tx: &mpsc::Sender<Job>,
) -> bool {
    let mut found: Vec<(Connection, Ready)> = Vec::new();
    {
        let back = returns.back_rx.lock().unwrap_or_else(PoisonError::into_inner);
        while let Ok(mut c) = back.try_recv() {
            match c.held.take() {
                Some(ready) => found.push((c, ready)),
                None => idle.push(c),
            }
        }
    }
    let now = Instant::now();
    for i in (0..idle.len()).rev() {
        let Some(c) = idle.get_mut(i) else { continue };
        let Some(parked) = c.parked.as_ref() else { continue };
        let Some(answer) = parked.pending.try_answer(now) else { continue };
        let (id, keep) = (parked.id, parked.keep);
        c.parked = None;
        cx.counters.count(cx.config.max_requests);
        c.conn.answer(id, &answer);
        if !keep || cx.counters.is_stopping() {
            c.close_after_answer(cx.limits);
        }
        match step(c, cx) {
            Outcome::Wait => {}
            Outcome::Close => drop(idle.swap_remove(i)),
            Outcome::Work(ready) => found.push((idle.swap_remove(i), ready)),
        }
    }
    // Writes that waited too long for a worker: answered here, nothing written.
    let mut kept = VecDeque::with_capacity(waiting.queue.len());
    for (mut c, ready, deadline) in waiting.queue.drain(..) {
        if now < deadline {
            kept.push_back((c, ready, deadline));
            continue;
        }
        let (id, keep) = match &ready {
            Ready::Request { req, keep } => (req.request_id, *keep),
            Ready::Answered { id, keep, .. } => (*id, *keep),
        };
        cx.counters.count(cx.config.max_requests);
        c.conn.answer(id, &crate::http::admin::no_worker_in_time(cx.config.admin_wait));
        if !keep || cx.counters.is_stopping() {
            c.close_after_answer(cx.limits);
        }
        match step(&mut c, cx) {
            Outcome::Wait => idle.push(c),
            Outcome::Close => drop(c),
            // (A request right behind it, already received: through the gate like any other.)
            Outcome::Work(next) => found.push((c, next)),
        }
    }
    waiting.queue = kept;
    for (connection, ready) in found {
        if !dispatch(waiting, cx, returns, work_tx, connection, ready) {
            return false;
        }
    }
    while returns.writes_in_service.load(Ordering::SeqCst) < cx.config.admin_concurrency.max(1) {
        let Some((connection, ready, _)) = waiting.queue.pop_front() else { break };
        if !hand_over(returns, work_tx, connection, ready) {
            return false;
        }
    }
    let parked = idle.iter().filter(|c| c.parked.is_some()).count();
    crate::obs::metrics::global().set_write_waits(waiting.queue.len(), parked);
    true
}

/// Hands a complete request to the workers, or, for a write while
/// `VIDEOFEED_ADMIN_CONCURRENCY` workers hold one (or others wait before it),
/// keeps it waiting in arrival order. False when the workers' queue is gone.
fn dispatch(
    waiting: &mut Waiting,
    cx: &Context<'_>,
    returns: &Returns,
    work_tx: &mpsc::Sender<Job>,
    connection: Connection,
    ready: Ready,
) -> bool {
    let write = matches!(&ready, Ready::Request { req, .. } if crate::http::is_write(req));
    let full = returns.writes_in_service.load(Ordering::SeqCst) >= cx.config.admin_concurrency.max(1);
    if write && (full || !waiting.queue.is_empty()) {
        waiting.queue.push_back((connection, ready, Instant::now() + cx.config.admin_wait));
        return true;
    }
    hand_over(returns, work_tx, connection, ready)
}

/// Sends a complete request to the workers' queue. False when it is gone.
fn hand_over(returns: &Returns, work_tx: &mpsc::Sender<Job>, connection: Connection, ready: Ready) -> bool {
    let write = matches!(&ready, Ready::Request { req, .. } if crate::http::is_write(req));
    returns.in_service.fetch_add(1, Ordering::SeqCst);
    if write {
        returns.writes_in_service.fetch_add(1, Ordering::SeqCst);
    }
    work_tx.send(Job { connection, ready, write }).is_ok()
}

/// Accepts every connection waiting in the backlog; how many.
fn accept_all(listener: &Listener, config: &Config, idle: &mut Vec<Connection>) -> usize {
    let mut n = 0;
    loop {
        let accepted = match listener {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        };
        match accepted {
            Ok(stream) => {
                if let Some(stream) = admit(stream, config) {
                    idle.push(Connection::new(stream));
                    n += 1;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return n,
        }
    }
}

/// Stopping: no new connections but `late` ones (a listener whose path no longer
/// leads here: connections still arriving on it were sent before it moved, so they
/// are accepted until none has come for [`STOP_QUIET`]). A request already on its
/// way on an idle kept-alive connection is still served, and one being received is
/// read to its end (or its deadline, or the grace period); connections that stay
/// quiet are closed.
fn drain_at_stop(
    idle: &mut Vec<Connection>,
    waiting: &mut Waiting,
    cx: &Context<'_>,
    returns: &Returns,
    work_tx: &mpsc::Sender<Job>,
    chunk: &mut [u8],
    late: Option<&Listener>,
) {
    let started = Instant::now();
    let mut quiet_until = started + STOP_QUIET;
    let grace_until = *returns.stop_deadline.get_or_init(|| started + cx.config.shutdown_grace);
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        // Connections answered meanwhile that still drain a body come back too, and
        // writes waiting for their commit are answered when it is in.
        if !settle_writes(idle, waiting, cx, returns, work_tx) {
            return;
        }
        let now = Instant::now();
        let busy = idle
            .iter()
            .any(|c| c.conn.is_receiving() || c.conn.is_closing() || !c.conn.out().is_empty() || c.parked.is_some())
            || !waiting.queue.is_empty()
            || returns.in_service.load(Ordering::SeqCst) > 0;
        if now >= grace_until || (now >= quiet_until && !busy) {
            break;
        }
        fds.clear();
        fds.push(libc::pollfd { fd: late.map_or(-1, Listener::fd), events: libc::POLLIN, revents: 0 });
        fds.extend(idle.iter().map(watch));
        if sys::poll(&mut fds, 20).is_err() {
            break;
        }
        if !serve_readable(idle, waiting, &fds, 1, cx, returns, work_tx, chunk) {
            return;
        }
        cut_off_overdue(idle, cx);
        if let (Some(listener), Some(f)) = (late, fds.first()) {
            if f.revents != 0 {
                let n = accept_all(listener, cx.config, idle);
                if n > 0 {
                    log::info!("stopping: serving {n} connection(s) that arrived late");
                    quiet_until = Instant::now() + STOP_QUIET;
                }
            }
        }
    }
    let unfinished = idle.iter().filter(|c| c.conn.is_receiving()).count();
    if unfinished > 0 {
        log::warn!("stopping with {unfinished} request(s) still being received after the grace period");
    }
    let unanswered = idle.iter().filter(|c| c.parked.is_some()).count() + waiting.queue.len();
    if unanswered > 0 {
        log::warn!(
            "stopping with {unanswered} write request(s) unanswered after the grace period \
             (queued ones are still committed before the writer stops)"
        );
    }
}

/// Serves every connection `fds` (from `offset` on, in `idle`'s order) has an
/// event for: reads it, or sends what it has to send; hands those with a
/// complete request to the workers and drops closed ones. False when the
/// workers' queue is gone.
#[expect(clippy::too_many_arguments, reason = "the poller's state, passed through")]
fn serve_readable(
    idle: &mut Vec<Connection>,
    waiting: &mut Waiting,
    fds: &[libc::pollfd],
    offset: usize,
    cx: &Context<'_>,
    returns: &Returns,
    work_tx: &mpsc::Sender<Job>,
    chunk: &mut [u8],
) -> bool {
    for i in (0..idle.len()).rev() {
        if fds.get(i + offset).is_none_or(|f| f.revents == 0) {
            continue;
        }
        let Some(c) = idle.get_mut(i) else { continue };
        let outcome =
            if c.conn.out().is_empty() || c.conn.is_closing() { read_ready(c, cx, chunk) } else { step(c, cx) };
        match outcome {
            Outcome::Wait => {}
            Outcome::Close => drop(idle.swap_remove(i)),
            Outcome::Work(ready) => {
                let connection = idle.swap_remove(i);
                if !dispatch(waiting, cx, returns, work_tx, connection, ready) {
                    return false;
                }
            }
        }
    }
    true
}

/// Closes connections whose request was not complete in time, and those whose
/// peer has not read what they had to send within the write timeout.
fn cut_off_overdue(idle: &mut Vec<Connection>, cx: &Context<'_>) {
    let (limits, now) = (cx.limits, Instant::now());
    idle.retain(|c| {
        if c.write_deadline.is_some_and(|t| now > t) {
            log::warn!(
                "closing connection: the peer read none or part of its answer in {} ms \
                 ({} bytes unsent; VIDEOFEED_WRITE_TIMEOUT_MS)",
                cx.config.write_timeout.as_millis(),
                c.conn.out().len()
            );
            return false;
        }
        let overdue = c.conn.is_overdue(limits);
        if overdue && c.conn.is_closing() {
            log::debug!("closing connection: the body after an early answer did not end in time");
        } else if overdue {
            log::warn!("closing connection: {}", conn::Error::RequestTimeout(limits.request_timeout));
        }
        !overdue
    });
}

/// Reads what `c` has (without blocking) into its request state.
fn read_ready(c: &mut Connection, cx: &Context<'_>, chunk: &mut [u8]) -> Outcome {
    let mut total = 0;
    loop {
        match sys::recv_nowait(c.stream.fd(), chunk) {
            Ok(0) => {
                if c.conn.is_receiving() {
                    log::debug!("connection ended mid-request by the peer");
                }
                return Outcome::Close;
            }
            Ok(n) => {
                c.conn.push(chunk.get(..n).unwrap_or_default());
                total += n;
                match step(c, cx) {
                    Outcome::Wait => {}
                    done => return done,
                }
                // Bytes left unsent: read no more until the peer has taken them.
                let backlogged = !c.conn.out().is_empty() && !c.conn.is_closing();
                if backlogged || n < chunk.len() || total >= READ_PER_WAKE {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                if !conn::is_peer_gone(&e) {
                    log::warn!("closing connection: {e}");
                }
                return Outcome::Close;
            }
        }
    }
    Outcome::Wait
}

/// Sends what `c` has to send (without blocking) and, once all of it is sent,
/// decodes what it has received: a complete request goes to a worker; a request
/// answered from its head (401, 413, 431) and management records are answered
/// here, so no worker ever holds a connection only to send.
fn step(c: &mut Connection, cx: &Context<'_>) -> Outcome {
    loop {
        match c.send_nowait(cx.config.write_timeout) {
            Ok(true) => {}
            Ok(false) => return Outcome::Wait,
            Err(e) => {
                if !conn::is_peer_gone(&e) {
                    log::warn!("closing connection: {e}");
                }
                return Outcome::Close;
            }
        }
        if c.is_done() {
            return Outcome::Close;
        }
        match c.conn.advance(cx.limits, &mut |req| cx.gate.head(req)) {
            // A request after the body a closing connection was reading off: not served.
            Ok(Some(_)) if c.conn.wants_close() => return Outcome::Close,
            Ok(Some(Ready::Answered { id, response, keep })) => {
                cx.counters.count(cx.config.max_requests);
                c.conn.answer(id, &response);
                if !keep || cx.counters.is_stopping() {
                    c.close_after_answer(cx.limits);
                }
            }
            Ok(Some(ready)) => return Outcome::Work(ready),
            Ok(None) if c.conn.out().is_empty() && !c.is_done() => return Outcome::Wait,
            Ok(None) => {}
            Err(e) => {
                log::warn!("closing connection: {e}");
                return Outcome::Close;
            }
        }
    }
}

/// Prepares an accepted connection, or refuses a TCP peer not in FCGI_WEB_SERVER_ADDRS.
/// (Every read and write on it passes `MSG_DONTWAIT`: none blocks, whatever its mode.)
fn admit(stream: Stream, config: &Config) -> Option<Stream> {
    match &stream {
        Stream::Unix(s) => {
            let _ = s.set_nonblocking(false);
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
