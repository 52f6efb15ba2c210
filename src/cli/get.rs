//! `videofeed get`: one FastCGI request to a running responder (our own client).

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use videofeed::fcgi::client;

use super::{Fatal, esay, fatal, help, parse_args};

pub(super) const GET_HELP: &str = "\
videofeed get (--socket PATH | --connect HOST:PORT) [--method GET|HEAD] [--timeout SECONDS] URI

Sends one FastCGI request with our own client and prints the CGI answer (headers, blank
line, body). Exit status: 0 for a 1xx-4xx answer, 1 for a 5xx answer, 2 for no answer.
The operator's health check without a web server (it sends REMOTE_ADDR 127.0.0.1, so
/feed/metrics answers too).

Examples:
  videofeed get --socket /run/videofeed/videofeed.sock /feed/health
  videofeed get --socket /run/videofeed/videofeed.sock '/feed?q=music&limit=3'
  videofeed get --socket /run/videofeed/videofeed.sock /feed/metrics | grep ^videofeed_requests";

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let a = parse_args(raw, &["--socket", "--connect", "--method", "--timeout"], &[], GET_HELP)?;
    if a.help {
        return help(GET_HELP);
    }
    let uri = a
        .positional
        .first()
        .cloned()
        .ok_or_else(|| fatal(format!("get needs a URI such as '/feed?q=music'\n\n{GET_HELP}")))?;
    let method = a.get("--method").unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
    let timeout = Some(Duration::from_secs(a.number("--timeout", 5u64)?.max(1)));
    let params = client::get_params(&method, &uri);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let answer = match (a.get("--socket"), a.get("--connect")) {
        (Some(path), None) => UnixStream::connect(&path)
            .and_then(|mut s| {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                client::request(&mut s, 1, false, &pairs, &[])
            })
            .map_err(|e| fatal(format!("no answer from {path}: {e}")))?,
        (None, Some(addr)) => TcpStream::connect(&addr)
            .and_then(|mut s| {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                client::request(&mut s, 1, false, &pairs, &[])
            })
            .map_err(|e| fatal(format!("no answer from {addr}: {e}")))?,
        _ => return Err(fatal(format!("give exactly one of --socket PATH or --connect HOST:PORT\n\n{GET_HELP}"))),
    };
    let mut out = io::stdout().lock();
    out.write_all(&answer.stdout)?;
    if !answer.stdout.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    if !answer.stderr.is_empty() {
        esay(&format!("stderr from the application: {}", String::from_utf8_lossy(&answer.stderr)));
    }
    Ok(if answer.status() >= 500 { 1 } else { 0 })
}
