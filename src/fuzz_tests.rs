//! Property-based fuzzing of everything that takes untrusted bytes: the FastCGI
//! record decoder, name-value pairs, the connection state machine, the query
//! string parser and the JSON Lines importer (the FTS5 match builder has its
//! own, against a real FTS5 table, in `search`). Besides random inputs, the
//! `*_from_seeds` targets mutate the checked-in corpus in `tests/fuzz-seeds/`
//! (valid requests of every kind, query strings, import lines). Each target runs
//! `VIDEOFEED_FUZZ_CASES` cases (default 1,000; `.ci/run` asks for more), and
//! asserts no panic plus the invariants of whatever is accepted. proptest is
//! used because a coverage-guided fuzzer (cargo-fuzz) needs a nightly
//! compiler, which CI does not have (docs/robustness.md).
#![cfg(test)]

use std::io;

use proptest::prelude::*;

use crate::fcgi::conn::tests::Mem;
use crate::fcgi::{conn, record};

/// The checked-in seed corpus: `tests/fuzz-seeds/<kind>/*`.
fn seeds(kind: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-seeds").join(kind);
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A seed with random byte edits: (position, new byte) pairs, a cut, and random bytes appended.
fn mutated(kind: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let corpus = seeds(kind);
    let n = corpus.len();
    (
        0..n,
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        any::<usize>(),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(move |(i, edits, cut, tail)| {
            let mut bytes = corpus[i].clone();
            for (pos, b) in edits {
                if !bytes.is_empty() {
                    let at = pos % bytes.len();
                    bytes[at] = b;
                }
            }
            if cut % 4 == 0 && !bytes.is_empty() {
                bytes.truncate(cut % bytes.len());
            }
            bytes.extend(tail);
            bytes
        })
}

fn cases() -> u32 {
    std::env::var("VIDEOFEED_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
}

/// A record with a random type, id and content, sometimes with a wrong version.
fn any_record() -> impl Strategy<Value = Vec<u8>> {
    (0u8..14, 0u16..4, proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()).prop_map(
        |(kind, id, content, bad_version)| {
            let mut out = Vec::new();
            record::encode(&mut out, record::RecordType::from_u8(kind), id, &content);
            if bad_version {
                if let Some(v) = out.first_mut() {
                    *v = 2;
                }
            }
            out
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fuzz_record_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        match record::decode(&bytes) {
            Ok(record::Decoded::Record(r, used)) => {
                prop_assert!(used >= record::HEADER_LEN && used <= bytes.len());
                prop_assert!(r.content.len() <= record::MAX_CONTENT);
            }
            Ok(record::Decoded::NeedMore(n)) => prop_assert!(n > 0),
            Err(_) => prop_assert!(bytes.first().is_some_and(|v| *v != 1)),
        }
    }

    #[test]
    fn fuzz_name_value_pairs(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(pairs) = record::decode_pairs(&bytes) {
            let total: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
            prop_assert!(total <= bytes.len());
        }
    }

    #[test]
    fn fuzz_connection_with_raw_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        serve_all(bytes);
    }

    #[test]
    fn fuzz_connection_with_record_soup(records in proptest::collection::vec(any_record(), 0..24)) {
        serve_all(records.concat());
    }

    #[test]
    fn fuzz_connection_from_seeds(bytes in mutated("fcgi")) {
        serve_all(bytes);
    }

    #[test]
    fn fuzz_query_string_from_seeds(bytes in mutated("query")) {
        let _ = crate::http::request::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fuzz_import_line_from_seeds(bytes in mutated("import")) {
        let _ = crate::store::parse_line(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn fuzz_query_string(qs in "\\PC{0,200}", raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        for input in [qs, String::from_utf8_lossy(&raw).into_owned()] {
            if let Ok(q) = crate::http::request::parse(&input) {
                prop_assert!((1..=crate::http::request::MAX_LIMIT).contains(&q.limit));
                prop_assert!(q.offset <= crate::http::request::MAX_OFFSET);
                prop_assert!(
                    q.region == "GLOBAL" || (q.region.len() == 2 && q.region.bytes().all(|b| b.is_ascii_uppercase()))
                );
                let chars = q.q.chars().count();
                prop_assert!(chars <= crate::http::request::MAX_Q_CHARS);
                // No query only when browsing (issue 35): a channel, or sort=recent|popular.
                let browsing = q.channel.is_some() || matches!(q.sort, crate::search::Sort::Recent | crate::search::Sort::Popular);
                prop_assert!((chars >= 1 && !q.match_expr.is_empty()) || (browsing && chars == 0 && q.match_expr.is_empty()));
            }
        }
    }

    #[test]
    fn fuzz_import_line(line in "\\PC{0,300}", id in "\\PC{0,80}", dur in any::<i64>(), region in "\\PC{0,8}") {
        let shaped = serde_json::json!({
            "id": id, "title": line.clone(), "channel": "c", "duration_seconds": dur,
            "thumbnail": "https://x", "region": region,
        })
        .to_string();
        for input in [line, shaped] {
            if let Ok(v) = crate::store::parse_line(&input) {
                prop_assert!(!v.id.is_empty() && v.id.chars().count() <= 64);
                prop_assert!((0..=1_000_000).contains(&v.duration_seconds));
                prop_assert!(v.region == "GLOBAL" || (v.region.len() == 2 && v.region.bytes().all(|b| b.is_ascii_uppercase())));
                prop_assert!(!v.title.is_empty() && !v.channel.is_empty());
            }
        }
    }
}

/// Feeds `input` to a connection until it ends; must neither panic nor loop forever.
fn serve_all(input: Vec<u8>) {
    let limits = conn::Limits {
        max_params: 256,
        max_stdin: 256,
        max_conns: 4,
        max_reqs: 2,
        max_param_count: 16,
        request_timeout: std::time::Duration::from_secs(5),
    };
    let mut s = Mem { input: io::Cursor::new(input), output: Vec::new() };
    let _ = conn::serve(
        &mut s,
        &limits,
        |req: &conn::Request| format!("Status: 200 OK\r\n\r\n{}", req.params.len()).into_bytes(),
        || false,
    );
    // Whatever was written is well-formed FastCGI.
    assert!(record::is_record_stream(&s.output), "the connection wrote malformed output");
}
