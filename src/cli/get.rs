//! `videofeed get`: one FastCGI request to a running responder (our own client),
//! with curl's options for a method, headers and a body, so ETag/304 and the
//! write API can be tried without a web server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use videofeed::fcgi::client;

use super::{Fatal, esay, fatal, help};

pub(super) const GET_HELP: &str = "\
videofeed get (--socket PATH | --connect HOST:PORT) [-X METHOD] [-H 'Name: value']... [-d @FILE|-|TEXT] [-i] [--timeout SECONDS] URI

Sends one FastCGI request with our own client (as a web server would: the
headers as HTTP_* variables, REMOTE_ADDR 127.0.0.1, so /feed/metrics answers
too) and prints the answer's body; the options follow curl's:
  -X, --request, --method METHOD   the method (default GET, or POST with -d)
  -H, --header 'Name: value'       a request header; repeat for more
  -d, --data, --data-binary BODY   the body: @FILE reads a file, - reads stdin,
                                   anything else is sent as it is (JSON Lines
                                   for the write API; Content-Type defaults to
                                   application/x-ndjson)
  -i, --include                    print the answer's CGI headers (Status: first),
                                   a blank line, then the body
  --timeout SECONDS                give up after this long (default 5)
Exit status: 0 for a 1xx-4xx answer, 1 for a 5xx answer, 2 for no answer.

Examples:
  videofeed get --socket /run/videofeed/videofeed.sock /feed/health
  videofeed get --socket /run/videofeed/videofeed.sock '/feed?q=music&limit=3'
  videofeed get --socket /run/videofeed/videofeed.sock /feed/metrics | grep ^videofeed_requests
  videofeed get -i --socket S -H 'If-None-Match: \"v12-…\"' '/feed?q=music'      # 304 when unchanged
  videofeed get --socket S -H \"Authorization: Bearer $TOKEN\" -d @videos.jsonl /feed/admin/videos
  videofeed get --socket S -X DELETE -H \"Authorization: Bearer $TOKEN\" /feed/admin/videos/ID";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Get {
    socket: Option<String>,
    connect: Option<String>,
    method: Option<String>,
    headers: Vec<(String, String)>,
    data: Option<String>,
    include: bool,
    timeout: Option<String>,
    uri: Option<String>,
    help: bool,
}

fn parse(raw: &[String]) -> Result<Get, Fatal> {
    use lexopt::Arg;
    let mut g = Get::default();
    let mut parser = lexopt::Parser::from_args(raw.iter().cloned());
    let usage = |msg: String| fatal(format!("{msg}\n\n{GET_HELP}"));
    while let Some(arg) = parser.next().map_err(|e| usage(e.to_string()))? {
        // The option's name, owned, so its value can be taken from the parser below.
        let name = match arg {
            Arg::Short(c) => c.to_string(),
            Arg::Long(name) => name.to_owned(),
            Arg::Value(v) if g.uri.is_none() => {
                g.uri = Some(v.into_string().map_err(|_| usage("the URI is not valid UTF-8".into()))?);
                continue;
            }
            Arg::Value(v) => return Err(usage(format!("one URI only; also got {}", v.to_string_lossy()))),
        };
        let mut value = |what: &str| -> Result<String, Fatal> {
            let v = parser.value().map_err(|_| usage(format!("{what} needs a value")))?;
            v.into_string().map_err(|v| fatal(format!("{what} is not valid UTF-8: {}", v.to_string_lossy())))
        };
        match name.as_str() {
            "h" | "help" => g.help = true,
            "socket" => g.socket = Some(value("--socket")?),
            "connect" => g.connect = Some(value("--connect")?),
            "X" | "request" | "method" => g.method = Some(value("-X")?.to_ascii_uppercase()),
            "H" | "header" => g.headers.push(header(&value("-H")?)?),
            "d" | "data" | "data-binary" => g.data = Some(value("-d")?),
            "i" | "include" => g.include = true,
            "timeout" => g.timeout = Some(value("--timeout")?),
            one if one.chars().count() == 1 => return Err(usage(format!("unknown option -{one}"))),
            other => return Err(usage(format!("unknown option --{other}"))),
        }
    }
    Ok(g)
}

/// `Name: value` → (name, value), both trimmed.
fn header(h: &str) -> Result<(String, String), Fatal> {
    let (name, value) = h
        .split_once(':')
        .filter(|(n, _)| !n.trim().is_empty() && n.trim().bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| fatal(format!("-H takes 'Name: value', got {h:?}\n\n{GET_HELP}")))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// The body `-d` names: a file (`@FILE`), standard input (`-`), or the text itself.
fn body_of(data: Option<&str>) -> Result<Vec<u8>, Fatal> {
    match data {
        None => Ok(Vec::new()),
        Some("-") => {
            let mut body = Vec::new();
            io::stdin().read_to_end(&mut body).map_err(|e| fatal(format!("-d -: reading standard input: {e}")))?;
            Ok(body)
        }
        Some(d) => match d.strip_prefix('@') {
            Some(path) => std::fs::read(path).map_err(|e| fatal(format!("-d @{path}: {e}"))),
            None => Ok(d.as_bytes().to_vec()),
        },
    }
}

/// The CGI variables for a request: `client::get_params`, the body's length and
/// type, then each header as a web server passes it (`HTTP_NAME`; Content-Type
/// and Content-Length as `CONTENT_TYPE`/`CONTENT_LENGTH`).
fn params(method: &str, uri: &str, headers: &[(String, String)], body: &[u8]) -> Vec<(String, String)> {
    let mut params = client::get_params(method, uri);
    if !body.is_empty() {
        params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
        params.push(("CONTENT_TYPE".into(), "application/x-ndjson".into()));
    }
    for (name, value) in headers {
        let upper = name.to_ascii_uppercase().replace('-', "_");
        let var = match upper.as_str() {
            "CONTENT_TYPE" | "CONTENT_LENGTH" => upper,
            _ => format!("HTTP_{upper}"),
        };
        params.retain(|(n, _)| *n != var);
        params.push((var, value.clone()));
    }
    params
}

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let g = parse(raw)?;
    if g.help {
        return help(GET_HELP);
    }
    let uri = g.uri.clone().ok_or_else(|| fatal(format!("get needs a URI such as '/feed?q=music'\n\n{GET_HELP}")))?;
    let seconds: u64 = match &g.timeout {
        None => 5,
        Some(t) => t.parse().map_err(|_| fatal(format!("--timeout must be a whole number of seconds, got {t:?}")))?,
    };
    let timeout = Some(Duration::from_secs(seconds.max(1)));
    let body = body_of(g.data.as_deref())?;
    let method = g.method.clone().unwrap_or_else(|| if g.data.is_some() { "POST".into() } else { "GET".into() });
    let params = params(&method, &uri, &g.headers, &body);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let answer = match (&g.socket, &g.connect) {
        (Some(path), None) => UnixStream::connect(path)
            .and_then(|mut s| {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                client::request(&mut s, 1, false, &pairs, &body)
            })
            .map_err(|e| fatal(format!("no answer from {path}: {e}")))?,
        (None, Some(addr)) => TcpStream::connect(addr)
            .and_then(|mut s| {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                client::request(&mut s, 1, false, &pairs, &body)
            })
            .map_err(|e| fatal(format!("no answer from {addr}: {e}")))?,
        _ => return Err(fatal(format!("give exactly one of --socket PATH or --connect HOST:PORT\n\n{GET_HELP}"))),
    };
    let mut out = io::stdout().lock();
    let shown = if g.include { answer.stdout.as_slice() } else { answer.body() };
    out.write_all(shown)?;
    if !shown.is_empty() && !shown.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    if !answer.stderr.is_empty() {
        esay(&format!("stderr from the application: {}", String::from_utf8_lossy(&answer.stderr)));
    }
    Ok(if answer.status() >= 500 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn curl_options_parse() -> Result<(), String> {
        let g = parse(&args(&[
            "--socket",
            "/s",
            "-X",
            "delete",
            "-H",
            "Authorization: Bearer t:x",
            "-H",
            "If-None-Match: \"v1\"",
            "-i",
            "-d",
            "@f",
            "/feed/admin/videos/a",
        ]))
        .map_err(|e| e.0)?;
        assert_eq!(g.method.as_deref(), Some("DELETE"));
        assert_eq!(g.headers[0], ("Authorization".to_owned(), "Bearer t:x".to_owned()));
        assert_eq!(g.headers[1].1, "\"v1\"");
        assert!(g.include && g.data.as_deref() == Some("@f") && g.uri.as_deref() == Some("/feed/admin/videos/a"));
        assert!(parse(&args(&["-H", "no colon", "/x"])).is_err());
        assert!(parse(&args(&["/a", "/b"])).is_err());
        Ok(())
    }

    #[test]
    fn headers_become_cgi_variables() {
        let p = params(
            "POST",
            "/x?a=1",
            &[("If-None-Match".into(), "e".into()), ("Content-Type".into(), "t".into())],
            b"{}",
        );
        let get = |n: &str| p.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTP_IF_NONE_MATCH"), Some("e"));
        assert_eq!(get("CONTENT_TYPE"), Some("t"));
        assert_eq!(get("CONTENT_LENGTH"), Some("2"));
        assert_eq!(get("QUERY_STRING"), Some("a=1"));
    }
}
