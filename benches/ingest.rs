//! Live ingestion through the write API, and `/feed` with and without it, in one run.
//!
//! `cargo bench --bench ingest -- DB [QUERY_LOG]`
//!
//! Copies DB to a temporary file, starts `target/release/videofeed serve` on a
//! Unix socket with a write token, 4 workers, response cache off, then measures
//! over FastCGI (our client, no web server), 8 reader threads on the query log
//! in every phase, 10 s each: (0) the feed alone; (1) one writer posting a
//! 500-video batch every 0.5 s (1,000 new videos/s); (2) eight writers at 250
//! videos/s each (a 125-video batch every 0.5 s); (3) one writer changing only
//! view counts of existing videos (a 1,000-video batch every 0.5 s, 2,000/s);
//! (4) one writer posting 500-video batches as fast as it can; (5) the feed
//! alone again (how much the run drifted). A 5 s unmeasured warm-up comes first.
//! Prints readers' requests/s and latency per phase, and each phase's ratio to phase 0.
//! `ADMIN_CONCURRENCY=N` sets the server's write admission bound (default 1, the
//! server's own default for 4 workers); refused writes (503) are not retried.
//!
//! Other modes (issue 33), `INGEST_MODE=`:
//! - `posters`: the feed alone for 20 s, then 64 posters sending batches of 1-500 new
//!   videos back to back for `SECONDS` (default 60) beside it, then the feed alone
//!   again; prints refused writes, acknowledged videos and how many of them are found
//!   in the database afterwards, the writes' latency, the longest delay from a commit
//!   to its answer (the server's own metric) and the feed's p99 against the first phase.
//! - `churn`: the feed alone for 30 s, then 1,000 retitles a second (a batch of 100
//!   every 0.1 s) over a hot set of 100 existing videos for `MINUTES` (default 10);
//!   prints per minute the server's resident memory, the delta's rows and versions,
//!   and the feed's p99 against the first phase.
//! - `sustained`: the same with 1,000 new videos a second (500 every 0.5 s); prints
//!   per minute the delta's largest size, compactions (and hurried ones) and whether
//!   health said `degraded`.

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

/// What a writer sends.
#[derive(Clone, Copy)]
enum Load {
    /// New demo videos, `batch` per request, one request every `every` (None: back to back).
    New { batch: usize, every: Option<Duration> },
    /// Existing videos with a new view count, `batch` per request every `every`.
    Views { batch: usize, every: Duration },
}

fn writers(
    socket: &Path,
    n: usize,
    load: Load,
    existing: &Arc<Vec<serde_json::Value>>,
    stop: &Arc<AtomicBool>,
    seed: u64,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (socket, stop, existing) = (socket.to_path_buf(), Arc::clone(stop), Arc::clone(existing));
            std::thread::spawn(move || {
                let mut videos = videofeed::store::demo::videos(10_000_000, seed * 100 + w as u64);
                let mut round = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let (body, rows, every): (Vec<String>, usize, Option<Duration>) = match load {
                        Load::New { batch, every } => (
                            videos
                                .by_ref()
                                .take(batch)
                                .map(|v| {
                                    serde_json::json!({"id": format!("b{seed}{w}{}", v.id), "title": v.title, "channel": v.channel,
                                        "duration_seconds": v.duration_seconds, "thumbnail": v.thumbnail, "region": v.region})
                                    .to_string()
                                })
                                .collect(),
                            batch,
                            every,
                        ),
                        Load::Views { batch, every } => {
                            round += 1;
                            let start = (round as usize * batch) % existing.len().max(1);
                            let body = existing
                                .iter()
                                .cycle()
                                .skip(start)
                                .take(batch)
                                .map(|v| {
                                    let mut v = v.clone();
                                    v["view_count"] = serde_json::json!(round);
                                    v.to_string()
                                })
                                .collect();
                            (body, batch, Some(every))
                        }
                    };
                    if request(&socket, "POST", "/feed/admin/videos", body.join("\n").as_bytes()) == 200 {
                        COUNT.fetch_add(rows as u64, Ordering::SeqCst);
                    }
                    if let Some(every) = every {
                        while started.elapsed() < every && !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        })
        .collect()
}

/// The first `n` videos of `db`, as import lines (for view-count updates).
fn existing_videos(db: &Path, n: usize) -> Vec<serde_json::Value> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, title, channel, duration_seconds, thumbnail, region, published_at FROM videos ORDER BY rowid LIMIT ?1")
        .unwrap();
    stmt.query_map([n as i64], |r| {
        Ok(serde_json::json!({"id": r.get::<_, String>(0)?, "title": r.get::<_, String>(1)?, "channel": r.get::<_, String>(2)?,
            "duration_seconds": r.get::<_, i64>(3)?, "thumbnail": r.get::<_, String>(4)?, "region": r.get::<_, String>(5)?,
            "published_at": r.get::<_, Option<String>>(6)?}))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
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
    // Upgrade the copy's schema in place if it is older than this build's.
    assert!(
        Command::new(&bin)
            .args(["init", "--db", db.to_str().unwrap()])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let mut server = Command::new(&bin)
        .args(["serve", "--db", db.to_str().unwrap(), "--socket", socket.to_str().unwrap(), "--workers", "4"])
        .env("VIDEOFEED_ADMIN_TOKEN", TOKEN)
        .env("VIDEOFEED_CACHE_BYTES", "0")
        // The admission bound under test (default: a quarter of the 4 workers = 1).
        .env("VIDEOFEED_ADMIN_CONCURRENCY", std::env::var("ADMIN_CONCURRENCY").unwrap_or_else(|_| "1".into()))
        .env("VIDEOFEED_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .envs(
            std::env::var("BENCH_SERVER_ENV")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|kv| kv.split_once('=')),
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while UnixStream::connect(&socket).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(8)); // the rank index builds in the background (4 s per 1M)
    // Warm-up, not measured: the copy's first write (it merges the segments the bulk
    // import left in FTS5's index: ~2 s of CPU at 1M videos, once per imported database),
    // then every worker's connection and page cache, as in a serving process.
    {
        let first: Vec<String> = videofeed::store::demo::videos(10_000_000, 999)
            .take(100)
            .map(|v| {
                serde_json::json!({"id": format!("warm-{}", v.id), "title": v.title, "channel": v.channel,
                    "duration_seconds": v.duration_seconds, "thumbnail": v.thumbnail, "region": v.region})
                .to_string()
            })
            .collect();
        let t = Instant::now();
        let status = request(&socket, "POST", "/feed/admin/videos", first.join("\n").as_bytes());
        eprintln!("first write on the copy: status {status} in {} ms", t.elapsed().as_millis());
    }
    {
        let stop = Arc::new(AtomicBool::new(false));
        let r = readers(&socket, &queries, &stop);
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::SeqCst);
        let _ = r.join().unwrap();
    }

    let mode = std::env::var("INGEST_MODE").unwrap_or_default();
    if !mode.is_empty() {
        match mode.as_str() {
            "posters" => posters(&socket, &queries, &db, &bin),
            "churn" | "sustained" => long_run(&socket, &queries, &db, &bin, server.id(), mode == "churn"),
            other => println!("unknown INGEST_MODE {other}: posters, churn or sustained"),
        }
        let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
        let _ = server.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let existing = Arc::new(existing_videos(&db, 100_000));
    println!(
        "| phase | writers | videos/s acknowledged | /feed req/s | /feed p50 ms | /feed p95 ms | /feed p99 ms | errors | req/s vs alone | p99 vs alone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let half = Duration::from_millis(500);
    let phases: [(&str, usize, Load); 6] = [
        ("feed alone", 0, Load::New { batch: 0, every: None }),
        ("1 writer, 500 new every 0.5 s", 1, Load::New { batch: 500, every: Some(half) }),
        ("8 writers, 125 new every 0.5 s each", 8, Load::New { batch: 125, every: Some(half) }),
        ("1 writer, 1,000 view counts every 0.5 s", 1, Load::Views { batch: 1000, every: half }),
        ("1 writer, 500 new back to back", 1, Load::New { batch: 500, every: None }),
        ("feed alone, again (drift check)", 0, Load::New { batch: 0, every: None }),
    ];
    let mut alone: Option<(f64, f64)> = None;
    for (k, (phase, n, load)) in phases.into_iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        COUNT.store(0, Ordering::SeqCst);
        let r = readers(&socket, &queries, &stop);
        let w = writers(&socket, n, load, &existing, &stop, k as u64 + 1);
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::SeqCst);
        for h in w {
            h.join().unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let (lat, errors) = r.join().unwrap();
        let rps = lat.len() as f64 / secs;
        let p99 = pct(&lat, 99);
        let (base_rps, base_p99) = *alone.get_or_insert((rps, p99));
        println!(
            "| {phase} | {n} | {:.0} | {rps:.0} | {:.2} | {:.2} | {p99:.2} | {errors} | {:.2}x | {:.2}x |",
            COUNT.load(Ordering::SeqCst) as f64 / secs,
            pct(&lat, 50),
            pct(&lat, 95),
            rps / base_rps,
            p99 / base_p99
        );
        // What the phase left behind that the next one pays for (stderr: not part of the table).
        let wal = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
        let metrics = Command::new(&bin)
            .args(["get", "--socket", socket.to_str().unwrap(), "/feed/metrics"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let delta = metrics.lines().find(|l| l.starts_with("videofeed_rank_index_delta_rows ")).unwrap_or("");
        eprintln!("after phase {k}: WAL {} MB, {delta}", wal >> 20);
    }
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The server's metrics text.
fn metrics_text(bin: &Path, socket: &Path) -> String {
    Command::new(bin)
        .args(["get", "--socket", socket.to_str().unwrap(), "/feed/metrics"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// One sample of the metrics text, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The feed alone for `secs`: (req/s, p99 ms).
fn feed_alone(socket: &Path, queries: &Arc<Vec<String>>, secs: u64) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let r = readers(socket, queries, &stop);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::SeqCst);
    let (lat, _) = r.join().unwrap();
    (lat.len() as f64 / t.elapsed().as_secs_f64(), pct(&lat, 99))
}

/// `INGEST_MODE=posters` (see the module doc).
fn posters(socket: &Path, queries: &Arc<Vec<String>>, db: &Path, bin: &Path) {
    let secs: u64 = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let count = || -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM videos WHERE id GLOB 'pst[0-9]*-*'", [], |r| r.get(0))
            .unwrap()
    };
    let before = count();
    let (rps0, p99_0) = feed_alone(socket, queries, 20);
    let stop = Arc::new(AtomicBool::new(false));
    let r = readers(socket, queries, &stop);
    let t = Instant::now();
    let handles: Vec<_> = (0..64u64)
        .map(|w| {
            let (socket, stop) = (socket.to_path_buf(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut videos = videofeed::store::demo::videos(10_000_000, 1000 + w);
                let (mut acked, mut refused, mut lat) = (0u64, Vec::new(), Vec::new());
                let mut k = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    k += 1;
                    let n = 1 + ((w * 7919 + k * 104_729) % 500) as usize;
                    let body: Vec<String> = videos
                        .by_ref()
                        .take(n)
                        .map(|v| {
                            serde_json::json!({"id": format!("pst{w}-{}", v.id), "title": v.title, "channel": v.channel,
                                "duration_seconds": v.duration_seconds, "thumbnail": v.thumbnail, "region": v.region})
                            .to_string()
                        })
                        .collect();
                    let t0 = Instant::now();
                    let status = request(&socket, "POST", "/feed/admin/videos", body.join("\n").as_bytes());
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    if status == 200 {
                        acked += n as u64;
                    } else {
                        refused.push(status);
                    }
                }
                (acked, refused, lat)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::SeqCst);
    let (mut acked, mut refused, mut lat) = (0u64, Vec::new(), Vec::new());
    for h in handles {
        let (a, r, l) = h.join().unwrap();
        acked += a;
        refused.extend(r);
        lat.extend(l);
    }
    let took = t.elapsed().as_secs_f64();
    let (feed, errors) = r.join().unwrap();
    lat.sort_by(f64::total_cmp);
    let (rps1, p99_1) = (feed.len() as f64 / took, pct(&feed, 99));
    let (rps2, p99_2) = feed_alone(socket, queries, 20);
    let found = count() - before;
    let m = metrics_text(bin, socket);
    println!("| phase | /feed req/s | /feed p99 ms | p99 vs alone | req/s vs alone |");
    println!("|---|---|---|---|---|");
    println!("| feed alone | {rps0:.0} | {p99_0:.2} | 1.00x | 1.00x |");
    println!(
        "| 64 posters, 1-500 new each, back to back | {rps1:.0} | {p99_1:.2} | **{:.2}x** | {:.2}x |",
        p99_1 / p99_0,
        rps1 / rps0
    );
    println!("| feed alone, again | {rps2:.0} | {p99_2:.2} | {:.2}x | {:.2}x |", p99_2 / p99_0, rps2 / rps0);
    println!();
    println!(
        "writes: {} requests, {} refused ({:?}), {acked} videos acknowledged ({:.0}/s), {found} found in the database; \
         write latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; commit to answer: max {:.1} ms, mean {:.2} ms; feed errors {errors}",
        lat.len(),
        refused.len(),
        refused.iter().take(5).collect::<Vec<_>>(),
        acked as f64 / took,
        pct(&lat, 50),
        pct(&lat, 99),
        lat.last().copied().unwrap_or(0.0),
        sample(&m, "videofeed_write_answer_delay_max_seconds") * 1000.0,
        sample(&m, "videofeed_write_answer_delay_seconds_sum") * 1000.0
            / sample(&m, "videofeed_write_answer_delay_seconds_count").max(1.0),
    );
}

/// Resident memory of `pid`, in MB.
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `INGEST_MODE=churn` or `sustained` (see the module doc).
fn long_run(socket: &Path, queries: &Arc<Vec<String>>, db: &Path, bin: &Path, pid: u32, churn: bool) {
    let minutes: u64 = std::env::var("MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let (rps0, p99_0) = feed_alone(socket, queries, 30);
    let hot = Arc::new(existing_videos(db, 100));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (socket, stop, hot) = (socket.to_path_buf(), Arc::clone(&stop), Arc::clone(&hot));
        std::thread::spawn(move || {
            let mut videos = videofeed::store::demo::videos(10_000_000, 77);
            let words = ["remix", "live", "lofi", "guide", "review", "tutorial", "cover", "vlog"];
            let (every, mut round, mut refused) = (Duration::from_millis(if churn { 100 } else { 500 }), 0usize, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                round += 1;
                let body: Vec<String> = if churn {
                    hot.iter()
                        .enumerate()
                        .map(|(k, v)| {
                            let mut v = v.clone();
                            let title = v["title"].as_str().unwrap_or("").to_owned();
                            v["title"] = serde_json::json!(format!("{title} {}", words[(round + k) % words.len()]));
                            v.to_string()
                        })
                        .collect()
                } else {
                    videos
                        .by_ref()
                        .take(500)
                        .map(|v| {
                            serde_json::json!({"id": format!("sus-{}", v.id), "title": v.title, "channel": v.channel,
                                "duration_seconds": v.duration_seconds, "thumbnail": v.thumbnail, "region": v.region})
                            .to_string()
                        })
                        .collect()
                };
                if request(&socket, "POST", "/feed/admin/videos", body.join("\n").as_bytes()) == 200 {
                    COUNT.fetch_add(body.len() as u64, Ordering::SeqCst);
                } else {
                    refused += 1;
                }
                while started.elapsed() < every && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            refused
        })
    };
    println!(
        "feed alone: {rps0:.0} req/s, p99 {p99_0:.2} ms; RSS {:.0} MB; then {} for {minutes} min",
        rss_mb(pid),
        if churn { "1,000 retitles/s over 100 hot videos" } else { "1,000 new videos/s" }
    );
    println!(
        "| minute | writes/s acknowledged | RSS MB | delta rows (max) | delta versions | compactions (hurried) | degraded seen | /feed req/s | /feed p99 ms | p99 vs alone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for minute in 1..=minutes {
        let stop_r = Arc::new(AtomicBool::new(false));
        let r = readers(socket, queries, &stop_r);
        COUNT.store(0, Ordering::SeqCst);
        let t = Instant::now();
        let (mut most, mut degraded) = (0.0f64, 0u32);
        while t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_secs(2));
            let m = metrics_text(bin, socket);
            most = most.max(sample(&m, "videofeed_rank_index_delta_rows"));
            degraded += u32::from(sample(&m, "videofeed_rank_index_compaction_behind") > 0.0);
        }
        stop_r.store(true, Ordering::SeqCst);
        let secs = t.elapsed().as_secs_f64();
        let (lat, _) = r.join().unwrap();
        let m = metrics_text(bin, socket);
        println!(
            "| {minute} | {:.0} | {:.0} | {most:.0} | {:.0} | {:.0} ({:.0}) | {degraded} of 30 samples | {:.0} | {:.2} | {:.2}x |",
            COUNT.load(Ordering::SeqCst) as f64 / secs,
            rss_mb(pid),
            sample(&m, "videofeed_rank_index_delta_versions"),
            sample(&m, "videofeed_rank_index_compactions_total"),
            sample(&m, "videofeed_rank_index_compactions_hurried_total"),
            lat.len() as f64 / secs,
            pct(&lat, 99),
            pct(&lat, 99) / p99_0
        );
    }
    stop.store(true, Ordering::SeqCst);
    let refused = writer.join().unwrap();
    println!("\nwrites refused: {refused}");
}
