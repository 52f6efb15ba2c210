//! Sans-IO FastCGI 1.0 record codec: headers, records and name-value pairs.
//!
//! This module touches no socket and no database. It turns bytes into
//! [`Record`]s ([`decode`]) and records into bytes ([`encode`]), and encodes
//! and decodes the name-value pair bodies of PARAMS and GET_VALUES records.
//!
//! Invariants (FastCGI Specification 1.0, §3.3): a record's content is at
//! most 65535 bytes and its padding at most 255 bytes; padding is skipped on
//! input and added on output so that every record ends on an 8-byte boundary.
//! A short buffer is never an error: [`decode`] answers [`Decoded::NeedMore`].
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;

/// Protocol version 1, the only one defined (§3.3, `FCGI_VERSION_1`).
pub const VERSION_1: u8 = 1;
/// Size of a record header in bytes (§3.3, `FCGI_HEADER_LEN`).
pub const HEADER_LEN: usize = 8;
/// Largest content a single record can carry (§3.3, `contentLength` is 16 bits).
pub const MAX_CONTENT: usize = 65535;
/// `FCGI_KEEP_CONN` flag of a BEGIN_REQUEST body (§5.1).
pub const KEEP_CONN: u8 = 1;
/// Role `FCGI_RESPONDER` (§5.1, §6.2).
pub const ROLE_RESPONDER: u16 = 1;

/// Record types (§8, `FCGI_BEGIN_REQUEST` … `FCGI_UNKNOWN_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST` (1), §5.1.
    BeginRequest,
    /// `FCGI_ABORT_REQUEST` (2), §5.4.
    AbortRequest,
    /// `FCGI_END_REQUEST` (3), §5.5.
    EndRequest,
    /// `FCGI_PARAMS` (4), §5.2.
    Params,
    /// `FCGI_STDIN` (5), §5.3.
    Stdin,
    /// `FCGI_STDOUT` (6), §5.3.
    Stdout,
    /// `FCGI_STDERR` (7), §5.3.
    Stderr,
    /// `FCGI_DATA` (8), §5.3.
    Data,
    /// `FCGI_GET_VALUES` (9), §4.1.
    GetValues,
    /// `FCGI_GET_VALUES_RESULT` (10), §4.1.
    GetValuesResult,
    /// `FCGI_UNKNOWN_TYPE` (11), §4.2.
    UnknownType,
    /// Any other type byte; answered with `FCGI_UNKNOWN_TYPE` when it is a management record.
    Other(u8),
}

impl RecordType {
    /// The type for a wire byte.
    pub fn from_u8(b: u8) -> RecordType {
        match b {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            other => RecordType::Other(other),
        }
    }

    /// The wire byte of this type.
    pub fn as_u8(self) -> u8 {
        match self {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Other(b) => b,
        }
    }
}

/// `protocolStatus` of an END_REQUEST body (§5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE` (0): normal end of request.
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN` (1): a second request on a connection that serves one at a time.
    CantMpxConn,
    /// `FCGI_OVERLOADED` (2): the application is out of a resource.
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE` (3): a role this application does not play.
    UnknownRole,
}

impl ProtocolStatus {
    /// The wire byte of this status.
    pub fn as_u8(self) -> u8 {
        match self {
            ProtocolStatus::RequestComplete => 0,
            ProtocolStatus::CantMpxConn => 1,
            ProtocolStatus::Overloaded => 2,
            ProtocolStatus::UnknownRole => 3,
        }
    }

    /// The status for a wire byte, if it is one of the four defined.
    pub fn from_u8(b: u8) -> Option<ProtocolStatus> {
        match b {
            0 => Some(ProtocolStatus::RequestComplete),
            1 => Some(ProtocolStatus::CantMpxConn),
            2 => Some(ProtocolStatus::Overloaded),
            3 => Some(ProtocolStatus::UnknownRole),
            _ => None,
        }
    }
}

/// One decoded record: its type, request id and content (padding removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record type.
    pub kind: RecordType,
    /// `requestId`; 0 for management records (§3.3).
    pub request_id: u16,
    /// The content bytes, without padding.
    pub content: Vec<u8>,
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole record, and how many bytes of the buffer it used (header, content and padding).
    Record(Record, usize),
    /// The buffer holds only part of a record; at least this many more bytes are needed.
    NeedMore(usize),
}

/// Why bytes are not a FastCGI record or a valid record body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The header's version byte is not 1.
    BadVersion(u8),
    /// A name-value pair's length runs past the end of the body.
    TruncatedPair,
    /// A BEGIN_REQUEST or END_REQUEST body is not 8 bytes long.
    BadBodyLength {
        /// The record type whose body was wrong.
        kind: u8,
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadVersion(v) => write!(f, "fastcgi record has version {v}, expected 1"),
            Error::TruncatedPair => write!(f, "fastcgi name-value pair runs past the end of its record"),
            Error::BadBodyLength { kind, len } => {
                write!(f, "fastcgi record type {kind} has a {len}-byte body, expected 8")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Decodes the record at the start of `buf`.
///
/// # Errors
/// [`Error::BadVersion`] when the first byte is not 1: the stream is not
/// FastCGI (or lost its framing) and the connection should be closed.
pub fn decode(buf: &[u8]) -> Result<Decoded, Error> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(Decoded::NeedMore(HEADER_LEN - buf.len()));
    };
    let [version, kind, id_hi, id_lo, len_hi, len_lo, padding, _reserved] = *header else {
        return Ok(Decoded::NeedMore(HEADER_LEN));
    };
    if version != VERSION_1 {
        return Err(Error::BadVersion(version));
    }
    let content_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let total = HEADER_LEN + content_len + usize::from(padding);
    if buf.len() < total {
        return Ok(Decoded::NeedMore(total - buf.len()));
    }
    let content = buf.get(HEADER_LEN..HEADER_LEN + content_len).map(<[u8]>::to_vec).unwrap_or_default();
    Ok(Decoded::Record(
        Record { kind: RecordType::from_u8(kind), request_id: u16::from_be_bytes([id_hi, id_lo]), content },
        total,
    ))
}

/// Whether `bytes` is a sequence of whole, well-formed records and nothing else.
pub fn is_record_stream(mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match decode(bytes) {
            Ok(Decoded::Record(_, used)) => bytes = bytes.get(used..).unwrap_or_default(),
            _ => return false,
        }
    }
    true
}

/// Appends one record to `out`, padded to a multiple of 8 bytes.
///
/// `content` longer than [`MAX_CONTENT`] is split over several records of the
/// same type, so any length is safe to pass; an empty `content` writes one
/// empty record (the end-of-stream marker of §3.3).
pub fn encode(out: &mut Vec<u8>, kind: RecordType, request_id: u16, content: &[u8]) {
    let mut chunks = content.chunks(MAX_CONTENT).peekable();
    if chunks.peek().is_none() {
        encode_one(out, kind, request_id, &[]);
    }
    for chunk in chunks {
        encode_one(out, kind, request_id, chunk);
    }
}

fn encode_one(out: &mut Vec<u8>, kind: RecordType, request_id: u16, chunk: &[u8]) {
    let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
    let padding = (8 - (chunk.len() % 8)) % 8;
    let padding_u8 = u8::try_from(padding).unwrap_or(0);
    let [id_hi, id_lo] = request_id.to_be_bytes();
    let [len_hi, len_lo] = len.to_be_bytes();
    out.extend_from_slice(&[VERSION_1, kind.as_u8(), id_hi, id_lo, len_hi, len_lo, padding_u8, 0]);
    out.extend_from_slice(chunk);
    out.extend(std::iter::repeat_n(0u8, padding));
}

/// Appends a STDOUT stream: `body` split into records, then the empty closing record.
pub fn encode_stream(out: &mut Vec<u8>, kind: RecordType, request_id: u16, body: &[u8]) {
    if !body.is_empty() {
        encode(out, kind, request_id, body);
    }
    encode(out, kind, request_id, &[]);
}

/// Appends an END_REQUEST record (§5.5).
pub fn encode_end_request(out: &mut Vec<u8>, request_id: u16, app_status: u32, status: ProtocolStatus) {
    let [a, b, c, d] = app_status.to_be_bytes();
    encode(out, RecordType::EndRequest, request_id, &[a, b, c, d, status.as_u8(), 0, 0, 0]);
}

/// Appends a BEGIN_REQUEST record (§5.1).
pub fn encode_begin_request(out: &mut Vec<u8>, request_id: u16, role: u16, flags: u8) {
    let [r_hi, r_lo] = role.to_be_bytes();
    encode(out, RecordType::BeginRequest, request_id, &[r_hi, r_lo, flags, 0, 0, 0, 0, 0]);
}

/// A decoded BEGIN_REQUEST body (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    /// The role: 1 responder, 2 authorizer, 3 filter.
    pub role: u16,
    /// Whether `FCGI_KEEP_CONN` is set: the server owns the connection's lifetime.
    pub keep_conn: bool,
}

impl BeginRequest {
    /// Parses a BEGIN_REQUEST body.
    ///
    /// # Errors
    /// [`Error::BadBodyLength`] unless the body is 8 bytes.
    pub fn parse(content: &[u8]) -> Result<BeginRequest, Error> {
        match *content {
            [r_hi, r_lo, flags, _, _, _, _, _] => {
                Ok(BeginRequest { role: u16::from_be_bytes([r_hi, r_lo]), keep_conn: flags & KEEP_CONN != 0 })
            }
            _ => Err(Error::BadBodyLength { kind: 1, len: content.len() }),
        }
    }
}

/// A decoded END_REQUEST body (§5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequest {
    /// `appStatus`, the CGI exit status.
    pub app_status: u32,
    /// `protocolStatus` as its wire byte.
    pub protocol_status: u8,
}

impl EndRequest {
    /// Parses an END_REQUEST body.
    ///
    /// # Errors
    /// [`Error::BadBodyLength`] unless the body is 8 bytes.
    pub fn parse(content: &[u8]) -> Result<EndRequest, Error> {
        match *content {
            [a, b, c, d, status, _, _, _] => {
                Ok(EndRequest { app_status: u32::from_be_bytes([a, b, c, d]), protocol_status: status })
            }
            _ => Err(Error::BadBodyLength { kind: 3, len: content.len() }),
        }
    }
}

/// Appends one name-value pair in the §3.4 encoding (1-byte lengths up to 127, else 4 bytes).
pub fn encode_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    encode_len(out, name.len());
    encode_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

fn encode_len(out: &mut Vec<u8>, len: usize) {
    match u8::try_from(len) {
        Ok(b) if b < 0x80 => out.push(b),
        _ => {
            let capped = u32::try_from(len).unwrap_or(0x7fff_ffff) & 0x7fff_ffff;
            out.extend_from_slice(&(capped | 0x8000_0000).to_be_bytes());
        }
    }
}

/// One name-value pair (§3.4), as raw bytes.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Decodes a whole name-value pair body (§3.4) into owned pairs.
///
/// # Errors
/// [`Error::TruncatedPair`] when a length runs past the end of `body`.
pub fn decode_pairs(body: &[u8]) -> Result<Vec<Pair>, Error> {
    let mut pairs = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name_len, r) = decode_len(rest)?;
        let (value_len, r) = decode_len(r)?;
        let end_name = name_len;
        let end_value = name_len.checked_add(value_len).ok_or(Error::TruncatedPair)?;
        let name = r.get(..end_name).ok_or(Error::TruncatedPair)?;
        let value = r.get(end_name..end_value).ok_or(Error::TruncatedPair)?;
        pairs.push((name.to_vec(), value.to_vec()));
        rest = r.get(end_value..).ok_or(Error::TruncatedPair)?;
    }
    Ok(pairs)
}

fn decode_len(buf: &[u8]) -> Result<(usize, &[u8]), Error> {
    match *buf {
        [b, ref rest @ ..] if b < 0x80 => Ok((usize::from(b), rest)),
        [b0, b1, b2, b3, ref rest @ ..] => {
            let n = u32::from_be_bytes([b0 & 0x7f, b1, b2, b3]);
            let n = usize::try_from(n).map_err(|_| Error::TruncatedPair)?;
            Ok((n, rest))
        }
        _ => Err(Error::TruncatedPair),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut buf: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        while let Ok(Decoded::Record(r, used)) = decode(buf) {
            out.push(r);
            buf = &buf[used..];
        }
        assert!(buf.is_empty(), "trailing bytes: {}", buf.len());
        out
    }

    #[test]
    fn record_round_trip_is_padded_to_8() {
        for len in [0usize, 1, 7, 8, 9, 100, 65535] {
            let content: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let mut buf = Vec::new();
            encode(&mut buf, RecordType::Stdout, 7, &content);
            assert_eq!(buf.len() % 8, 0, "len {len}");
            let recs = decode_all(&buf);
            assert_eq!(recs, vec![Record { kind: RecordType::Stdout, request_id: 7, content }]);
        }
    }

    #[test]
    fn content_over_65535_is_split() {
        let content = vec![b'x'; 65535 * 2 + 10];
        let mut buf = Vec::new();
        encode_stream(&mut buf, RecordType::Stdout, 1, &content);
        let recs = decode_all(&buf);
        let lens: Vec<usize> = recs.iter().map(|r| r.content.len()).collect();
        assert_eq!(lens, vec![65535, 65535, 10, 0]);
    }

    #[test]
    fn every_short_prefix_needs_more() {
        let mut buf = Vec::new();
        encode(&mut buf, RecordType::Params, 1, b"abcdefghij");
        for cut in 0..buf.len() {
            match decode(&buf[..cut]) {
                Ok(Decoded::NeedMore(n)) => assert!(n > 0 && n <= buf.len() - cut.min(buf.len())),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_version_is_invalid() {
        for v in [0u8, 2, 0x47, 255] {
            let buf = [v, 1, 0, 1, 0, 0, 0, 0];
            assert_eq!(decode(&buf), Err(Error::BadVersion(v)));
        }
    }

    #[test]
    fn padding_is_skipped_even_when_not_needed() {
        // content 1 byte, padding 255: a legal but odd record.
        let mut buf = vec![1, 5, 0, 3, 0, 1, 255, 0, b'z'];
        buf.extend(std::iter::repeat_n(9u8, 255));
        buf.extend_from_slice(&[1, 5, 0, 3, 0, 0, 0, 0]);
        let recs = decode_all(&buf);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].content, b"z");
        assert!(recs[1].content.is_empty());
    }

    #[test]
    fn unknown_type_byte_is_kept() {
        let buf = [1, 42, 0, 0, 0, 0, 0, 0];
        match decode(&buf) {
            Ok(Decoded::Record(r, 8)) => assert_eq!(r.kind, RecordType::Other(42)),
            other => panic!("{other:?}"),
        }
        for b in 0..=255u8 {
            assert_eq!(RecordType::from_u8(b).as_u8(), b);
        }
    }

    #[test]
    fn pairs_round_trip_short_and_long() -> Result<(), Error> {
        let long = vec![b'v'; 300];
        let mut body = Vec::new();
        encode_pair(&mut body, b"REQUEST_METHOD", b"GET");
        encode_pair(&mut body, b"EMPTY", b"");
        encode_pair(&mut body, &long, &long);
        let pairs = decode_pairs(&body)?;
        assert_eq!(pairs[0], (b"REQUEST_METHOD".to_vec(), b"GET".to_vec()));
        assert_eq!(pairs[1], (b"EMPTY".to_vec(), Vec::new()));
        assert_eq!(pairs[2], (long.clone(), long));
        Ok(())
    }

    #[test]
    fn truncated_pairs_are_errors() {
        let mut body = Vec::new();
        encode_pair(&mut body, b"NAME", b"value");
        for cut in 1..body.len() {
            assert_eq!(decode_pairs(&body[..cut]), Err(Error::TruncatedPair), "cut {cut}");
        }
        // A 4-byte length claiming 2 GiB.
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff, 0]), Err(Error::TruncatedPair));
    }

    #[test]
    fn begin_and_end_bodies() -> Result<(), Error> {
        let mut buf = Vec::new();
        encode_begin_request(&mut buf, 1, ROLE_RESPONDER, KEEP_CONN);
        encode_end_request(&mut buf, 1, 0x01020304, ProtocolStatus::CantMpxConn);
        let recs = decode_all(&buf);
        let b = BeginRequest::parse(&recs[0].content)?;
        assert_eq!(b, BeginRequest { role: 1, keep_conn: true });
        let e = EndRequest::parse(&recs[1].content)?;
        assert_eq!(e, EndRequest { app_status: 0x01020304, protocol_status: 1 });
        assert!(BeginRequest::parse(&[0; 7]).is_err());
        assert!(EndRequest::parse(&[0; 9]).is_err());
        Ok(())
    }
}
