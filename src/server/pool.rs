//! The fixed pool of worker threads: a worker takes a connection with a
//! complete request from the poller's queue, answers it through its own
//! [`Handler`] (one read-only SQLite connection each), and gives a kept-alive
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

use super::poller::{Returns, Stream};
use crate::config::Config;
use crate::fcgi::conn::{self, End, Limits};
use crate::http::Handler;

/// Read timeout on a connection: how often an idle kept-alive connection checks the stop flag.
pub(super) const CONN_TICK: Duration = Duration::from_millis(200);
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
    work_rx: &Mutex<mpsc::Receiver<Stream>>,
    back_tx: &mpsc::Sender<Stream>,
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
        let Ok(mut stream) = next else { return };
        let keep = serve_stream(&mut stream, config, limits, shared, &mut handler) == Some(End::Idle);
        #[cfg(feature = "test-hooks")]
        if handler.take_test_worker_kill() {
            returns.in_service.fetch_sub(1, Ordering::SeqCst);
            crate::sys::test_hook_panic("worker thread dies");
        }
        returns.in_service.fetch_sub(1, Ordering::SeqCst);
        if keep && back_tx.send(stream).is_ok() {
            let _ = (&*wake_tx).write(&[1]);
        }
    }
}

/// The handler as the connection layer sees it, counting answered requests.
struct Responder<'a, 'b> {
    handler: &'a mut Handler,
    shared: &'a Counters<'b>,
    max_requests: Option<u64>,
}

impl conn::Respond for Responder<'_, '_> {
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
    shared: &Counters<'_>,
    handler: &mut Handler,
) -> Option<End> {
    let answer = Responder { handler, shared, max_requests: config.max_requests };
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
