//! The fixed pool of worker threads: a worker takes a connection with a
//! complete request from the poller's queue (never a partial one: it never
//! reads a socket), answers it through its own [`Handler`] (one read-only
//! SQLite connection each), writes what the socket takes of the answer without
//! waiting, and gives the connection back to the poller, which sends the rest
//! (a peer that does not read never holds a worker) and watches it for the next
//! request. A write request is validated and queued for the writer, and its
//! connection goes back to the poller parked: the poller answers it after the
//! commit. `VIDEOFEED_MAX_REQUESTS` is counted here (for writes, by the poller).
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

use super::poller::{Connection, Job, Parked, Returns};
use crate::config::Config;
use crate::fcgi::conn::{self, Head, Limits, Ready};
use crate::http::{Answer, Handler};

/// State every worker shares: the stop flag and the count of requests answered.
pub(super) struct Counters<'a> {
    pub(super) stop: &'a AtomicBool,
    pub(super) served: &'a AtomicU64,
}

impl Counters<'_> {
    pub(super) fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Counts one answered request; asks for a graceful stop at `VIDEOFEED_MAX_REQUESTS`.
    pub(super) fn count(&self, max_requests: Option<u64>) {
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
        let Ok(Job { mut connection, ready, write }) = next else { return };
        let keep = answer(&mut connection, ready, config, limits, shared, &mut handler);
        if write {
            returns.writes_in_service.fetch_sub(1, Ordering::SeqCst);
        }
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

/// Answers `ready` (and any further request already buffered), writes what the
/// socket takes now, and says whether the connection goes back to the poller
/// (which sends whatever is left, then reads the next request). It never reads
/// the socket (the poller gave it a complete request) and never waits on a write.
fn answer(
    c: &mut Connection,
    mut ready: Ready,
    config: &Config,
    limits: &Limits,
    shared: &Counters<'_>,
    handler: &mut Handler,
) -> bool {
    loop {
        let keep = ready.keep();
        match ready {
            Ready::Request { req, .. } => match handler.handle(&req) {
                Answer::Now(response) => {
                    shared.count(config.max_requests);
                    c.conn.answer(req.request_id, &response);
                }
                // A write queued for the writer: the poller answers it after the commit.
                Answer::Later(pending) => {
                    c.parked = Some(Parked { id: req.request_id, pending, keep });
                    return true;
                }
            },
            Ready::Answered { id, response, .. } => {
                shared.count(config.max_requests);
                c.conn.answer(id, &response);
            }
        }
        // Not kept by the web server, or stopping: close once the answer is sent (and a
        // body the web server is still sending for an early answer has been read off).
        if !keep || shared.is_stopping() {
            c.close_after_answer(limits);
        }
        match c.send_nowait(config.write_timeout) {
            Ok(true) => {}
            // The peer has not taken it all yet: the poller sends the rest.
            Ok(false) => return true,
            Err(e) => {
                if conn::is_peer_gone(&e) {
                    log::debug!("the peer left before reading its answer");
                } else {
                    log::warn!("closing connection: {e}");
                }
                return false;
            }
        }
        if c.is_done() {
            return false;
        }
        if c.conn.is_closing() {
            // Skip what is already here; the poller reads the rest. A new request on a
            // connection the web server did not keep is not served.
            return match c.conn.advance(limits, &mut |_| Head::NoBody) {
                Ok(_) => !c.conn.wants_close(),
                Err(_) => false,
            };
        }
        match c.conn.advance(limits, &mut |req| handler.head(req)) {
            // A write goes through the poller's write gate (VIDEOFEED_ADMIN_CONCURRENCY).
            Ok(Some(next @ Ready::Request { .. })) if matches!(&next, Ready::Request { req, .. } if crate::http::is_write(req)) =>
            {
                c.held = Some(next);
                return true;
            }
            Ok(Some(next)) => ready = next,
            // (Management replies decoded here are sent by the poller.)
            Ok(None) => return true,
            Err(e) => {
                log::warn!("closing connection: {e}");
                return false;
            }
        }
    }
}
