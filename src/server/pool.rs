//! The fixed pool of worker threads: a worker takes a connection with a
//! complete request from the poller's queue (never a partial one: it never
//! reads a socket), answers it through its own [`Handler`] (one read-only
//! SQLite connection each), writes the answer, and gives a kept-alive
//! connection back to the poller. `VIDEOFEED_MAX_REQUESTS` is counted here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use super::poller::{Connection, Job, Returns};
use crate::config::Config;
use crate::fcgi::conn::{self, Head, Limits, Ready};
use crate::http::Handler;

/// A peer that does not read its answer for this long loses the connection.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// State every worker shares: the stop flag and the count of requests answered.
pub(super) struct Counters<'a> {
    pub(super) stop: &'a AtomicBool,
    pub(super) served: &'a AtomicU64,
}

impl Counters<'_> {
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

#[expect(clippy::too_many_arguments, reason = "the worker's whole context, passed once at spawn")]
pub(super) fn worker(
    work_rx: &Mutex<mpsc::Receiver<Job>>,
    back_tx: &mpsc::Sender<Connection>,
    wake_tx: &UnixStream,
    returns: &Returns,
    config: &Config,
    limits: &Limits,
    shared: &Counters<'_>,
    mut handler: Handler,
) {
    // The database connection opens on the first request (start-up stays fast:
    // LiteSpeed's initTimeout runs from the first request).
    loop {
        let next = work_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Job { mut connection, ready }) = next else { return };
        let keep = answer(&mut connection, ready, config, limits, shared, &mut handler);
        #[cfg(feature = "test-hooks")]
        if handler.take_test_worker_kill() {
            returns.in_service.fetch_sub(1, Ordering::SeqCst);
            crate::sys::test_hook_panic("worker thread dies");
        }
        returns.in_service.fetch_sub(1, Ordering::SeqCst);
        if keep && back_tx.send(connection).is_ok() {
            let _ = (&*wake_tx).write(&[1]);
        }
    }
}

/// Answers `ready` (and any further request already buffered), sends what the
/// connection has to send, and says whether it goes back to the poller. It never
/// reads the socket: the poller gave it a complete request.
fn answer(
    c: &mut Connection,
    mut ready: Option<Ready>,
    config: &Config,
    limits: &Limits,
    shared: &Counters<'_>,
    handler: &mut Handler,
) -> bool {
    loop {
        let keep = ready.as_ref().map(Ready::keep);
        match ready.take() {
            Some(Ready::Request { req, .. }) => {
                let response = handler.handle(&req);
                shared.count(config.max_requests);
                c.conn.answer(req.request_id, &response);
            }
            Some(Ready::Answered { id, response, .. }) => {
                shared.count(config.max_requests);
                c.conn.answer(id, &response);
            }
            None => {}
        }
        match conn::flush(&mut c.stream, &mut c.conn) {
            Ok(None) => {}
            Ok(Some(_)) => {
                log::debug!("the peer left before reading its answer");
                return false;
            }
            Err(e) => {
                log::warn!("closing connection: {e}");
                return false;
            }
        }
        if c.conn.is_finished() {
            return false; // aborted on a connection the web server does not keep
        }
        // Not kept by the web server, or stopping: close, once a body the web server is
        // still sending for an early answer has been read off (by the poller).
        if keep == Some(false) || (keep.is_some() && shared.is_stopping()) {
            if !c.conn.close_when_drained(limits) {
                return false;
            }
            // Skip what is already here; the poller reads the rest. A new request on a
            // connection the web server did not keep is not served.
            return match c.conn.advance(limits, &mut |_| Head::NoBody) {
                Ok(_) => !c.conn.wants_close(),
                Err(_) => false,
            };
        }
        match c.conn.advance(limits, &mut |req| handler.head(req)) {
            Ok(Some(next)) => ready = Some(next),
            Ok(None) => return true,
            Err(e) => {
                log::warn!("closing connection: {e}");
                return false;
            }
        }
    }
}
