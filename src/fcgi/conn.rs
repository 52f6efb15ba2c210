//! One FastCGI connection, serving requests one at a time: the sans-IO state
//! machine [`Conn`] and [`serve`], a blocking loop over any `Read + Write` stream.
//! (One state machine with its table-driven tests, kept whole: longer than most files.)
//!
//! [`Conn`] takes the bytes read ([`Conn::push`]) and assembles a responder
//! request (BEGIN_REQUEST, PARAMS to their empty end, STDIN to its empty end);
//! [`Conn::advance`] yields it only when it is complete, so a server can read
//! in one thread (non-blocking, many connections) and answer in another. When
//! PARAMS end, the responder's [`Respond::head`] decides, before any body is
//! buffered: answer now (401, 413, ...), no body for this route (the request
//! is complete; STDIN is skipped unread), or read the body up to a cap. The
//! answer goes out as STDOUT records, an empty STDOUT and
//! END_REQUEST(appStatus 0, REQUEST_COMPLETE) ([`Conn::answer`]); then the
//! connection waits for the next request (`FCGI_KEEP_CONN` set: the web
//! server owns the connection's lifetime, §3.5) or is closed.
//!
//! Also answered here, at library level: FCGI_GET_VALUES (§4.1) with the real
//! worker count and `FCGI_MPXS_CONNS=0`; unknown management types with
//! FCGI_UNKNOWN_TYPE (§4.2); a BEGIN_REQUEST on a busy connection with
//! FCGI_CANT_MPX_CONN (§5.5); a role other than responder with
//! FCGI_UNKNOWN_ROLE; FCGI_ABORT_REQUEST (§5.4) and EOF mid-request as a quiet
//! abort. Out of scope: sockets, threads, routing, the database.
//!
//! Bounds: the buffer holds at most one record plus one read chunk of
//! undecoded bytes; PARAMS and STDIN are capped by [`Limits`] and the head's
//! cap; a request must be complete within [`Limits::request_timeout`] of its
//! first byte. A stream that breaks the protocol ends with [`Error`], and the
//! caller closes only that connection.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;
use std::io::{self, Read, Write};

use super::record::{self, BeginRequest, Decoded, ProtocolStatus, Record, RecordType};

/// Size caps applied to every request on a connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of PARAMS content for one request.
    pub max_params: usize,
    /// Bytes of STDIN buffered for one request; the rest is read and discarded.
    pub max_stdin: usize,
    /// Connections accepted at once, reported as FCGI_MAX_CONNS.
    pub max_conns: usize,
    /// Requests served at once (the worker count), reported as FCGI_MAX_REQS.
    pub max_reqs: usize,
    /// Name-value pairs allowed in one request's PARAMS.
    pub max_param_count: usize,
    /// Time allowed to finish sending a request once its first record arrived.
    pub request_timeout: std::time::Duration,
}

/// A complete responder request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The FastCGI request id.
    pub request_id: u16,
    /// The CGI/1.1 environment sent in PARAMS, in the order received.
    pub params: Vec<record::Pair>,
    /// The request body, up to [`Limits::max_stdin`] bytes.
    pub stdin: Vec<u8>,
    /// Whether the body was longer than [`Limits::max_stdin`] and the rest was discarded
    /// (the handler can answer 413 instead of acting on a partial body).
    pub stdin_truncated: bool,
    /// Whether PARAMS went over [`Limits::max_params`] bytes or [`Limits::max_param_count`]
    /// pairs: `params` is then empty, and the request is answered from its head (431).
    pub params_over_cap: bool,
}

impl Request {
    /// The value of a CGI parameter, if present and UTF-8 (the last one wins when repeated).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.param_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The raw bytes of a CGI parameter, UTF-8 or not (the last one wins when repeated).
    pub fn param_bytes(&self, name: &str) -> Option<&[u8]> {
        self.params.iter().rev().find(|(n, _)| n.as_slice() == name.as_bytes()).map(|(_, v)| v.as_slice())
    }
}

/// What a responder does with a request once its PARAMS are in, before any of its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// Answer now with this CGI response (say 401, or 413 for a declared body over the cap);
    /// the body, if any, is skipped unread (§3.3: its id is no longer active).
    Answer(Vec<u8>),
    /// The route takes no body: the request is complete now, and any STDIN is skipped unread.
    NoBody,
    /// Read the body to its end, keeping at most this many bytes (the rest is
    /// discarded and [`Request::stdin_truncated`] set).
    Body(usize),
}

/// What answers requests on a connection.
///
/// Any `FnMut(&Request) -> Vec<u8>` is one (it reads every body, up to [`Limits::max_stdin`]).
pub trait Respond {
    /// Called when PARAMS are complete, before any of the body is buffered
    /// (`req.stdin` is empty here). The default reads the body up to `limits.max_stdin`.
    fn head(&mut self, _req: &Request, limits: &Limits) -> Head {
        Head::Body(limits.max_stdin)
    }

    /// The complete CGI response to a complete request.
    fn respond(&mut self, req: &Request) -> Vec<u8>;
}

impl<F: FnMut(&Request) -> Vec<u8>> Respond for F {
    fn respond(&mut self, req: &Request) -> Vec<u8> {
        self(req)
    }
}

/// How a connection ended without a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peer closed between requests, or the last request did not ask to keep the connection.
    Closed,
    /// The peer went away mid-request (EOF, reset, broken pipe) or sent FCGI_ABORT_REQUEST on a
    /// connection it did not keep.
    Aborted,
    /// `should_stop` said the process is stopping and no request was in progress.
    Stopping,
}

/// Why a connection was closed on a protocol or I/O error.
#[derive(Debug)]
pub enum Error {
    /// The bytes are not FastCGI: bad version or a malformed body.
    Protocol(record::Error),
    /// PARAMS of one request held more than [`Limits::max_param_count`] pairs.
    TooManyParams(usize),
    /// A request was not completely sent within [`Limits::request_timeout`].
    RequestTimeout(std::time::Duration),
    /// Reading or writing the stream failed other than by the peer leaving.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(e) => write!(f, "{e}"),
            Error::TooManyParams(cap) => write!(f, "fastcgi params hold more than {cap} variables"),
            Error::RequestTimeout(t) => write!(f, "the request was not completely sent within {} ms", t.as_millis()),
            Error::Io(e) => write!(f, "fastcgi connection i/o: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Protocol(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<record::Error> for Error {
    fn from(e: record::Error) -> Self {
        Error::Protocol(e)
    }
}

/// The answer to a request whose PARAMS went over a cap, when the responder's
/// [`Respond::head`] gives none of its own (RFC 6585's 431).
pub const PARAMS_TOO_LARGE: &[u8] = b"Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\r\nthe request's parameters (query string and headers) are over the size limit\n";

/// Bytes asked of the stream per read.
pub const READ_CHUNK: usize = 16 * 1024;

/// The request being assembled on this connection.
struct Active {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    params_done: bool,
    /// PARAMS went over the byte cap: the rest is skipped and the request answered 431.
    params_over_cap: bool,
    /// Body bytes kept at most (set by [`Respond::head`] when PARAMS end).
    stdin_cap: usize,
    stdin: Vec<u8>,
    stdin_truncated: bool,
    stdin_done: bool,
}

/// A request ready to be answered: what [`Conn::advance`] yields.
#[derive(Debug)]
pub enum Ready {
    /// A complete request: answer it with [`Respond::respond`].
    Request {
        /// The request.
        req: Request,
        /// Whether the web server keeps the connection after the answer (`FCGI_KEEP_CONN`).
        keep: bool,
    },
    /// A request answered from its head ([`Head::Answer`]): send this response.
    Answered {
        /// The FastCGI request id.
        id: u16,
        /// The complete CGI response.
        response: Vec<u8>,
        /// Whether the web server keeps the connection after the answer.
        keep: bool,
    },
}

impl Ready {
    /// Whether the web server keeps the connection after this answer.
    pub fn keep(&self) -> bool {
        match self {
            Ready::Request { keep, .. } | Ready::Answered { keep, .. } => *keep,
        }
    }
}

/// One connection's protocol state, without I/O (sans-IO): bytes go in with
/// [`Conn::push`], complete requests come out of [`Conn::advance`], and the
/// bytes to send collect in [`Conn::out`]. A poller thread can assemble
/// requests with it from non-blocking reads and hand only complete ones to a
/// worker, which answers them ([`Conn::answer`]) and gives the connection back.
pub struct Conn {
    /// Bytes received and not decoded yet, from `pos` on.
    buf: Vec<u8>,
    pos: usize,
    active: Option<Active>,
    out: Vec<u8>,
    /// When the request being received started (its first bytes), for the slow-sender limit.
    since: Option<std::time::Instant>,
    /// An abort on a connection the web server did not keep: close once `out` is sent.
    finished: bool,
    /// A request answered before its body ended: its STDIN still to skip.
    skipping: Option<Skip>,
    /// Close once the skipped body has ended, by this deadline ([`Conn::close_when_drained`]).
    closing: Option<std::time::Instant>,
    /// On a kept connection, the answer to a request whose body is being skipped:
    /// yielded once the body has ended (see [`Conn::advance`]).
    held: Option<Ready>,
}

/// The rest of a body being skipped unread: the request id and bytes still allowed.
#[derive(Debug, Clone, Copy)]
struct Skip {
    id: u16,
    left: usize,
}

/// The most body bytes skipped after an early answer before a connection that is
/// to close is closed anyway (a front sends a body it buffered, fast).
pub const DRAIN_MAX: usize = 64 << 20;

impl Default for Conn {
    fn default() -> Self {
        Conn::new()
    }
}

impl Conn {
    /// A connection with nothing received.
    pub fn new() -> Conn {
        Conn {
            buf: Vec::new(),
            pos: 0,
            active: None,
            out: Vec::new(),
            since: None,
            finished: false,
            skipping: None,
            closing: None,
            held: None,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos.min(self.buf.len()));
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        if self.since.is_none() {
            self.since = Some(std::time::Instant::now());
        }
    }

    /// Decodes buffered records until a request is ready to answer (`Some`) or
    /// more bytes are needed (`None`). Management replies, refusals and abort
    /// acknowledgements collect in [`Conn::out`]. `head` is asked what to do
    /// with each request when its PARAMS end.
    ///
    /// # Errors
    /// [`Error`] on a malformed stream or an oversize request; close the connection.
    pub fn advance(&mut self, limits: &Limits, head: &mut dyn FnMut(&Request) -> Head) -> Result<Option<Ready>, Error> {
        let mut ready = None;
        while ready.is_none() && !self.finished {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let (rec, used) = match record::decode(rest)? {
                Decoded::Record(rec, used) => (rec, used),
                Decoded::NeedMore(_) => break,
            };
            if rec.kind == RecordType::BeginRequest && self.held.is_some() {
                // A new request before the held one's body ended (the web server gave up
                // on that body): answer the held request first; the BEGIN is read next time.
                self.skipping = None;
                ready = self.held.take();
                continue;
            }
            self.pos += used;
            log::trace!("fcgi record type={} id={} len={}", rec.kind.as_u8(), rec.request_id, rec.content.len());
            if self.skip(&rec) {
                if self.skipping.is_none() {
                    ready = self.held.take();
                }
                continue;
            }
            ready = match on_record(rec, &mut self.active, limits, &mut self.out)? {
                Step::Continue => None,
                Step::ParamsDone => self.on_head(limits, head)?,
                Step::Ready => match self.active.take() {
                    Some(a) => Some(Ready::Request {
                        req: Request {
                            request_id: a.id,
                            params: checked_pairs(&a.params, limits)?,
                            stdin: a.stdin,
                            stdin_truncated: a.stdin_truncated,
                            params_over_cap: false,
                        },
                        keep: a.keep_conn,
                    }),
                    None => None,
                },
                Step::Aborted { keep_conn } => {
                    self.finished = !keep_conn;
                    None
                }
            };
        }
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.active.is_none() && self.held.is_none() {
                self.since = None;
            }
        }
        Ok(ready)
    }

    /// Whether `rec` is part of a body being skipped (then it is consumed here).
    fn skip(&mut self, rec: &Record) -> bool {
        let Some(skip) = self.skipping.as_mut() else { return false };
        if rec.kind == RecordType::BeginRequest {
            // The web server moved on: whatever it did not send of that body, it never will.
            self.skipping = None;
            return false;
        }
        let active_here = self.active.as_ref().is_some_and(|a| a.id == rec.request_id);
        if rec.kind != RecordType::Stdin || rec.request_id != skip.id || active_here {
            return false;
        }
        if rec.content.is_empty() {
            self.skipping = None;
        } else {
            skip.left = skip.left.saturating_sub(rec.content.len());
            if skip.left == 0 {
                log::debug!("fcgi request id={}: more than {DRAIN_MAX} body bytes after its answer", skip.id);
                self.skipping = None;
                self.finished |= self.closing.is_some();
            }
        }
        true
    }

    /// PARAMS are complete: ask `head` what to do before reading any body.
    fn on_head(&mut self, limits: &Limits, head: &mut dyn FnMut(&Request) -> Head) -> Result<Option<Ready>, Error> {
        let Some(a) = self.active.as_mut() else { return Ok(None) };
        let (params, params_over_cap) = if a.params_over_cap {
            (Vec::new(), true)
        } else {
            match checked_pairs(&a.params, limits) {
                Ok(pairs) => (pairs, false),
                Err(Error::TooManyParams(cap)) => {
                    log::debug!("fcgi request id={}: more than {cap} params", a.id);
                    (Vec::new(), true)
                }
                Err(e) => return Err(e),
            }
        };
        let req = Request { request_id: a.id, params, stdin: Vec::new(), stdin_truncated: false, params_over_cap };
        let keep = a.keep_conn;
        let body_ends_later = !a.stdin_done;
        let id = a.id;
        let ready = match head(&req) {
            Head::Answer(response) => Ready::Answered { id: req.request_id, response, keep },
            // A request whose PARAMS were cut off is never handed to a worker.
            _ if params_over_cap => Ready::Answered { id: req.request_id, response: PARAMS_TOO_LARGE.to_vec(), keep },
            Head::NoBody => Ready::Request { req, keep },
            Head::Body(cap) => {
                a.stdin_cap = cap;
                if !a.stdin_done {
                    return Ok(None);
                }
                // The body came before the end of PARAMS (unusual, but allowed): cut it to this cap.
                a.stdin_truncated |= a.stdin.len() > cap;
                a.stdin.truncate(cap);
                return Ok(self.active.take().map(|a| Ready::Request {
                    req: Request { stdin: a.stdin, stdin_truncated: a.stdin_truncated, ..req },
                    keep,
                }));
            }
        };
        // Answered without its body: the rest of the body is skipped unread. On a kept
        // connection the answer waits until the body has ended (a web server that reuses
        // the connection may not expect an answer while it still writes: h2o 2.2 aborts);
        // on one that closes, the answer goes now and the body is drained before the close.
        self.active = None;
        if !body_ends_later {
            return Ok(Some(ready));
        }
        self.skipping = Some(Skip { id, left: DRAIN_MAX });
        if keep {
            self.held = Some(ready);
            return Ok(None);
        }
        Ok(Some(ready))
    }

    /// Queues `response` to request `id` as STDOUT records, an empty STDOUT and
    /// END_REQUEST(0, REQUEST_COMPLETE).
    pub fn answer(&mut self, id: u16, response: &[u8]) {
        record::encode_stream(&mut self.out, RecordType::Stdout, id, response);
        record::encode_end_request(&mut self.out, id, 0, ProtocolStatus::RequestComplete);
    }

    /// Bytes waiting to be sent; clear them with [`Conn::sent`] once written.
    pub fn out(&self) -> &[u8] {
        &self.out
    }

    /// The bytes of [`Conn::out`] were written.
    pub fn sent(&mut self) {
        self.out.clear();
    }

    /// The first `n` bytes of [`Conn::out`] were written (a write that took part of them).
    pub fn sent_part(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Whether a request has started arriving and is not complete yet (its body
    /// included, when its answer waits for the body to end).
    pub fn is_receiving(&self) -> bool {
        self.since.is_some()
    }

    /// Whether the request being received is over the time allowed to send it,
    /// or a connection to close is still sent a skipped body past its deadline.
    pub fn is_overdue(&self, limits: &Limits) -> bool {
        self.since.is_some_and(|t| t.elapsed() > limits.request_timeout)
            || self.closing.is_some_and(|t| std::time::Instant::now() > t)
    }

    /// The last request was answered and the connection is to close (not kept):
    /// when the web server is still sending that request's body, which it does not
    /// expect to be refused, keep reading (and dropping) it until it ends, up to
    /// [`DRAIN_MAX`] bytes and the request timeout; true when there is such a body
    /// (then close once [`Conn::wants_close`] says so). Closing at once would make
    /// the web server's write fail, and some turn that into a 502 or worse.
    pub fn close_when_drained(&mut self, limits: &Limits) -> bool {
        if self.skipping.is_none() || self.finished {
            return false;
        }
        self.closing = Some(std::time::Instant::now() + limits.request_timeout);
        true
    }

    /// Whether the connection is to close once a skipped body has been read off.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Whether a connection to close has drained the body it was skipping.
    pub fn wants_close(&self) -> bool {
        self.closing.is_some() && (self.skipping.is_none() || self.finished)
    }

    /// Whether the connection must close once [`Conn::out`] is sent (an abort
    /// on a connection the web server did not keep).
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Serves requests on `stream` until the peer closes, a request without
/// FCGI_KEEP_CONN is answered, or `should_stop` returns true between requests.
///
/// `handler` turns a request into a complete CGI response (headers, blank
/// line, body) and is expected not to panic (the caller wraps it). If the
/// stream has a read timeout, `should_stop` is polled at each timeout; a
/// request that has started is always read to its end and answered.
///
/// # Errors
/// [`Error`] on a malformed stream, an oversize request, or an I/O failure
/// other than the peer going away; the caller should close the connection.
pub fn serve<S, H, F>(stream: &mut S, limits: &Limits, mut handler: H, should_stop: F) -> Result<End, Error>
where
    S: Read + Write,
    H: Respond,
    F: Fn() -> bool,
{
    let mut conn = Conn::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        while let Some(ready) = conn.advance(limits, &mut |req| handler.head(req, limits))? {
            let keep = ready.keep();
            match ready {
                Ready::Request { req, .. } => {
                    let response = handler.respond(&req);
                    conn.answer(req.request_id, &response);
                }
                Ready::Answered { id, response, .. } => conn.answer(id, &response),
            }
            if let Some(end) = flush(stream, &mut conn)? {
                return Ok(end);
            }
            if !keep || should_stop() {
                return Ok(End::Closed);
            }
        }
        if let Some(end) = flush(stream, &mut conn)? {
            return Ok(end);
        }
        if conn.is_finished() {
            return Ok(End::Aborted);
        }
        if conn.is_overdue(limits) {
            return Err(Error::RequestTimeout(limits.request_timeout));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(if conn.is_receiving() { End::Aborted } else { End::Closed }),
            Ok(n) => conn.push(chunk.get(..n).unwrap_or_default()),
            Err(e) if is_timeout(&e) => {
                if !conn.is_receiving() && should_stop() {
                    return Ok(End::Stopping);
                }
            }
            Err(e) if is_peer_gone(&e) => return Ok(End::Aborted),
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

/// Whether an I/O error means the peer went away (EOF, reset, broken pipe).
pub fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

fn checked_pairs(params: &[u8], limits: &Limits) -> Result<Vec<record::Pair>, Error> {
    let pairs = record::decode_pairs(params)?;
    if pairs.len() > limits.max_param_count {
        return Err(Error::TooManyParams(limits.max_param_count));
    }
    Ok(pairs)
}

/// Writes what `conn` has to send; `Some(End::Aborted)` when the peer has gone.
///
/// # Errors
/// [`Error::Io`] when writing fails other than by the peer leaving.
pub fn flush<S: Write>(stream: &mut S, conn: &mut Conn) -> Result<Option<End>, Error> {
    if conn.out().is_empty() {
        return Ok(None);
    }
    let result = stream.write_all(conn.out()).and_then(|()| stream.flush());
    conn.sent();
    match result {
        Ok(()) => Ok(None),
        Err(e) if is_peer_gone(&e) => Ok(Some(End::Aborted)),
        Err(e) => Err(Error::Io(e)),
    }
}

enum Step {
    Continue,
    ParamsDone,
    Ready,
    Aborted { keep_conn: bool },
}

fn on_record(rec: Record, active: &mut Option<Active>, limits: &Limits, out: &mut Vec<u8>) -> Result<Step, Error> {
    if rec.request_id == 0 {
        match rec.kind {
            RecordType::GetValues => answer_get_values(&rec.content, limits, out)?,
            other => {
                // §4.2: FCGI_UNKNOWN_TYPE body = {type, 7 reserved bytes}.
                log::debug!("fcgi unknown management record type={}", other.as_u8());
                record::encode(out, RecordType::UnknownType, 0, &[other.as_u8(), 0, 0, 0, 0, 0, 0, 0]);
            }
        }
        return Ok(Step::Continue);
    }
    match rec.kind {
        RecordType::BeginRequest => {
            let begin = BeginRequest::parse(&rec.content)?;
            if active.is_some() {
                log::debug!("fcgi second BEGIN_REQUEST id={} on a busy connection", rec.request_id);
                record::encode_end_request(out, rec.request_id, 0, ProtocolStatus::CantMpxConn);
            } else if begin.role != record::ROLE_RESPONDER {
                log::warn!("fcgi role={} refused: only the responder role is served", begin.role);
                record::encode_end_request(out, rec.request_id, 0, ProtocolStatus::UnknownRole);
            } else {
                *active = Some(Active {
                    id: rec.request_id,
                    keep_conn: begin.keep_conn,
                    params: Vec::new(),
                    params_done: false,
                    params_over_cap: false,
                    stdin_cap: limits.max_stdin,
                    stdin: Vec::new(),
                    stdin_truncated: false,
                    stdin_done: false,
                });
            }
            Ok(Step::Continue)
        }
        kind => {
            // Records for an inactive request id are ignored (§3.3).
            let Some(a) = active.as_mut().filter(|a| a.id == rec.request_id) else {
                return Ok(Step::Continue);
            };
            match kind {
                RecordType::Params if !a.params_done => {
                    if rec.content.is_empty() {
                        a.params_done = true;
                        return Ok(Step::ParamsDone);
                    } else if a.params_over_cap {
                        // Over the cap already: the rest of PARAMS is read and dropped.
                    } else if a.params.len() + rec.content.len() > limits.max_params {
                        log::debug!("fcgi request id={}: params over the {}-byte cap", a.id, limits.max_params);
                        a.params_over_cap = true;
                        a.params = Vec::new();
                    } else {
                        a.params.extend_from_slice(&rec.content);
                    }
                }
                RecordType::Stdin if !a.stdin_done => {
                    if rec.content.is_empty() {
                        a.stdin_done = true;
                    } else {
                        let room = a.stdin_cap.saturating_sub(a.stdin.len());
                        let take = rec.content.len().min(room);
                        a.stdin.extend_from_slice(rec.content.get(..take).unwrap_or_default());
                        a.stdin_truncated |= take < rec.content.len();
                    }
                }
                RecordType::AbortRequest => {
                    let keep_conn = a.keep_conn;
                    log::debug!("fcgi request id={} aborted by the web server", a.id);
                    record::encode_end_request(out, a.id, 0, ProtocolStatus::RequestComplete);
                    *active = None;
                    return Ok(Step::Aborted { keep_conn });
                }
                other => log::debug!("fcgi record type={} ignored", other.as_u8()),
            }
            if a.params_done && a.stdin_done { Ok(Step::Ready) } else { Ok(Step::Continue) }
        }
    }
}

fn answer_get_values(content: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut body = Vec::new();
    let conns = limits.max_conns.to_string();
    let reqs = limits.max_reqs.to_string();
    for (name, _) in record::decode_pairs(content)? {
        let value: Option<&[u8]> = match name.as_slice() {
            b"FCGI_MAX_CONNS" => Some(conns.as_bytes()),
            b"FCGI_MAX_REQS" => Some(reqs.as_bytes()),
            b"FCGI_MPXS_CONNS" => Some(b"0"),
            _ => None, // §4.1: unknown names are omitted from the reply.
        };
        if let Some(v) = value {
            record::encode_pair(&mut body, &name, v);
        }
    }
    record::encode(out, RecordType::GetValuesResult, 0, &body);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fcgi::record::{EndRequest, encode, encode_begin_request, encode_pair};

    /// An in-memory stream: reads from `input`, collects writes.
    /// An in-memory stream for tests: reads `input`, collects writes in `output`.
    pub(crate) struct Mem {
        pub(crate) input: io::Cursor<Vec<u8>>,
        pub(crate) output: Vec<u8>,
    }
    impl Read for Mem {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.input.read(b)
        }
    }
    impl Write for Mem {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    const LIMITS: Limits = Limits {
        max_params: 1024,
        max_stdin: 1024,
        max_conns: 9,
        max_reqs: 7,
        max_param_count: 8,
        request_timeout: std::time::Duration::from_secs(5),
    };

    fn request(buf: &mut Vec<u8>, id: u16, keep: bool, uri: &str) {
        encode_begin_request(buf, id, 1, if keep { 1 } else { 0 });
        let mut p = Vec::new();
        encode_pair(&mut p, b"REQUEST_URI", uri.as_bytes());
        encode(buf, RecordType::Params, id, &p);
        encode(buf, RecordType::Params, id, &[]);
        encode(buf, RecordType::Stdin, id, &[]);
    }

    fn run(input: Vec<u8>) -> (Result<End, Error>, Vec<Record>, usize) {
        let mut s = Mem { input: io::Cursor::new(input), output: Vec::new() };
        let mut calls = 0;
        let r = serve(
            &mut s,
            &LIMITS,
            |req: &Request| {
                calls += 1;
                format!("Status: 200 OK\r\n\r\n{}", req.param("REQUEST_URI").unwrap_or("")).into_bytes()
            },
            || false,
        );
        let mut recs = Vec::new();
        let mut rest = s.output.as_slice();
        while let Ok(Decoded::Record(r, used)) = record::decode(rest) {
            recs.push(r);
            rest = &rest[used..];
        }
        (r, recs, calls)
    }

    #[test]
    fn keep_conn_serves_two_requests() {
        let mut input = Vec::new();
        request(&mut input, 1, true, "/a");
        request(&mut input, 1, true, "/b");
        let (end, recs, calls) = run(input);
        assert_eq!(end.ok(), Some(End::Closed));
        assert_eq!(calls, 2);
        let kinds: Vec<u8> = recs.iter().map(|r| r.kind.as_u8()).collect();
        assert_eq!(kinds, vec![6, 6, 3, 6, 6, 3]);
        assert!(recs[3].content.ends_with(b"/b"));
    }

    #[test]
    fn without_keep_conn_the_connection_closes_after_one() {
        let mut input = Vec::new();
        request(&mut input, 1, false, "/a");
        request(&mut input, 1, false, "/b");
        let (end, _, calls) = run(input);
        assert_eq!(end.ok(), Some(End::Closed));
        assert_eq!(calls, 1);
    }

    #[test]
    fn second_begin_gets_cant_mpx_conn() -> Result<(), record::Error> {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 1);
        encode_begin_request(&mut input, 2, 1, 1);
        let (_, recs, _) = run(input);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].request_id, 2);
        assert_eq!(EndRequest::parse(&recs[0].content)?.protocol_status, 1);
        Ok(())
    }

    #[test]
    fn other_roles_get_unknown_role() -> Result<(), record::Error> {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 2, 0);
        let (_, recs, _) = run(input);
        assert_eq!(EndRequest::parse(&recs[0].content)?.protocol_status, 3);
        Ok(())
    }

    #[test]
    fn get_values_reports_workers_and_no_multiplexing() -> Result<(), record::Error> {
        let mut input = Vec::new();
        let mut body = Vec::new();
        for n in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "NOT_A_NAME"] {
            encode_pair(&mut body, n.as_bytes(), b"");
        }
        encode(&mut input, RecordType::GetValues, 0, &body);
        let (_, recs, _) = run(input);
        assert_eq!(recs[0].kind, RecordType::GetValuesResult);
        let pairs = record::decode_pairs(&recs[0].content)?;
        let expect: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"FCGI_MAX_CONNS".to_vec(), b"9".to_vec()),
            (b"FCGI_MAX_REQS".to_vec(), b"7".to_vec()),
            (b"FCGI_MPXS_CONNS".to_vec(), b"0".to_vec()),
        ];
        assert_eq!(pairs, expect);
        Ok(())
    }

    #[test]
    fn unknown_management_type_is_answered() {
        let mut input = Vec::new();
        encode(&mut input, RecordType::Other(77), 0, b"xyz");
        let (_, recs, _) = run(input);
        assert_eq!(recs[0].kind, RecordType::UnknownType);
        assert_eq!(recs[0].content, vec![77, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn abort_answers_end_request_without_calling_the_handler() -> Result<(), record::Error> {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 1);
        encode(&mut input, RecordType::AbortRequest, 1, &[]);
        request(&mut input, 1, false, "/after");
        let (end, recs, calls) = run(input);
        assert_eq!(end.ok(), Some(End::Closed));
        assert_eq!(calls, 1);
        assert_eq!(recs[0].kind, RecordType::EndRequest);
        assert_eq!(EndRequest::parse(&recs[0].content)?.protocol_status, 0);
        Ok(())
    }

    #[test]
    fn eof_mid_request_is_a_quiet_abort() {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 1);
        let (end, recs, calls) = run(input);
        assert_eq!(end.ok(), Some(End::Aborted));
        assert!(recs.is_empty());
        assert_eq!(calls, 0);
    }

    #[test]
    fn oversize_params_are_answered_431_and_the_connection_goes_on() {
        for too_many in [false, true] {
            let mut input = Vec::new();
            encode_begin_request(&mut input, 1, 1, 1);
            if too_many {
                let mut p = Vec::new();
                for i in 0..9 {
                    encode_pair(&mut p, format!("N{i}").as_bytes(), b"v");
                }
                encode(&mut input, RecordType::Params, 1, &p);
            } else {
                encode(&mut input, RecordType::Params, 1, &[b'a'; 1000]);
                encode(&mut input, RecordType::Params, 1, &[b'a'; 1000]);
            }
            encode(&mut input, RecordType::Params, 1, &[]);
            encode(&mut input, RecordType::Stdin, 1, b"body");
            encode(&mut input, RecordType::Stdin, 1, &[]);
            request(&mut input, 2, false, "/next");
            let (end, recs, calls) = run(input);
            assert_eq!(end.ok(), Some(End::Closed));
            assert_eq!(calls, 1, "only the second request reaches the responder");
            let out: Vec<u8> =
                recs.iter().filter(|r| r.kind == RecordType::Stdout).flat_map(|r| r.content.clone()).collect();
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("Status: 431 "), "{text}");
            assert!(text.ends_with("/next"), "{text}");
        }
    }

    #[test]
    fn bad_version_is_an_error() {
        let (r, _, _) = run(b"GET / HTTP/1.1\r\n\r\n".to_vec());
        assert!(matches!(r, Err(Error::Protocol(record::Error::BadVersion(b'G')))));
    }

    #[test]
    fn stdin_over_the_cap_is_discarded_not_fatal() {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 0);
        encode(&mut input, RecordType::Params, 1, &[]);
        encode(&mut input, RecordType::Stdin, 1, &[b'x'; 1000]);
        encode(&mut input, RecordType::Stdin, 1, &[b'y'; 1000]);
        encode(&mut input, RecordType::Stdin, 1, &[]);
        let mut s = Mem { input: io::Cursor::new(input), output: Vec::new() };
        let mut seen = (0, false);
        let end = serve(
            &mut s,
            &LIMITS,
            |req: &Request| {
                seen = (req.stdin.len(), req.stdin_truncated);
                b"Status: 200 OK\r\n\r\n".to_vec()
            },
            || false,
        );
        assert_eq!(end.ok(), Some(End::Closed));
        assert_eq!(seen, (1024, true));
    }

    #[test]
    fn an_early_answer_skips_the_body_and_the_connection_goes_on() {
        struct Gate<'a>(&'a std::cell::Cell<usize>);
        impl Respond for Gate<'_> {
            fn head(&mut self, req: &Request, limits: &Limits) -> Head {
                if req.param("REQUEST_URI") == Some("/big") {
                    Head::Answer(b"Status: 413 Payload Too Large\r\n\r\n".to_vec())
                } else {
                    Head::Body(limits.max_stdin)
                }
            }
            fn respond(&mut self, req: &Request) -> Vec<u8> {
                self.0.set(self.0.get() + 1);
                format!("Status: 200 OK\r\n\r\n{}", req.stdin.len()).into_bytes()
            }
        }
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 1);
        let mut p = Vec::new();
        encode_pair(&mut p, b"REQUEST_URI", b"/big");
        encode(&mut input, RecordType::Params, 1, &p);
        encode(&mut input, RecordType::Params, 1, &[]);
        encode(&mut input, RecordType::Stdin, 1, &[b'x'; 900]);
        encode(&mut input, RecordType::Stdin, 1, &[]);
        request(&mut input, 1, false, "/small");
        let mut s = Mem { input: io::Cursor::new(input), output: Vec::new() };
        let calls = std::cell::Cell::new(0);
        let end = serve(&mut s, &LIMITS, Gate(&calls), || false);
        assert_eq!(end.ok(), Some(End::Closed));
        assert_eq!(calls.get(), 1, "only the second request reached respond()");
        let text = String::from_utf8_lossy(&s.output).into_owned();
        assert!(text.contains("413") && text.contains("200 OK"));
    }

    #[test]
    fn records_for_other_ids_are_ignored() {
        let mut input = Vec::new();
        encode(&mut input, RecordType::Params, 9, b"junk");
        request(&mut input, 1, false, "/x");
        let (end, _, calls) = run(input);
        assert_eq!(end.ok(), Some(End::Closed));
        assert_eq!(calls, 1);
    }

    /// Feeds `input` to a [`Conn`] one byte at a time, as a slow client would send it.
    fn trickle(input: &[u8], head: &mut dyn FnMut(&Request) -> Head) -> Vec<Ready> {
        let mut conn = Conn::new();
        let mut ready = Vec::new();
        for b in input {
            conn.push(std::slice::from_ref(b));
            while let Ok(Some(r)) = conn.advance(&LIMITS, head) {
                ready.push(r);
            }
        }
        ready
    }

    #[test]
    fn a_conn_yields_a_request_only_once_it_is_complete() {
        let mut input = Vec::new();
        request(&mut input, 1, true, "/a");
        let whole = input.len();
        let mut conn = Conn::new();
        conn.push(&input[..whole - 9]); // all but the last byte of the empty STDIN record's header... and more
        assert!(matches!(conn.advance(&LIMITS, &mut |_| Head::Body(10)), Ok(None)));
        assert!(conn.is_receiving());
        conn.push(&input[whole - 9..]);
        let ready = conn.advance(&LIMITS, &mut |_| Head::Body(10));
        assert!(matches!(ready, Ok(Some(Ready::Request { keep: true, .. }))), "{ready:?}");
        assert!(!conn.is_receiving(), "nothing is left half-received");
        let got = trickle(&input, &mut |_| Head::Body(10));
        assert_eq!(got.len(), 1, "byte by byte, the same single request");
    }

    #[test]
    fn a_route_without_a_body_skips_its_stdin_unread() {
        let head_of = |keep: u8| {
            let mut input = Vec::new();
            encode_begin_request(&mut input, 1, 1, keep);
            let mut p = Vec::new();
            encode_pair(&mut p, b"REQUEST_URI", b"/feed");
            encode(&mut input, RecordType::Params, 1, &p);
            encode(&mut input, RecordType::Params, 1, &[]);
            input
        };
        let mut body = Vec::new();
        encode(&mut body, RecordType::Stdin, 1, &[b'x'; 1000]);
        encode(&mut body, RecordType::Stdin, 1, &[]);
        // Not kept: complete at the end of PARAMS (answered while the body is drained).
        let mut conn = Conn::new();
        conn.push(&head_of(0));
        let first = conn.advance(&LIMITS, &mut |_| Head::NoBody);
        let Ok(Some(Ready::Request { req, keep: false })) = first else { panic!("not ready: {first:?}") };
        assert!(req.stdin.is_empty());
        // Kept: the answer waits for the body's end (read and dropped, never kept), so a
        // web server reusing the connection is not answered while it writes.
        let mut conn = Conn::new();
        conn.push(&head_of(1));
        assert!(matches!(conn.advance(&LIMITS, &mut |_| Head::NoBody), Ok(None)));
        assert!(conn.is_receiving(), "the body is still part of the request");
        conn.push(&body);
        let ready = conn.advance(&LIMITS, &mut |_| Head::NoBody);
        let Ok(Some(Ready::Request { req, keep: true })) = ready else { panic!("{ready:?}") };
        assert!(req.stdin.is_empty(), "the body was not buffered");
        let mut next = Vec::new();
        request(&mut next, 1, true, "/next");
        conn.push(&next);
        let next = conn.advance(&LIMITS, &mut |_| Head::NoBody);
        let Ok(Some(Ready::Request { req, .. })) = next else { panic!("{next:?}") };
        assert_eq!(req.param("REQUEST_URI"), Some("/next"));
    }

    #[test]
    fn the_head_sets_the_body_cap_per_request() {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 1);
        encode(&mut input, RecordType::Params, 1, &[]);
        encode(&mut input, RecordType::Stdin, 1, &[b'x'; 100]);
        encode(&mut input, RecordType::Stdin, 1, &[]);
        let got = trickle(&input, &mut |_| Head::Body(40));
        let [Ready::Request { req, .. }] = got.as_slice() else { panic!("{got:?}") };
        assert_eq!((req.stdin.len(), req.stdin_truncated), (40, true));
    }

    #[test]
    fn a_request_not_complete_in_time_is_overdue() {
        let limits = Limits { request_timeout: std::time::Duration::from_millis(30), ..LIMITS };
        let mut conn = Conn::new();
        conn.push(&[1, 1, 0]);
        assert!(matches!(conn.advance(&limits, &mut |_| Head::NoBody), Ok(None)));
        assert!(!conn.is_overdue(&limits));
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert!(conn.is_overdue(&limits));
    }

    #[test]
    fn a_connection_to_close_drains_the_body_of_an_early_answer_first() {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 0); // not kept
        encode(&mut input, RecordType::Params, 1, &[]);
        let mut conn = Conn::new();
        conn.push(&input);
        let first = conn.advance(&LIMITS, &mut |_| Head::Answer(b"Status: 401\r\n\r\n".to_vec()));
        assert!(matches!(first, Ok(Some(Ready::Answered { keep: false, .. }))), "{first:?}");
        assert!(conn.close_when_drained(&LIMITS), "the body is still coming: keep reading");
        assert!(!conn.wants_close());
        let mut body = Vec::new();
        encode(&mut body, RecordType::Stdin, 1, &[b'x'; 60_000]);
        conn.push(&body);
        assert!(matches!(conn.advance(&LIMITS, &mut |_| Head::NoBody), Ok(None)));
        assert!(!conn.wants_close(), "not before the body ended");
        let mut end = Vec::new();
        encode(&mut end, RecordType::Stdin, 1, &[]);
        conn.push(&end);
        assert!(matches!(conn.advance(&LIMITS, &mut |_| Head::NoBody), Ok(None)));
        assert!(conn.wants_close(), "drained: close now");
        // A request whose body had ended needs no draining.
        let mut whole = Vec::new();
        request(&mut whole, 1, false, "/a");
        let mut conn = Conn::new();
        conn.push(&whole);
        assert!(matches!(conn.advance(&LIMITS, &mut |_| Head::NoBody), Ok(Some(_))));
        let _ = conn.advance(&LIMITS, &mut |_| Head::NoBody);
        assert!(!conn.close_when_drained(&LIMITS));
    }

    #[test]
    fn draining_is_bounded_by_time() {
        let limits = Limits { request_timeout: std::time::Duration::from_millis(20), ..LIMITS };
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 0);
        encode(&mut input, RecordType::Params, 1, &[]);
        let mut conn = Conn::new();
        conn.push(&input);
        assert!(matches!(conn.advance(&limits, &mut |_| Head::NoBody), Ok(Some(_))));
        assert!(conn.close_when_drained(&limits));
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(conn.is_overdue(&limits), "a body that never ends is cut off");
    }

    #[test]
    fn a_held_answer_is_not_lost_when_the_next_request_begins_before_its_body_ended() {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 1);
        encode(&mut input, RecordType::Params, 1, &[]);
        encode(&mut input, RecordType::Stdin, 1, &[b'x'; 10]);
        request(&mut input, 1, true, "/next");
        let mut conn = Conn::new();
        conn.push(&input);
        let first = conn.advance(&LIMITS, &mut |_| Head::NoBody);
        let Ok(Some(Ready::Request { req, .. })) = first else { panic!("{first:?}") };
        assert_eq!(req.param("REQUEST_URI"), None, "the held request (no params) is answered first");
        let next = conn.advance(&LIMITS, &mut |_| Head::NoBody);
        let Ok(Some(Ready::Request { req, .. })) = next else { panic!("{next:?}") };
        assert_eq!(req.param("REQUEST_URI"), Some("/next"));
        assert!(!conn.is_receiving());
    }
}
