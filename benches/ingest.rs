//! Live ingestion through the write API, and `/feed` latency with and without it, in one run.
//!
//! `cargo bench --bench ingest -- DB [QUERY_LOG]`
//!
//! Copies DB to a temporary file, starts `target/release/videofeed serve` on a
//! Unix socket with a write token, then measures over FastCGI (our client, no
//! web server): (1) `/feed` p50/p95 with 8 reader threads for 10 s, alone;
//! (2) ingestion through `POST /feed/admin/videos` (batches of 500 demo videos)
//! with 1 writer, then 8 writers, 10 s each, videos/s acknowledged, while the
//! same 8 readers run; their p50/p95 during ingestion. Stops the server.

#![allow(clippy::print_stdout, clippy::unwrap_used, reason = "a benchmark reports on stdout and may fail loudly")]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use videofeed::fcgi::client;

const TOKEN: &str = "bench-token";

fn request(socket: &Path, method: &str, uri: &str, body: &[u8]) -> u16 {
    let mut params = client::get_params(method, uri);
    params.push(("HTTP_AUTHORIZATION".into(), format!("Bearer {TOKEN}")));
    params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
    let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let mut s = UnixStream::connect(socket).unwrap();
    client::request(&mut s, 1, false, &pairs, body).map(|r| r.status()).unwrap_or(0)
}

/// Runs 8 readers until `stop`; returns sorted latencies (ms) and the error count.
fn readers(
    socket: &Path,
    queries: &Arc<Vec<String>>,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<f64>, u64)> {
    let (socket, queries, stop) = (socket.to_path_buf(), Arc::clone(queries), Arc::clone(stop));
    std::thread::spawn(move || {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (socket, queries, stop) = (socket.clone(), Arc::clone(&queries), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let (mut lat, mut errors, mut i) = (Vec::new(), 0u64, t * 997);
                    while !stop.load(Ordering::SeqCst) {
                        let t0 = Instant::now();
                        if request(&socket, "GET", &queries[i % queries.len()], b"") != 200 {
                            errors += 1;
                        }
                        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                        i += 1;
                    }
                    (lat, errors)
                })
            })
            .collect();
        let (mut all, mut errors) = (Vec::new(), 0);
        for h in handles {
            let (l, e) = h.join().unwrap();
            all.extend(l);
            errors += e;
        }
        all.sort_by(f64::total_cmp);
        (all, errors)
    })
}

fn pct(v: &[f64], p: usize) -> f64 {
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).copied().unwrap_or(0.0)
}

fn writers(socket: &Path, n: usize, stop: &Arc<AtomicBool>, seed: u64) -> Vec<std::thread::JoinHandle<()>> {
    let done = Arc::new(AtomicU64::new(0));
    (0..n)
        .map(|w| {
            let (socket, stop, _done) = (socket.to_path_buf(), Arc::clone(stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut videos = videofeed::store::demo::videos(10_000_000, seed * 100 + w as u64);
                while !stop.load(Ordering::SeqCst) {
                    let body: Vec<String> = videos
                        .by_ref()
                        .take(500)
                        .map(|v| {
                            serde_json::json!({"id": format!("b{seed}{w}{}", v.id), "title": v.title, "channel": v.channel,
                                "duration_seconds": v.duration_seconds, "thumbnail": v.thumbnail, "region": v.region})
                            .to_string()
                        })
                        .collect();
                    let status = request(&socket, "POST", "/feed/admin/videos", body.join("\n").as_bytes());
                    if status == 200 {
                        COUNT.fetch_add(500, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect()
}

static COUNT: AtomicU64 = AtomicU64::new(0);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(src) = args.first().map(PathBuf::from) else {
        println!("usage: cargo bench --bench ingest -- DB [QUERY_LOG]");
        return;
    };
    let log = args.get(1).map_or_else(|| PathBuf::from("../shared/bench/data/queries-1.txt"), PathBuf::from);
    let queries: Arc<Vec<String>> =
        Arc::new(std::fs::read_to_string(&log).unwrap().lines().take(5000).map(str::to_owned).collect());
    let dir = std::env::temp_dir().join(format!("vf-ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("videos.db");
    std::fs::copy(&src, &db).unwrap();
    let socket = dir.join("vf.sock");
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/videofeed");
    let mut server = Command::new(&bin)
        .args(["serve", "--db", db.to_str().unwrap(), "--socket", socket.to_str().unwrap(), "--workers", "4"])
        .env("VIDEOFEED_ADMIN_TOKEN", TOKEN)
        .env("VIDEOFEED_CACHE_BYTES", "0")
        .env("VIDEOFEED_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while UnixStream::connect(&socket).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(4)); // the rank index builds in the background

    println!(
        "| phase | writers | videos/s acknowledged | /feed p50 ms | /feed p95 ms | /feed requests | /feed errors |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (phase, n) in [("feed alone", 0usize), ("ingest, 1 writer", 1), ("ingest, 8 writers", 8)] {
        let stop = Arc::new(AtomicBool::new(false));
        COUNT.store(0, Ordering::SeqCst);
        let r = readers(&socket, &queries, &stop);
        let w = writers(&socket, n, &stop, n as u64);
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::SeqCst);
        for h in w {
            h.join().unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let (lat, errors) = r.join().unwrap();
        println!(
            "| {phase} | {n} | {:.0} | {:.2} | {:.2} | {} | {errors} |",
            COUNT.load(Ordering::SeqCst) as f64 / secs,
            pct(&lat, 50),
            pct(&lat, 95),
            lat.len()
        );
    }
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
