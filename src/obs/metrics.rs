//! Process-wide counters for `/feed/metrics` (Prometheus text format 0.0.4)
//! and the live parts of `/feed/health`.
//!
//! Everything is a relaxed atomic bumped on the request path (a few
//! nanoseconds each); nothing is locked and nothing allocates until a scrape
//! renders the text. One instance per process ([`global`]): the workers, the
//! writer thread and the health thread all report into it. Routes and status
//! codes are fixed small sets, so label cardinality is bounded whatever
//! clients send. No I/O here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What a request asked for: the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /feed`.
    Feed,
    /// `GET /feed/health`.
    Health,
    /// `GET /feed/metrics`.
    Metrics,
    /// `GET /feed/openapi.json`.
    OpenApi,
    /// The write API under `/feed/admin/`.
    Admin,
    /// Anything else (answered 404).
    Other,
}

impl Route {
    const ALL: [Route; 6] = [Route::Feed, Route::Health, Route::Metrics, Route::OpenApi, Route::Admin, Route::Other];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Feed => "/feed",
            Route::Health => "/feed/health",
            Route::Metrics => "/feed/metrics",
            Route::OpenApi => "/feed/openapi.json",
            Route::Admin => "/feed/admin/videos",
            Route::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status codes counted one by one; anything else counts as `other`.
const STATUSES: [u16; 12] = [200, 304, 400, 401, 403, 404, 405, 413, 422, 429, 500, 503];

/// Upper bounds of the latency histogram buckets, in seconds (plus `+Inf`).
const LATENCY_BOUNDS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// A fixed-bucket histogram of durations.
#[derive(Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BOUNDS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            cumulative += self.buckets.get(i).map_or(0, |b| b.load(Relaxed));
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets.get(LATENCY_BOUNDS.len()).map_or(0, |b| b.load(Relaxed));
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        #[expect(clippy::cast_precision_loss, reason = "microsecond sums far below 2^52")]
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {}", self.count.load(Relaxed));
    }
}

/// The process's counters.
pub struct Metrics {
    started: Instant,
    requests: [[AtomicU64; STATUSES.len() + 1]; Route::ALL.len()],
    latency: [Histogram; Route::ALL.len()],
    rows: AtomicU64,
    slow: AtomicU64,
    busy: AtomicUsize,
    workers: AtomicUsize,
    busy_micros: AtomicU64,
    page_cache_hits: AtomicU64,
    /// Feed answers ranked by the rank index, by SQL, and those with typo corrections.
    ranked_index: AtomicU64,
    ranked_sql: AtomicU64,
    filtered_index: AtomicU64,
    filtered_sql: AtomicU64,
    tokenized_by_fts5: AtomicU64,
    /// Answers that dropped words to fill the page (word dropping), and those that tried but found nothing more.
    relaxed: AtomicU64,
    relaxed_empty: AtomicU64,
    browsed_region: AtomicU64,
    browsed_channel: AtomicU64,
    counted_index: AtomicU64,
    counted_sql: AtomicU64,
    /// Rankings by score class: one phrase, several phrases, several given up.
    walks: [AtomicU64; 3],
    prefix_memo_bytes: AtomicU64,
    /// Kept merges and classes evicted (least recently used) to make room for others.
    memo_evictions: AtomicU64,
    /// Prefixes read row by row through the forward index instead of being merged.
    prefix_reads: AtomicU64,
    memo_hits: AtomicU64,
    memo_misses: AtomicU64,
    compactions: AtomicU64,
    compactions_hurried: AtomicU64,
    compactions_urgent: AtomicU64,
    delta_repacks: AtomicU64,
    /// The rank index's delta rows and its compaction point, as last applied (what the
    /// writer slows down by: see `store::writer`).
    delta_rows_now: AtomicUsize,
    compact_point: AtomicUsize,
    /// Time the writer paused for the delta's compaction to catch up, in microseconds.
    writer_paused_us: AtomicU64,
    /// Index files found changed in place while mapped (the snapshot let go).
    index_file_damaged: AtomicU64,
    /// Database files renamed over the path whose history the index continued.
    index_carried_over: AtomicU64,
    /// Answers marked cacheable for LSCache, and answers the rate cap kept from it.
    lscache_admitted: AtomicU64,
    lscache_rate_limited: AtomicU64,
    singles_skipped: AtomicU64,
    classes_bytes: AtomicU64,
    corrected: AtomicU64,
    page_cache_misses: AtomicU64,
    queue_depth: AtomicUsize,
    queue_capacity: AtomicUsize,
    commits: Histogram,
    write_rows: AtomicU64,
    write_failures: AtomicU64,
    /// From a write's commit to its answer being queued for the web server.
    write_answer_delay: Histogram,
    write_answer_delay_max_us: AtomicU64,
    /// Write requests the poller holds for a worker (past VIDEOFEED_ADMIN_CONCURRENCY).
    writes_waiting_for_worker: AtomicUsize,
    /// Write requests queued for the writer whose answer follows the commit.
    writes_waiting_for_commit: AtomicUsize,
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// How a ranking walked a phrase's score classes (`videofeed_rank_index_class_walks_total`).
#[derive(Debug, Clone, Copy)]
pub enum Walk {
    /// One phrase, answered from its classes.
    OnePhrase = 0,
    /// Several phrases, answered by walking the rarest one's classes.
    SeveralPhrases = 1,
    /// Several phrases, given up for the row-by-row loop.
    SeveralGivenUp = 2,
}

/// The process's one set of counters.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// Counts a request as busy until dropped (see [`Metrics::busy`]).
pub struct Busy<'a>(&'a Metrics);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

/// The rank index delta's gauges beside its rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeltaGauges {
    /// Row versions held (superseded ones included).
    pub versions: usize,
    /// Postings held.
    pub postings: usize,
    /// Seconds since the first change the base does not hold (0: none).
    pub age_seconds: f64,
    /// Whether a compaction runs.
    pub compacting: bool,
    /// Whether the delta is past its bound (the compaction does not keep up).
    pub behind: bool,
}

/// Numbers only the caller knows at scrape time (database, caches), rendered with the counters.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Rows in `videos`, when the health thread has read it.
    pub database_rows: Option<i64>,
    /// Unix seconds of the last write, when known.
    pub last_write: Option<i64>,
    /// Whether the database can be read (the health answer's status).
    pub healthy: bool,
    /// Response cache lookups answered from it.
    pub cache_hits: u64,
    /// Response cache lookups that missed.
    pub cache_misses: u64,
    /// Response cache bytes held.
    pub cache_bytes: usize,
    /// The rank index's generation, when one is built.
    pub rank_index_generation: Option<i64>,
    /// Rows changed since the rank index's base snapshot (answered through its delta).
    pub rank_index_delta_rows: usize,
    /// (hits, misses) of the delta's phrase memo (see `RankIndex::delta_memo`).
    pub rank_index_delta_memo: (u64, u64),
    /// The delta's size, age and compaction (see `RankIndex::delta_state`).
    pub rank_index_delta: DeltaGauges,
    /// What the background jobs recorded, when the health thread has read it.
    pub jobs: Option<crate::obs::health::JobStats>,
    /// Seconds since the writer's newest heartbeat, when one was seen.
    pub data_age_seconds: Option<f64>,
    /// Whether `videofeed replica`'s follower runs, when the served file is a replica.
    pub replica_follower_up: Option<bool>,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            started: Instant::now(),
            requests: Default::default(),
            latency: Default::default(),
            rows: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            workers: AtomicUsize::new(0),
            busy_micros: AtomicU64::new(0),
            page_cache_hits: AtomicU64::new(0),
            ranked_index: AtomicU64::new(0),
            ranked_sql: AtomicU64::new(0),
            filtered_index: AtomicU64::new(0),
            filtered_sql: AtomicU64::new(0),
            tokenized_by_fts5: AtomicU64::new(0),
            relaxed: AtomicU64::new(0),
            relaxed_empty: AtomicU64::new(0),
            browsed_region: AtomicU64::new(0),
            browsed_channel: AtomicU64::new(0),
            counted_index: AtomicU64::new(0),
            counted_sql: AtomicU64::new(0),
            walks: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            prefix_memo_bytes: AtomicU64::new(0),
            memo_evictions: AtomicU64::new(0),
            prefix_reads: AtomicU64::new(0),
            memo_hits: AtomicU64::new(0),
            memo_misses: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            compactions_hurried: AtomicU64::new(0),
            compactions_urgent: AtomicU64::new(0),
            delta_repacks: AtomicU64::new(0),
            delta_rows_now: AtomicUsize::new(0),
            compact_point: AtomicUsize::new(0),
            writer_paused_us: AtomicU64::new(0),
            index_file_damaged: AtomicU64::new(0),
            index_carried_over: AtomicU64::new(0),
            lscache_admitted: AtomicU64::new(0),
            lscache_rate_limited: AtomicU64::new(0),
            singles_skipped: AtomicU64::new(0),
            classes_bytes: AtomicU64::new(0),
            corrected: AtomicU64::new(0),
            page_cache_misses: AtomicU64::new(0),
            queue_depth: AtomicUsize::new(0),
            queue_capacity: AtomicUsize::new(0),
            commits: Histogram::default(),
            write_rows: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            write_answer_delay: Histogram::default(),
            write_answer_delay_max_us: AtomicU64::new(0),
            writes_waiting_for_worker: AtomicUsize::new(0),
            writes_waiting_for_commit: AtomicUsize::new(0),
        }
    }

    /// Time since the process started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sets the number of worker threads.
    pub fn set_workers(&self, n: usize) {
        self.workers.store(n, Relaxed);
    }

    /// Workers busy with a request now, and workers in all.
    pub fn workers(&self) -> (usize, usize) {
        (self.busy.load(Relaxed), self.workers.load(Relaxed))
    }

    /// Marks a worker busy until the guard is dropped.
    pub fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Relaxed);
        Busy(self)
    }

    /// Records one answered request.
    pub fn record(&self, route: Route, status: u16, rows: usize, took: Duration, slow: bool) {
        let s = STATUSES.iter().position(|c| *c == status).unwrap_or(STATUSES.len());
        if let Some(counter) = self.requests.get(route.index()).and_then(|r| r.get(s)) {
            counter.fetch_add(1, Relaxed);
        }
        if let Some(h) = self.latency.get(route.index()) {
            h.observe(took);
        }
        self.rows.fetch_add(u64::try_from(rows).unwrap_or(0), Relaxed);
        self.busy_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
        if slow {
            self.slow.fetch_add(1, Relaxed);
        }
    }

    /// Requests answered for `route` with `status` so far.
    pub fn requests(&self, route: Route, status: u16) -> u64 {
        let s = STATUSES.iter().position(|c| *c == status).unwrap_or(STATUSES.len());
        self.requests.get(route.index()).and_then(|r| r.get(s)).map_or(0, |c| c.load(Relaxed))
    }

    /// Records which ranking computed a feed answer (not counting cache hits), and
    /// whether the typo correction changed the query.
    pub fn ranked(&self, by_index: bool, corrected: bool, filtered: bool) {
        let counter = if by_index { &self.ranked_index } else { &self.ranked_sql };
        counter.fetch_add(1, Relaxed);
        if filtered {
            let counter = if by_index { &self.filtered_index } else { &self.filtered_sql };
            counter.fetch_add(1, Relaxed);
        }
        if corrected {
            self.corrected.fetch_add(1, Relaxed);
        }
    }

    /// Counts a query tokenized by FTS5 instead of the Rust tokenizer (a code point
    /// `search::unicode61` cannot vouch for).
    pub fn tokenized_by_fts5(&self) {
        self.tokenized_by_fts5.fetch_add(1, Relaxed);
    }

    /// An answer's `total` counted by the rank index (`by_index`) or by SQL.
    pub fn counted(&self, by_index: bool) {
        if by_index { &self.counted_index } else { &self.counted_sql }.fetch_add(1, Relaxed);
    }

    /// A page of browsing without a query (a channel's, or a region's).
    pub fn browsed(&self, channel: bool) {
        if channel { &self.browsed_channel } else { &self.browsed_region }.fetch_add(1, Relaxed);
    }

    /// Counts an answer that tried word dropping: `added` when dropping words added rows.
    pub fn relaxed(&self, added: bool) {
        if added { &self.relaxed } else { &self.relaxed_empty }.fetch_add(1, Relaxed);
    }

    /// Counts a ranking by score class (`search::index::snapshot`).
    pub fn rank_walk(&self, kind: Walk) {
        if let Some(counter) = self.walks.get(kind as usize) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Rankings by score class so far: (one phrase, several phrases, several given up).
    pub fn class_walks(&self) -> [u64; 3] {
        [0, 1, 2].map(|i| self.walks.get(i).map_or(0, |c| c.load(Relaxed)))
    }

    /// Counts a kept merge or class index evicted to make room (`search::index::snapshot`).
    pub fn memo_eviction(&self) {
        self.memo_evictions.fetch_add(1, Relaxed);
    }

    /// Kept merges and class indexes evicted so far.
    pub fn memo_evictions(&self) -> u64 {
        self.memo_evictions.load(Relaxed)
    }

    /// Counts a prefix a ranking or a count read through the forward index, unmerged
    /// (`search::index::snapshot`).
    pub fn prefix_read(&self) {
        self.prefix_reads.fetch_add(1, Relaxed);
    }

    /// Counts a merge asked of the rank index's memo: `hit` when it was kept.
    pub fn memo_lookup(&self, hit: bool) {
        if hit { &self.memo_hits } else { &self.memo_misses }.fetch_add(1, Relaxed);
    }

    /// (hits, misses) of the rank index's memo so far.
    pub fn memo_lookups(&self) -> (u64, u64) {
        (self.memo_hits.load(Relaxed), self.memo_misses.load(Relaxed))
    }

    /// Counts a compaction started (the delta reached the compaction point), and
    /// whether it started at normal priority.
    pub fn compaction(&self, urgent: bool) {
        self.compactions.fetch_add(1, Relaxed);
        if urgent {
            self.compactions_urgent.fetch_add(1, Relaxed);
        }
    }

    /// The rank index's delta now holds `rows` rows; its compaction point is `point`.
    pub fn set_delta_pressure(&self, rows: usize, point: usize) {
        self.delta_rows_now.store(rows, Relaxed);
        self.compact_point.store(point, Relaxed);
    }

    /// (delta rows, compaction point) as last set (0, 0 without a rank index).
    pub fn delta_pressure(&self) -> (usize, usize) {
        (self.delta_rows_now.load(Relaxed), self.compact_point.load(Relaxed))
    }

    /// The writer paused `d` for the compaction to catch up.
    pub fn writer_paused(&self, d: Duration) {
        self.writer_paused_us.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Counts a low-priority compaction given up and started again at normal priority.
    pub fn compaction_hurried(&self) {
        self.compactions_hurried.fetch_add(1, Relaxed);
    }

    /// Counts a repack of the rank index's delta (its superseded versions dropped).
    pub fn delta_repacked(&self) {
        self.delta_repacks.fetch_add(1, Relaxed);
    }

    /// Repacks of the delta since the start.
    pub fn delta_repacks(&self) -> u64 {
        self.delta_repacks.load(Relaxed)
    }

    /// Counts an answer LSCache may store (`true`), or one the rate cap kept from it.
    pub fn lscache(&self, admitted: bool) {
        let counter = if admitted { &self.lscache_admitted } else { &self.lscache_rate_limited };
        counter.fetch_add(1, Relaxed);
    }

    /// Counts a replaced database file whose history the index continued (no rebuild).
    pub fn index_carried_over(&self) {
        self.index_carried_over.fetch_add(1, Relaxed);
    }

    /// Counts an index file found changed in place while mapped.
    pub fn index_file_damaged(&self) {
        self.index_file_damaged.fetch_add(1, Relaxed);
    }

    /// Counts one-phrase queries word dropping left unranked (a rarer one matched).
    pub fn singles_skipped(&self, n: usize) {
        self.singles_skipped.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Relaxed);
    }

    /// Records the bytes of score classes the current rank index keeps.
    pub fn classes(&self, bytes: usize) {
        self.classes_bytes.store(u64::try_from(bytes).unwrap_or(u64::MAX), Relaxed);
    }

    /// Bytes kept by the current rank index: (merged postings, score classes).
    pub fn memo_bytes(&self) -> (u64, u64) {
        (self.prefix_memo_bytes.load(Relaxed), self.classes_bytes.load(Relaxed))
    }

    /// Records the bytes of merged prefix postings the current rank index keeps.
    pub fn prefix_memo(&self, bytes: usize) {
        self.prefix_memo_bytes.store(u64::try_from(bytes).unwrap_or(u64::MAX), Relaxed);
    }

    /// Adds page cache hits and misses read off a worker's connection.
    pub fn page_cache(&self, hits: u64, misses: u64) {
        self.page_cache_hits.fetch_add(hits, Relaxed);
        self.page_cache_misses.fetch_add(misses, Relaxed);
    }

    /// Sets the write queue's capacity.
    pub fn set_queue_capacity(&self, n: usize) {
        self.queue_capacity.store(n, Relaxed);
    }

    /// A write's answer was queued `delay` after its commit ended.
    pub fn write_answered(&self, delay: Duration) {
        self.write_answer_delay.observe(delay);
        self.write_answer_delay_max_us.fetch_max(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The longest delay from a write's commit to its answer so far.
    pub fn write_answer_delay_max(&self) -> Duration {
        Duration::from_micros(self.write_answer_delay_max_us.load(Relaxed))
    }

    /// Write requests the poller holds now: waiting for a worker, and waiting for their commit.
    pub fn set_write_waits(&self, for_worker: usize, for_commit: usize) {
        self.writes_waiting_for_worker.store(for_worker, Relaxed);
        self.writes_waiting_for_commit.store(for_commit, Relaxed);
    }

    /// A job entered the write queue.
    pub fn queued(&self) {
        self.queue_depth.fetch_add(1, Relaxed);
    }

    /// The writer took a job off the queue.
    pub fn dequeued(&self) {
        let _ = self.queue_depth.fetch_update(Relaxed, Relaxed, |d| Some(d.saturating_sub(1)));
    }

    /// Jobs waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.queue_depth.load(Relaxed)
    }

    /// Records one group commit (or a failed one).
    pub fn commit(&self, took: Duration, rows: usize, ok: bool) {
        if ok {
            self.commits.observe(took);
            self.write_rows.fetch_add(u64::try_from(rows).unwrap_or(0), Relaxed);
        } else {
            self.write_failures.fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition of every counter, plus `extra`.
    pub fn render(&self, extra: &Extra) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let help = |out: &mut String, name: &str, kind: &str, text: &str| {
            let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
        };
        help(&mut out, "videofeed_build_info", "gauge", "The running version (always 1).");
        let _ = writeln!(out, "videofeed_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        help(&mut out, "videofeed_uptime_seconds", "gauge", "Seconds since the process started.");
        let _ = writeln!(out, "videofeed_uptime_seconds {:.3}", self.uptime().as_secs_f64());

        help(&mut out, "videofeed_requests_total", "counter", "Requests answered, by route and status.");
        for route in Route::ALL {
            for (i, counter) in self.requests.get(route.index()).into_iter().flatten().enumerate() {
                let n = counter.load(Relaxed);
                if n > 0 {
                    let status = STATUSES.get(i).map_or_else(|| "other".to_owned(), u16::to_string);
                    let _ = writeln!(
                        out,
                        "videofeed_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                        route.as_str()
                    );
                }
            }
        }
        help(
            &mut out,
            "videofeed_request_duration_seconds",
            "histogram",
            "Time from a complete request to its answer, by route.",
        );
        for route in Route::ALL {
            if let Some(h) = self.latency.get(route.index()).filter(|h| h.count() > 0) {
                h.render(&mut out, "videofeed_request_duration_seconds", &format!("route=\"{}\"", route.as_str()));
            }
        }
        help(
            &mut out,
            "videofeed_rows_returned_total",
            "counter",
            "Videos returned by searches (cache hits not counted).",
        );
        let _ = writeln!(out, "videofeed_rows_returned_total {}", self.rows.load(Relaxed));
        help(&mut out, "videofeed_slow_requests_total", "counter", "Requests over VIDEOFEED_SLOW_MS (logged at warn).");
        let _ = writeln!(out, "videofeed_slow_requests_total {}", self.slow.load(Relaxed));

        let (busy, total) = self.workers();
        help(&mut out, "videofeed_workers", "gauge", "Worker threads.");
        let _ = writeln!(out, "videofeed_workers {total}");
        help(&mut out, "videofeed_workers_busy", "gauge", "Worker threads answering a request now.");
        let _ = writeln!(out, "videofeed_workers_busy {busy}");
        help(
            &mut out,
            "videofeed_worker_busy_seconds_total",
            "counter",
            "Worker time spent answering; utilisation = rate(this) / videofeed_workers.",
        );
        #[expect(clippy::cast_precision_loss, reason = "microsecond sums far below 2^52")]
        let busy_secs = self.busy_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "videofeed_worker_busy_seconds_total {busy_secs}");

        help(
            &mut out,
            "videofeed_searches_total",
            "counter",
            "Feed answers computed (cache hits not counted), by the ranking that computed them.",
        );
        for (path, counter) in [("index", &self.ranked_index), ("sql", &self.ranked_sql)] {
            let _ = writeln!(out, "videofeed_searches_total{{path=\"{path}\"}} {}", counter.load(Relaxed));
        }
        help(
            &mut out,
            "videofeed_filtered_searches_total",
            "counter",
            "Of those, answers to filtered or re-ordered queries (channel, durations, sort), by ranking.",
        );
        for (path, counter) in [("index", &self.filtered_index), ("sql", &self.filtered_sql)] {
            let _ = writeln!(out, "videofeed_filtered_searches_total{{path=\"{path}\"}} {}", counter.load(Relaxed));
        }
        help(
            &mut out,
            "videofeed_tokenizer_fallbacks_total",
            "counter",
            "Queries tokenized by FTS5 because the Rust tokenizer could not vouch for a code point.",
        );
        let _ = writeln!(out, "videofeed_tokenizer_fallbacks_total {}", self.tokenized_by_fts5.load(Relaxed));
        help(
            &mut out,
            "videofeed_totals_counted_total",
            "counter",
            "Answers whose total (matching videos, up to 10,000) was counted, by how (by=index, sql).",
        );
        for (by, counter) in [("index", &self.counted_index), ("sql", &self.counted_sql)] {
            let _ = writeln!(out, "videofeed_totals_counted_total{{by=\"{by}\"}} {}", counter.load(Relaxed));
        }
        help(
            &mut out,
            "videofeed_browse_pages_total",
            "counter",
            "Pages answered without a query (sort=recent|popular or channel alone), by what was browsed (by=region, channel).",
        );
        for (by, counter) in [("region", &self.browsed_region), ("channel", &self.browsed_channel)] {
            let _ = writeln!(out, "videofeed_browse_pages_total{{by=\"{by}\"}} {}", counter.load(Relaxed));
        }
        help(
            &mut out,
            "videofeed_relaxed_searches_total",
            "counter",
            "Answers whose words together filled less than the page and that dropped words (word dropping), by outcome.",
        );
        for (outcome, counter) in [("added", &self.relaxed), ("nothing_more", &self.relaxed_empty)] {
            let _ =
                writeln!(out, "videofeed_relaxed_searches_total{{outcome=\"{outcome}\"}} {}", counter.load(Relaxed));
        }
        help(
            &mut out,
            "videofeed_rank_index_class_walks_total",
            "counter",
            "Rankings answered by walking a phrase's score classes best first (path=one_phrase, several_phrases), or given up for the row-by-row loop (several_given_up).",
        );
        for (path, counter) in ["one_phrase", "several_phrases", "several_given_up"].iter().zip(&self.walks) {
            let _ =
                writeln!(out, "videofeed_rank_index_class_walks_total{{path=\"{path}\"}} {}", counter.load(Relaxed));
        }
        help(
            &mut out,
            "videofeed_prefix_memo_bytes",
            "gauge",
            "Bytes of merged prefix postings the rank index keeps (short prefixes merged once).",
        );
        let _ = writeln!(out, "videofeed_prefix_memo_bytes {}", self.prefix_memo_bytes.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_classes_bytes",
            "gauge",
            "Bytes of score classes (common phrases' rows grouped by what their score depends on) the rank index keeps.",
        );
        let _ = writeln!(out, "videofeed_rank_index_classes_bytes {}", self.classes_bytes.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_memo_evictions_total",
            "counter",
            "Kept prefix merges, phrase matches and score classes evicted (least recently used) to make room for others.",
        );
        let _ = writeln!(out, "videofeed_rank_index_memo_evictions_total {}", self.memo_evictions.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_prefix_reads_total",
            "counter",
            "Rankings and counts that read a prefix (or a phrase of several words) of many rows row by row, from the rows' own words, instead of merging its postings.",
        );
        let _ = writeln!(out, "videofeed_rank_index_prefix_reads_total {}", self.prefix_reads.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_memo_lookups_total",
            "counter",
            "Expensive merges (prefixes over several terms, phrases of several tokens) asked of the rank index's memo, by result (hit: kept from an earlier answer).",
        );
        for (result, counter) in [("hit", &self.memo_hits), ("miss", &self.memo_misses)] {
            let _ = writeln!(
                out,
                "videofeed_rank_index_memo_lookups_total{{result=\"{result}\"}} {}",
                counter.load(Relaxed)
            );
        }
        help(
            &mut out,
            "videofeed_rank_index_compactions_total",
            "counter",
            "Rebuilds of the rank index's base started because its delta reached the compaction point.",
        );
        let _ = writeln!(out, "videofeed_rank_index_compactions_total {}", self.compactions.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_compactions_urgent_total",
            "counter",
            "Compactions started at normal priority: the delta filled the compaction point within 2 minutes (sustained writes), is past twice it, or one was hurried recently.",
        );
        let _ =
            writeln!(out, "videofeed_rank_index_compactions_urgent_total {}", self.compactions_urgent.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_compactions_hurried_total",
            "counter",
            "Low-priority compactions the writes outpaced (the delta passed twice the compaction point): given up and started again at normal priority.",
        );
        let _ =
            writeln!(out, "videofeed_rank_index_compactions_hurried_total {}", self.compactions_hurried.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_delta_repacks_total",
            "counter",
            "Times the delta dropped its superseded row versions (rows rewritten again and again).",
        );
        let _ = writeln!(out, "videofeed_rank_index_delta_repacks_total {}", self.delta_repacks.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_file_damaged_total",
            "counter",
            "Times the mapped rank index file was found truncated or written in place (answers went to SQL, the index was built again).",
        );
        let _ = writeln!(out, "videofeed_rank_index_file_damaged_total {}", self.index_file_damaged.load(Relaxed));
        help(
            &mut out,
            "videofeed_lscache_cacheable_total",
            "counter",
            "Feed answers marked cacheable for LiteSpeed's cache (VIDEOFEED_LSCACHE), and those the box's rate cap kept from it (VIDEOFEED_LSCACHE_RATE).",
        );
        let _ = writeln!(
            out,
            "videofeed_lscache_cacheable_total{{result=\"admitted\"}} {}",
            self.lscache_admitted.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "videofeed_lscache_cacheable_total{{result=\"rate_limited\"}} {}",
            self.lscache_rate_limited.load(Relaxed)
        );
        help(
            &mut out,
            "videofeed_rank_index_carried_over_total",
            "counter",
            "Database files renamed over the path (replica swaps, restored copies) whose history the rank index continued from the change log instead of rebuilding.",
        );
        let _ = writeln!(out, "videofeed_rank_index_carried_over_total {}", self.index_carried_over.load(Relaxed));
        help(
            &mut out,
            "videofeed_rank_index_sigbus_caught_total",
            "counter",
            "Reads past the end of a mapped rank index file that shrank under the process, caught instead of ending it.",
        );
        let _ = writeln!(out, "videofeed_rank_index_sigbus_caught_total {}", crate::sys::sigbus_caught());
        help(
            &mut out,
            "videofeed_relaxed_singles_skipped_total",
            "counter",
            "One-word queries word dropping did not rank because a rarer one matched (its best row scores at least as high).",
        );
        let _ = writeln!(out, "videofeed_relaxed_singles_skipped_total {}", self.singles_skipped.load(Relaxed));
        help(&mut out, "videofeed_typo_corrections_total", "counter", "Feed answers whose query was typo-corrected.");
        let _ = writeln!(out, "videofeed_typo_corrections_total {}", self.corrected.load(Relaxed));
        let (hits, misses) = (self.page_cache_hits.load(Relaxed), self.page_cache_misses.load(Relaxed));
        help(&mut out, "videofeed_sqlite_page_cache_hits_total", "counter", "SQLite page cache hits (all workers).");
        let _ = writeln!(out, "videofeed_sqlite_page_cache_hits_total {hits}");
        help(
            &mut out,
            "videofeed_sqlite_page_cache_misses_total",
            "counter",
            "SQLite page cache misses (all workers).",
        );
        let _ = writeln!(out, "videofeed_sqlite_page_cache_misses_total {misses}");
        help(&mut out, "videofeed_sqlite_page_cache_hit_ratio", "gauge", "hits / (hits + misses) since start.");
        #[expect(clippy::cast_precision_loss, reason = "a ratio")]
        let ratio = if hits + misses == 0 { 1.0 } else { hits as f64 / (hits + misses) as f64 };
        let _ = writeln!(out, "videofeed_sqlite_page_cache_hit_ratio {ratio:.6}");

        help(
            &mut out,
            "videofeed_response_cache_hits_total",
            "counter",
            "Feed answers served from the response cache.",
        );
        let _ = writeln!(out, "videofeed_response_cache_hits_total {}", extra.cache_hits);
        help(&mut out, "videofeed_response_cache_misses_total", "counter", "Feed answers searched.");
        let _ = writeln!(out, "videofeed_response_cache_misses_total {}", extra.cache_misses);
        help(&mut out, "videofeed_response_cache_bytes", "gauge", "Bytes the response cache holds.");
        let _ = writeln!(out, "videofeed_response_cache_bytes {}", extra.cache_bytes);

        help(&mut out, "videofeed_writer_queue_depth", "gauge", "Write jobs waiting for the single writer.");
        let _ = writeln!(out, "videofeed_writer_queue_depth {}", self.queue_depth());
        help(&mut out, "videofeed_writer_queue_capacity", "gauge", "VIDEOFEED_WRITE_QUEUE (0 = write API off).");
        let _ = writeln!(out, "videofeed_writer_queue_capacity {}", self.queue_capacity.load(Relaxed));
        help(&mut out, "videofeed_writer_commit_seconds", "histogram", "Group commit time of the single writer.");
        self.commits.render(&mut out, "videofeed_writer_commit_seconds", "");
        help(&mut out, "videofeed_writer_rows_total", "counter", "Rows in committed write jobs.");
        let _ = writeln!(out, "videofeed_writer_rows_total {}", self.write_rows.load(Relaxed));
        help(&mut out, "videofeed_writer_failures_total", "counter", "Group commits that failed (nothing written).");
        let _ = writeln!(out, "videofeed_writer_failures_total {}", self.write_failures.load(Relaxed));
        help(
            &mut out,
            "videofeed_writer_paused_seconds_total",
            "counter",
            "Time the writer paused between group commits because the rank index's delta was past twice its compaction point (writes slow down until the compaction catches up).",
        );
        #[expect(clippy::cast_precision_loss, reason = "microsecond sums far below 2^52")]
        let paused = self.writer_paused_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "videofeed_writer_paused_seconds_total {paused}");
        help(
            &mut out,
            "videofeed_write_answer_delay_seconds",
            "histogram",
            "From a write's commit to its answer being sent (the poller answers writes, woken by the writer).",
        );
        self.write_answer_delay.render(&mut out, "videofeed_write_answer_delay_seconds", "");
        help(
            &mut out,
            "videofeed_write_answer_delay_max_seconds",
            "gauge",
            "The longest delay from a write's commit to its answer since the start.",
        );
        let _ =
            writeln!(out, "videofeed_write_answer_delay_max_seconds {}", self.write_answer_delay_max().as_secs_f64());
        help(
            &mut out,
            "videofeed_write_requests_waiting",
            "gauge",
            "Write requests held by the poller: for a worker (past VIDEOFEED_ADMIN_CONCURRENCY) or for their commit.",
        );
        let _ = writeln!(
            out,
            "videofeed_write_requests_waiting{{for=\"worker\"}} {}",
            self.writes_waiting_for_worker.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "videofeed_write_requests_waiting{{for=\"commit\"}} {}",
            self.writes_waiting_for_commit.load(Relaxed)
        );

        help(&mut out, "videofeed_database_up", "gauge", "1 when the database can be read (as /feed/health).");
        let _ = writeln!(out, "videofeed_database_up {}", u8::from(extra.healthy));
        if let Some(rows) = extra.database_rows {
            help(&mut out, "videofeed_database_videos", "gauge", "Rows in the videos table.");
            let _ = writeln!(out, "videofeed_database_videos {rows}");
        }
        if let Some(t) = extra.last_write.filter(|t| *t > 0) {
            help(&mut out, "videofeed_database_last_write_timestamp_seconds", "gauge", "Unix time of the last write.");
            let _ = writeln!(out, "videofeed_database_last_write_timestamp_seconds {t}");
        }
        if let Some(jobs) = &extra.jobs {
            help(
                &mut out,
                "videofeed_thumbnails_checked",
                "gauge",
                "Videos with a thumbnail check (check-thumbnails).",
            );
            let _ = writeln!(out, "videofeed_thumbnails_checked {}", jobs.thumbnails_checked);
            help(&mut out, "videofeed_thumbnails_broken", "gauge", "Checked thumbnails found broken.");
            let _ = writeln!(out, "videofeed_thumbnails_broken {}", jobs.thumbnails_broken);
            help(
                &mut out,
                "videofeed_thumbnails_last_check_timestamp_seconds",
                "gauge",
                "Unix time of the newest thumbnail check (0 = never): alert when it stops moving.",
            );
            let _ = writeln!(
                out,
                "videofeed_thumbnails_last_check_timestamp_seconds {}",
                jobs.thumbnails_last_checked_unix
            );
            help(
                &mut out,
                "videofeed_thumbnail_run_stopped",
                "gauge",
                "1 when the last thumbnail check run stopped before recording everything (no answer from most hosts, or the hiding cap); /feed/health says why.",
            );
            let _ = writeln!(
                out,
                "videofeed_thumbnail_run_stopped {}",
                u8::from(jobs.thumbnails_last_run_stopped.is_some())
            );
            help(&mut out, "videofeed_channels_known", "gauge", "Channels the enrichment source knows.");
            let _ = writeln!(out, "videofeed_channels_known {}", jobs.channels_known);
        }
        if let Some(age) = extra.data_age_seconds {
            help(
                &mut out,
                "videofeed_data_age_seconds",
                "gauge",
                "Seconds since the writer's newest heartbeat in the served data (a replica's staleness).",
            );
            let _ = writeln!(out, "videofeed_data_age_seconds {age}");
        }
        if let Some(up) = extra.replica_follower_up {
            help(
                &mut out,
                "videofeed_replica_follower_up",
                "gauge",
                "1 while videofeed replica's Litestream follower runs for the served file.",
            );
            let _ = writeln!(out, "videofeed_replica_follower_up {}", u8::from(up));
        }
        if let Some((in_use, free)) = crate::sys::heap_stats() {
            help(
                &mut out,
                "videofeed_heap_bytes",
                "gauge",
                "The C heap (glibc malloc, all arenas): bytes in use, and bytes freed but still held by the process.",
            );
            let _ = writeln!(out, "videofeed_heap_bytes{{state=\"in_use\"}} {in_use}");
            let _ = writeln!(out, "videofeed_heap_bytes{{state=\"free\"}} {free}");
        }
        help(&mut out, "videofeed_rank_index_ready", "gauge", "1 when the in-memory rank index is built.");
        let _ = writeln!(out, "videofeed_rank_index_ready {}", u8::from(extra.rank_index_generation.is_some()));
        if let Some(generation) = extra.rank_index_generation {
            help(
                &mut out,
                "videofeed_rank_index_generation",
                "gauge",
                "The database generation the rank index answers at (its base snapshot plus the delta since).",
            );
            let _ = writeln!(out, "videofeed_rank_index_generation {generation}");
            help(
                &mut out,
                "videofeed_rank_index_delta_rows",
                "gauge",
                "Rows changed since the rank index's base snapshot; a rebuild starts past 20,000.",
            );
            let _ = writeln!(out, "videofeed_rank_index_delta_rows {}", extra.rank_index_delta_rows);
            let d = extra.rank_index_delta;
            help(
                &mut out,
                "videofeed_rank_index_delta_versions",
                "gauge",
                "Row versions the delta holds, superseded ones included (at most about twice its rows plus 1,024).",
            );
            let _ = writeln!(out, "videofeed_rank_index_delta_versions {}", d.versions);
            help(&mut out, "videofeed_rank_index_delta_postings", "gauge", "Postings the delta holds.");
            let _ = writeln!(out, "videofeed_rank_index_delta_postings {}", d.postings);
            help(
                &mut out,
                "videofeed_rank_index_delta_age_seconds",
                "gauge",
                "Seconds since the first change the rank index's base does not hold (0 = none).",
            );
            let _ = writeln!(out, "videofeed_rank_index_delta_age_seconds {}", d.age_seconds);
            help(
                &mut out,
                "videofeed_rank_index_compacting",
                "gauge",
                "1 while a compaction (a rebuild of the base) runs.",
            );
            let _ = writeln!(out, "videofeed_rank_index_compacting {}", u8::from(d.compacting));
            help(
                &mut out,
                "videofeed_rank_index_compaction_behind",
                "gauge",
                "1 when the delta is past its bound (4x the compaction point): compaction is not keeping up with the writes; /feed/health says degraded.",
            );
            let _ = writeln!(out, "videofeed_rank_index_compaction_behind {}", u8::from(d.behind));
            let (hits, misses) = extra.rank_index_delta_memo;
            help(
                &mut out,
                "videofeed_rank_index_delta_memo_hits_total",
                "counter",
                "Phrases whose delta rows were already merged at the same generation (by an earlier ranking).",
            );
            let _ = writeln!(out, "videofeed_rank_index_delta_memo_hits_total {hits}");
            help(
                &mut out,
                "videofeed_rank_index_delta_memo_misses_total",
                "counter",
                "Phrases whose delta rows a ranking merged (the first at each generation).",
            );
            let _ = writeln!(out, "videofeed_rank_index_delta_memo_misses_total {misses}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_routes_statuses_and_buckets() {
        let m = Metrics::new();
        m.set_workers(4);
        m.record(Route::Feed, 200, 24, Duration::from_micros(300), false);
        m.record(Route::Feed, 200, 10, Duration::from_millis(30), false);
        m.record(Route::Feed, 400, 0, Duration::from_micros(50), false);
        m.record(Route::Other, 418, 0, Duration::from_micros(50), true);
        m.commit(Duration::from_millis(2), 10, true);
        m.queued();
        m.queued();
        m.dequeued();
        let text = m.render(&Extra { database_rows: Some(609), healthy: true, ..Extra::default() });
        assert!(text.contains("videofeed_requests_total{route=\"/feed\",status=\"200\"} 2\n"));
        assert!(text.contains("videofeed_requests_total{route=\"/feed\",status=\"400\"} 1\n"));
        assert!(text.contains("videofeed_requests_total{route=\"other\",status=\"other\"} 1\n"));
        assert!(text.contains("videofeed_request_duration_seconds_bucket{route=\"/feed\",le=\"0.0005\"} 2\n"));
        assert!(text.contains("videofeed_request_duration_seconds_bucket{route=\"/feed\",le=\"0.025\"} 2\n"));
        assert!(text.contains("videofeed_request_duration_seconds_bucket{route=\"/feed\",le=\"0.05\"} 3\n"));
        assert!(text.contains("videofeed_request_duration_seconds_bucket{route=\"/feed\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("videofeed_request_duration_seconds_count{route=\"/feed\"} 3\n"));
        assert!(text.contains("videofeed_rows_returned_total 34\n"));
        assert!(text.contains("videofeed_slow_requests_total 1\n"));
        assert!(text.contains("videofeed_workers 4\n"));
        assert!(text.contains("videofeed_writer_queue_depth 1\n"));
        assert!(text.contains("videofeed_writer_commit_seconds_count 1\n"));
        assert!(text.contains("videofeed_database_videos 609\n"));
        // Every sample line belongs to a declared metric family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")) || text.contains(&format!("# TYPE {name} ")), "{line}");
        }
    }

    #[test]
    fn busy_guard_counts_and_releases() {
        let m = Metrics::new();
        {
            let _a = m.busy();
            let _b = m.busy();
            assert_eq!(m.workers().0, 2);
        }
        assert_eq!(m.workers().0, 0);
    }
}
