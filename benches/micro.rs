//! Micro-benchmarks of the hot pure functions: the FastCGI codec, the query
//! parameter parser, the FTS5 match builder and JSON encoding.
//!
//! `cargo bench --bench micro` prints ns per operation (median of 15 batches).
//! A plain timing harness instead of criterion: no extra dependency, and the
//! numbers are stable enough to spot a regression in review (compare with the
//! table in docs/benchmarks.md on the same machine).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::hint::black_box;
use std::time::Instant;

use videofeed::fcgi::{client, conn, record};
use videofeed::http::{request, response};
use videofeed::search::FeedItem;
use videofeed::search::tokenize as fts;

/// Median ns per call of `f` over 15 batches of `n` calls.
fn bench(name: &str, n: u32, mut f: impl FnMut()) {
    let mut per_call: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    println!("| {name} | {:.0} |", per_call[7]);
}

/// An in-memory stream: reads the request, collects the answer.
struct Mem<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl std::io::Read for Mem<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl std::io::Write for Mem<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let params = client::get_params("GET", "/feed?q=lofi%20hip%20ho&region=de&limit=24");
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let wire = client::encode_request(1, true, &pairs, &[]);
    let items: Vec<FeedItem> = (0..24)
        .map(|i| FeedItem {
            id: format!("vid{i:08}"),
            title: "Lofi Hip Hop Radio - beats to relax/study to (Official Video)".into(),
            channel: "Lofi Girl".into(),
            duration_seconds: 3600 + i,
            thumbnail: format!("https://i.ytimg.com/vi/vid{i:08}/hqdefault.jpg"),
            region: "GLOBAL".into(),
            score: 12.345_678_9 / (f64::from(i32::try_from(i).unwrap_or(1)) + 1.0),
            ..FeedItem::default()
        })
        .collect();
    let query = request::parse("q=lofi%20hip%20ho&region=de&limit=24").unwrap();
    let json = response::feed_json(&query, &items).unwrap();
    let limits = conn::Limits {
        max_params: 65536,
        max_stdin: 65536,
        max_conns: 1024,
        max_reqs: 16,
        max_param_count: 512,
        request_timeout: std::time::Duration::from_secs(10),
    };

    println!("| operation | ns |");
    println!("|---|---|");
    bench("fcgi: encode a GET request (8 params)", 20_000, || {
        black_box(client::encode_request(1, true, black_box(&pairs), &[]));
    });
    bench("fcgi: decode that request and answer it (conn::serve, no-op handler)", 20_000, || {
        let mut s = Mem { input: black_box(&wire), output: Vec::with_capacity(8192) };
        let _ = conn::serve(&mut s, &limits, |_: &conn::Request| b"Status: 200 OK\r\n\r\n{}".to_vec(), || false);
        black_box(s.output);
    });
    bench("fcgi: frame a 6 KB answer as STDOUT + END_REQUEST", 20_000, || {
        let mut out = Vec::with_capacity(8192);
        record::encode_stream(&mut out, record::RecordType::Stdout, 1, black_box(&json));
        record::encode_end_request(&mut out, 1, 0, record::ProtocolStatus::RequestComplete);
        black_box(out);
    });
    bench("request: parse and validate the query string", 100_000, || {
        black_box(request::parse(black_box("q=lofi%20hip%20ho&region=de&limit=24")).ok());
    });
    bench("fts: build the MATCH expression", 100_000, || {
        black_box(fts::match_expression(black_box("lofi hip ho")));
    });
    bench("fts: build it for a hostile 120-character query", 100_000, || {
        black_box(fts::match_expression(black_box(
            r#"NEAR(a b) "x" AND y* ^z title:w ( ) - + 🎵 c++ don't ac/dc 4k lofi hip hop music video official live new best top how to the"#,
        )));
    });
    bench("response: JSON body for 24 results", 20_000, || {
        black_box(response::feed_json(black_box(&query), black_box(&items)).ok());
    });
    bench("response: CGI headers around a cached body", 100_000, || {
        black_box(response::feed_from_json(black_box(&json), "DE", false).render());
    });
}
