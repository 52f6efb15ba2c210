//! Single-query latency of the /feed search, in process, one connection, sequential.
//!
//! `cargo bench --bench search -- DB [QUERY_LOG] [N]`
//!
//! Prints p50/p95/p99 per query shape (N runs each, after one warm-up run),
//! then, when a query log is given (the `shared/bench/data/queries-1.txt`
//! format), queries/s and percentiles over its first 2000 lines. This is
//! the database floor: no FastCGI, no HTTP. Results go in docs/benchmarks.md.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use videofeed::http::request;
use videofeed::search::{RankIndex, Reader};

const SHAPES: &[(&str, &str)] = &[
    ("one rare word", "q=disdain"),
    ("one common word", "q=love"),
    ("two-letter prefix", "q=mo"),
    ("word + prefix", "q=tacky%20sta"),
    ("three words", "q=composition%20information%20absolute"),
    ("stop word + prefix", "q=the%20be"),
    ("no match", "q=zzqxv"),
    // Browsing without a query (issue 35).
    ("browse: popular in a region", "region=DE&sort=popular"),
    ("browse: newest, biggest region", "sort=recent"),
    ("browse: newest GLOBAL", "region=GLOBAL&sort=recent"),
    ("browse: deepest page", "region=DE&sort=popular&offset=1000"),
    ("browse: rare region + duration", "region=IS&sort=popular&min_duration=3000"),
    ("browse: biggest channel", "channel=MIGHT&sort=popular"),
    ("browse: a channel, newest", "channel=feels"),
];

fn pct(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // VIDEOFEED_RANK_MEMO_BYTES as `videofeed serve` reads it (the memo's budget).
    if let Some(bytes) = std::env::var("VIDEOFEED_RANK_MEMO_BYTES").ok().and_then(|v| v.trim().parse().ok()) {
        videofeed::search::index::snapshot::set_memo_budget(Some(bytes));
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(db) = args.first().map(PathBuf::from) else {
        eprintln!("usage: cargo bench --bench search -- DB [QUERY_LOG] [N]");
        return Ok(());
    };
    let log = args.get(1).map(PathBuf::from);
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(50);
    // SQL ranking alone, or through the in-memory rank index (VIDEOFEED_RANK_INDEX=on).
    let mut reader = if std::env::var("VIDEOFEED_RANK_INDEX").as_deref() == Ok("on") {
        let index = RankIndex::new(db.clone());
        let t = Instant::now();
        index.build_now()?;
        let snap = index.snapshot().ok_or("no snapshot")?;
        let table = snap.prefix_table();
        let (kept, bytes) = table.classes_kept();
        println!(
            "rank index: {} terms, {} postings, {} MB, built in {} ms; prefix table: {} prefixes counted, {kept} kept by class in {:.1} MB\n",
            snap.term_count(),
            snap.posting_count(),
            snap.heap_bytes() >> 20,
            t.elapsed().as_millis(),
            table.len(),
            bytes as f64 / 1e6,
        );
        Reader::with_index(&db, index)?
    } else {
        Reader::open_read_only(&db)?
    };
    // The serve settings that change what a query costs, from the same variables.
    let off = |name: &str| std::env::var(name).is_ok_and(|v| v == "off");
    reader.set_relax(!off("VIDEOFEED_RELAX"));
    reader.set_totals(!off("VIDEOFEED_TOTALS"));
    reader.set_typo_correction(!off("VIDEOFEED_TYPO_FALLBACK"));
    println!("| shape | query | rows | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, qs) in SHAPES {
        let q = request::parse(qs)?;
        let rows = reader.search(&q)?.len().min(usize::try_from(q.limit)?);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            std::hint::black_box(reader.search(&q)?);
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| {name} | `{}` | {rows} | {:.2} | {:.2} | {:.2} |",
            q.q,
            pct(&times, 50),
            pct(&times, 95),
            pct(&times, 99)
        );
    }
    // Where the time goes on the fast path, for a cheap and an expensive query (median of n).
    if std::env::var("VIDEOFEED_RANK_INDEX").as_deref() == Ok("on") {
        println!(
            "\n| query | parse µs | tokenize µs | txn + generation µs | rank µs | fetch rows µs | JSON µs | CGI framing µs |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for qs in ["q=disdain", "q=the%20be", "q=can%27t"] {
            let mut runs = Vec::with_capacity(n);
            for _ in 0..n.max(5) {
                let t = Instant::now();
                let q = request::parse(qs)?;
                let parse = t.elapsed();
                let (items, st) = reader.search_timed(&q)?.ok_or("rank index not current")?;
                let t = Instant::now();
                let json = videofeed::http::response::feed_json(&q, &items)?;
                let json_t = t.elapsed();
                let t = Instant::now();
                let cgi = videofeed::http::response::feed_from_json(&json, &q.region, false).render();
                let mut out = Vec::with_capacity(cgi.len() + 64);
                videofeed::fcgi::record::encode_stream(&mut out, videofeed::fcgi::record::RecordType::Stdout, 1, &cgi);
                std::hint::black_box(&out);
                let frame = t.elapsed();
                runs.push([parse, st.tokenize, st.generation, st.rank, st.fetch, json_t, frame]);
            }
            let median = |k: usize| {
                let mut v: Vec<f64> = runs.iter().map(|r| r[k].as_secs_f64() * 1e6).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "| `{}` | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                qs.trim_start_matches("q="),
                median(0),
                median(1),
                median(2),
                median(3),
                median(4),
                median(5),
                median(6)
            );
        }
    }
    if let Some(log) = log {
        let text = std::fs::read_to_string(&log)?;
        let max_queries: usize = std::env::var("BENCH_QUERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
        let queries: Vec<_> = text
            .lines()
            .take(max_queries)
            .filter_map(|l| l.split_once('?').and_then(|(_, qs)| request::parse(qs).ok()))
            .collect();
        let mut times = Vec::with_capacity(queries.len());
        let mut worst = (Duration::ZERO, String::new());
        // BENCH_SLOWEST=N: list the N slowest queries (with what the answer did).
        let list_slowest: usize = std::env::var("BENCH_SLOWEST").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut slowest: Vec<(Duration, String)> = Vec::new();
        let (mut relaxed, mut corrected, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        let start = Instant::now();
        for q in &queries {
            let t = Instant::now();
            let answer = std::hint::black_box(reader.answer(q)?);
            let took = t.elapsed();
            if !answer.relaxed.is_empty() {
                relaxed.push(took);
            }
            if !answer.corrected.is_empty() {
                corrected.push(took);
            }
            if answer.relaxed.is_empty() && answer.corrected.is_empty() {
                plain.push(took);
            }
            if took > worst.0 {
                worst = (took, q.q.clone());
            }
            if list_slowest > 0 {
                let did = format!("relaxed {:?} corrected {:?}", answer.relaxed, answer.corrected);
                slowest.push((took, format!("{:?} region {} limit {}: {did}", q.q, q.region, q.limit)));
            }
            times.push(took);
        }
        let total = start.elapsed();
        times.sort();
        println!(
            "\nquery log {}: {} valid queries of the first {max_queries}, {:.0} queries/s sequential, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
            log.display(),
            queries.len(),
            queries.len() as f64 / total.as_secs_f64(),
            pct(&times, 50),
            pct(&times, 95),
            pct(&times, 99)
        );
        println!("slowest: {:.2} ms for {:?}", worst.0.as_secs_f64() * 1000.0, worst.1);
        let [one, several, given_up] = videofeed::obs::metrics::global().class_walks();
        println!(
            "rankings by score class: {one} of one phrase, {several} of several ({given_up} more given up for the row loop); kept merges and classes evicted: {}, kept at the end: {:.1} MiB merges, {:.1} MiB classes",
            videofeed::obs::metrics::global().memo_evictions(),
            videofeed::obs::metrics::global().memo_bytes().0 as f64 / 1048576.0,
            videofeed::obs::metrics::global().memo_bytes().1 as f64 / 1048576.0,
        );
        slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (took, what) in slowest.iter().take(list_slowest) {
            println!("  {:.2} ms {what}", took.as_secs_f64() * 1000.0);
        }
        for (what, mut t) in [("relaxed (words dropped)", relaxed), ("typo-corrected", corrected), ("neither", plain)] {
            t.sort();
            let total: f64 = t.iter().map(Duration::as_secs_f64).sum();
            println!(
                "{what}: {} queries, {:.0} ms in all, p50 {:.2} ms, p99 {:.2} ms",
                t.len(),
                total * 1000.0,
                pct(&t, 50),
                pct(&t, 99)
            );
        }
    }
    Ok(())
}
