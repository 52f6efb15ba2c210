//! One FastCGI connection over any `Read + Write` stream, serving requests one at a time.
//! (One state machine with its table-driven tests, kept whole: longer than most files.)
//!
//! [`serve`] reads records, assembles a responder request (BEGIN_REQUEST,
//! PARAMS to their empty end, STDIN to its empty end), calls the handler,
//! writes its CGI response as STDOUT records followed by an empty STDOUT and
//! END_REQUEST(appStatus 0, REQUEST_COMPLETE), and then either waits for the
//! next request (`FCGI_KEEP_CONN` set: the web server owns the connection's
//! lifetime, §3.5) or returns so the caller closes it.
//!
//! Also answered here, at library level: FCGI_GET_VALUES (§4.1) with the real
//! worker count and `FCGI_MPXS_CONNS=0`; unknown management types with
//! FCGI_UNKNOWN_TYPE (§4.2); a BEGIN_REQUEST on a busy connection with
//! FCGI_CANT_MPX_CONN (§5.5); a role other than responder with
//! FCGI_UNKNOWN_ROLE; FCGI_ABORT_REQUEST (§5.4) and EOF mid-request as a quiet
//! abort. Out of scope: sockets, threads, routing, the database.
//!
//! Bounds: the read buffer never holds more than one record plus one read
//! chunk; PARAMS and STDIN are capped by [`Limits`]. A stream that breaks the
//! protocol ends with [`Error`], and the caller closes only that connection.
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
}

impl Request {
    /// The value of a CGI parameter, if present and UTF-8 (the last one wins when repeated).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// What answers requests on a connection.
///
/// Any `FnMut(&Request) -> Vec<u8>` is one (it answers after the whole body).
pub trait Respond {
    /// Called when PARAMS are complete, before any of the body is buffered: an
    /// answer here (say, 413 for a declared body over the cap, or 401) ends the
    /// request at once; the rest of its STDIN is then ignored (§3.3: its id is
    /// no longer active). `req.stdin` is empty here.
    fn early(&mut self, _req: &Request) -> Option<Vec<u8>> {
        None
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
    /// With [`serve_one`]: a kept-alive request was answered and nothing more is
    /// buffered; the connection stays open, waiting for the web server's next request.
    Idle,
}

/// Why a connection was closed on a protocol or I/O error.
#[derive(Debug)]
pub enum Error {
    /// The bytes are not FastCGI: bad version or a malformed body.
    Protocol(record::Error),
    /// PARAMS of one request exceeded [`Limits::max_params`].
    ParamsTooLarge(usize),
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
            Error::ParamsTooLarge(cap) => write!(f, "fastcgi params exceed the {cap}-byte cap"),
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

/// Bytes asked of the stream per read.
const READ_CHUNK: usize = 16 * 1024;

/// The request being assembled on this connection.
struct Active {
    id: u16,
    keep_conn: bool,
    params: Vec<u8>,
    params_done: bool,
    stdin: Vec<u8>,
    stdin_truncated: bool,
    stdin_done: bool,
}

fn is_peer_gone(e: &io::Error) -> bool {
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
pub fn serve<S, H, F>(stream: &mut S, limits: &Limits, handler: H, should_stop: F) -> Result<End, Error>
where
    S: Read + Write,
    H: Respond,
    F: Fn() -> bool,
{
    run(stream, limits, handler, should_stop, false)
}

/// Like [`serve`], but returns [`End::Idle`] after answering one kept-alive
/// request when no further bytes are buffered, so the caller can park the
/// connection (in a poller) instead of holding a thread on it.
///
/// # Errors
/// As for [`serve`].
pub fn serve_one<S, H, F>(stream: &mut S, limits: &Limits, handler: H, should_stop: F) -> Result<End, Error>
where
    S: Read + Write,
    H: Respond,
    F: Fn() -> bool,
{
    run(stream, limits, handler, should_stop, true)
}

fn run<S, H, F>(stream: &mut S, limits: &Limits, mut handler: H, should_stop: F, one: bool) -> Result<End, Error>
where
    S: Read + Write,
    H: Respond,
    F: Fn() -> bool,
{
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut active: Option<Active> = None;
    let mut out: Vec<u8> = Vec::new();
    // When the request being received started (its first bytes), for the slow-sender limit.
    let mut receiving_since: Option<std::time::Instant> = None;
    loop {
        // Decode every complete record already buffered.
        let mut used_total = 0;
        loop {
            let rest = buf.get(used_total..).unwrap_or_default();
            let (rec, used) = match record::decode(rest)? {
                Decoded::Record(rec, used) => (rec, used),
                Decoded::NeedMore(_) => break,
            };
            used_total += used;
            log::trace!("fcgi record type={} id={} len={}", rec.kind.as_u8(), rec.request_id, rec.content.len());
            match on_record(rec, &mut active, limits, &mut out)? {
                Step::Continue => {}
                Step::ParamsDone => {
                    let Some(a) = active.as_mut() else { continue };
                    let req = Request {
                        request_id: a.id,
                        params: checked_pairs(&a.params, limits)?,
                        stdin: Vec::new(),
                        stdin_truncated: false,
                    };
                    let keep = a.keep_conn;
                    if let Some(response) = handler.early(&req) {
                        active = None;
                        if let Some(end) = answer(stream, &mut out, req.request_id, &response, keep, &should_stop)? {
                            return Ok(end);
                        }
                    }
                }
                Step::Ready => {
                    let Some(a) = active.take() else { continue };
                    let keep = a.keep_conn;
                    let req = Request {
                        request_id: a.id,
                        params: checked_pairs(&a.params, limits)?,
                        stdin: a.stdin,
                        stdin_truncated: a.stdin_truncated,
                    };
                    let response = handler.respond(&req);
                    if let Some(end) = answer(stream, &mut out, req.request_id, &response, keep, &should_stop)? {
                        return Ok(end);
                    }
                    if one && used_total >= buf.len() {
                        return Ok(End::Idle);
                    }
                }
                Step::Aborted { keep_conn } => {
                    if let Some(end) = flush(stream, &mut out)? {
                        return Ok(end);
                    }
                    if !keep_conn {
                        return Ok(End::Aborted);
                    }
                }
            }
        }
        buf.drain(..used_total.min(buf.len()));
        if let Some(end) = flush(stream, &mut out)? {
            return Ok(end);
        }

        if active.is_none() && buf.is_empty() {
            receiving_since = None;
        } else if let Some(since) = receiving_since {
            if since.elapsed() > limits.request_timeout {
                return Err(Error::RequestTimeout(limits.request_timeout));
            }
        } else {
            receiving_since = Some(std::time::Instant::now());
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Ok(if active.is_none() && buf.is_empty() { End::Closed } else { End::Aborted });
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if is_timeout(&e) => {
                if active.is_none() && buf.is_empty() && should_stop() {
                    return Ok(End::Stopping);
                }
            }
            Err(e) if is_peer_gone(&e) => return Ok(End::Aborted),
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

/// Sends `response` as STDOUT records, an empty STDOUT and END_REQUEST(0, REQUEST_COMPLETE);
/// `Some(end)` when the connection is finished (peer gone, not kept, or stopping).
fn answer<S: Write>(
    stream: &mut S,
    out: &mut Vec<u8>,
    request_id: u16,
    response: &[u8],
    keep: bool,
    should_stop: &dyn Fn() -> bool,
) -> Result<Option<End>, Error> {
    record::encode_stream(out, RecordType::Stdout, request_id, response);
    record::encode_end_request(out, request_id, 0, ProtocolStatus::RequestComplete);
    if let Some(end) = flush(stream, out)? {
        return Ok(Some(end));
    }
    Ok((!keep || should_stop()).then_some(End::Closed))
}

fn checked_pairs(params: &[u8], limits: &Limits) -> Result<Vec<record::Pair>, Error> {
    let pairs = record::decode_pairs(params)?;
    if pairs.len() > limits.max_param_count {
        return Err(Error::TooManyParams(limits.max_param_count));
    }
    Ok(pairs)
}

/// Writes and clears `out`; `Some(End::Aborted)` when the peer has gone.
fn flush<S: Write>(stream: &mut S, out: &mut Vec<u8>) -> Result<Option<End>, Error> {
    if out.is_empty() {
        return Ok(None);
    }
    let result = stream.write_all(out).and_then(|()| stream.flush());
    out.clear();
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
                        if !a.stdin_done {
                            return Ok(Step::ParamsDone);
                        }
                    } else if a.params.len() + rec.content.len() > limits.max_params {
                        return Err(Error::ParamsTooLarge(limits.max_params));
                    } else {
                        a.params.extend_from_slice(&rec.content);
                    }
                }
                RecordType::Stdin if !a.stdin_done => {
                    if rec.content.is_empty() {
                        a.stdin_done = true;
                    } else {
                        let room = limits.max_stdin.saturating_sub(a.stdin.len());
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
    fn oversize_params_and_bad_version_are_errors() {
        let mut input = Vec::new();
        encode_begin_request(&mut input, 1, 1, 1);
        encode(&mut input, RecordType::Params, 1, &[b'a'; 1025]);
        assert!(matches!(run(input).0, Err(Error::ParamsTooLarge(1024))));
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
            fn early(&mut self, req: &Request) -> Option<Vec<u8>> {
                (req.param("REQUEST_URI") == Some("/big")).then(|| b"Status: 413 Payload Too Large\r\n\r\n".to_vec())
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
}
