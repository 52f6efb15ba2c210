//! A minimal FastCGI client: one responder request out, its STDOUT and END_REQUEST back.
//!
//! Used by `videofeed get` (the operator's health check without a web server)
//! and by the test suite. It speaks to any `Read + Write` stream and handles
//! one request at a time; it is not a load generator and does not multiplex.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::io::{self, Read, Write};

use super::record::{self, Decoded, EndRequest, RecordType};

/// What the application sent back for one request.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The concatenated STDOUT stream: CGI headers, a blank line, the body.
    pub stdout: Vec<u8>,
    /// The concatenated STDERR stream.
    pub stderr: Vec<u8>,
    /// END_REQUEST `appStatus`.
    pub app_status: u32,
    /// END_REQUEST `protocolStatus` byte.
    pub protocol_status: u8,
}

impl Response {
    /// The CGI `Status:` code, 200 when the header is absent (CGI/1.1 §6.3.3).
    pub fn status(&self) -> u16 {
        self.header("Status").and_then(|v| v.split_whitespace().next().and_then(|c| c.parse().ok())).unwrap_or(200)
    }

    /// The first value of a response header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// All header lines before the blank line.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        let text = std::str::from_utf8(self.head_bytes()).unwrap_or("");
        text.split("\r\n").filter_map(|line| line.split_once(':')).map(|(n, v)| (n.trim(), v.trim())).collect()
    }

    /// The bytes after the blank line that ends the headers.
    pub fn body(&self) -> &[u8] {
        match find_blank_line(&self.stdout) {
            Some(at) => self.stdout.get(at + 4..).unwrap_or_default(),
            None => &[],
        }
    }

    fn head_bytes(&self) -> &[u8] {
        match find_blank_line(&self.stdout) {
            Some(at) => self.stdout.get(..at).unwrap_or_default(),
            None => &self.stdout,
        }
    }
}

fn find_blank_line(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Encodes a whole request: BEGIN_REQUEST, PARAMS, empty PARAMS, STDIN, empty STDIN.
pub fn encode_request(request_id: u16, keep_conn: bool, params: &[(&str, &str)], stdin: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let flags = if keep_conn { record::KEEP_CONN } else { 0 };
    record::encode_begin_request(&mut out, request_id, record::ROLE_RESPONDER, flags);
    let mut body = Vec::new();
    for (n, v) in params {
        record::encode_pair(&mut body, n.as_bytes(), v.as_bytes());
    }
    if !body.is_empty() {
        record::encode(&mut out, RecordType::Params, request_id, &body);
    }
    record::encode(&mut out, RecordType::Params, request_id, &[]);
    record::encode_stream(&mut out, RecordType::Stdin, request_id, stdin);
    out
}

/// The CGI parameters a web server sends for `GET <uri>` (method, URI, query string).
pub fn get_params(method: &str, uri: &str) -> Vec<(String, String)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("REQUEST_METHOD".into(), method.into()),
        ("REQUEST_URI".into(), uri.into()),
        ("SCRIPT_NAME".into(), path.into()),
        ("QUERY_STRING".into(), query.into()),
        ("SERVER_NAME".into(), "localhost".into()),
        ("REMOTE_ADDR".into(), "127.0.0.1".into()),
    ]
}

/// Sends one request and reads its response.
///
/// # Errors
/// I/O errors from the stream, `UnexpectedEof` when the application closes
/// before END_REQUEST, `InvalidData` when its answer is not FastCGI.
pub fn request<S: Read + Write>(
    stream: &mut S,
    request_id: u16,
    keep_conn: bool,
    params: &[(&str, &str)],
    stdin: &[u8],
) -> io::Result<Response> {
    stream.write_all(&encode_request(request_id, keep_conn, params, stdin))?;
    stream.flush()?;
    read_response(stream, request_id)
}

/// Reads records until END_REQUEST for `request_id`; management records are skipped.
///
/// # Errors
/// As for [`request`].
pub fn read_response<S: Read>(stream: &mut S, request_id: u16) -> io::Result<Response> {
    let mut resp = Response::default();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        loop {
            let decoded = record::decode(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let Decoded::Record(rec, used) = decoded else { break };
            buf.drain(..used.min(buf.len()));
            if rec.request_id != request_id {
                continue;
            }
            match rec.kind {
                RecordType::Stdout => resp.stdout.extend_from_slice(&rec.content),
                RecordType::Stderr => resp.stderr.extend_from_slice(&rec.content),
                RecordType::EndRequest => {
                    let end =
                        EndRequest::parse(&rec.content).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    resp.app_status = end.app_status;
                    resp.protocol_status = end.protocol_status;
                    return Ok(resp);
                }
                _ => {}
            }
        }
        let n = match stream.read(&mut chunk) {
            // A stop and continue (SIGSTOP/SIGCONT, job control) ends a read with a timeout in EINTR.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the application closed the connection before END_REQUEST",
            ));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
