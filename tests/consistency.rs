//! One answer whatever path computes it (issues 13 and 29), as a property: random
//! feed queries (words, prefixes, typos, filters, sorts, offsets, regions) against
//! one database, answered by three real servers and the `query` command,
//! interleaved with random writes (new videos, changed titles, regions, thumbnails
//! and dates, deletes, thumbnail checks, column-only updates of view counts,
//! durations and dates). Every answer must be byte-identical:
//! - `cached`: rank index on, response cache on (asked twice: computed, then cached);
//! - `sql`: rank index off, cache off;
//! - `index`: rank index on, cache off;
//! - every fifth query also through `videofeed query`.
//!
//! Queries of two or more words that fill less than the page drop words (issue
//! 19), some ask for highlights, some are typed in full-width forms; half of the
//! words are among the eight most common, and a fixed sweep of those in pairs and
//! triples follows the random cases.
//!
//! It runs twice (issue 29): with the shipped thresholds on 100,000 demo videos,
//! where the common words pass the 20,000 rows at which the fast paths start, and
//! with every threshold at its minimum on 4,000 (`VIDEOFEED_TEST_THRESHOLDS=min`,
//! read only by test builds: see `search::index::thresholds`). Each run proves from
//! the servers' counters that every path answered many times: the score-class walks
//! (`class_walks_total{path}`), the memo, the delta's memo, word dropping and its
//! rarest-single rule, corrections and, at the minimum, compactions. The counts are
//! written to `target/consistency-*.txt`, which `.ci/run` prints.
//!
//! The rank index answers only when its snapshot is of the current generation, so
//! after some writes the test waits for it (a `Settle` step); the metric
//! `videofeed_searches_total{path="index"}` proves that it really answered.
//! Cases: `VIDEOFEED_PROPTEST_CASES` (default 12; `.ci/run` sets it).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::util::{Server, TestDir, TestResult, index_answers, metric, run, send, wait_index_current};

const TOKEN: &str = "consistency-token";
const REGIONS: [&str; 6] = ["US", "DE", "GB", "JP", "BR", "ZZ"];
const STORED_REGIONS: [&str; 5] = ["US", "DE", "GB", "GLOBAL", "FR"];

/// How a query word is made from a known word.
#[derive(Debug, Clone)]
enum Form {
    Whole,
    /// The first n characters (a prefix when last).
    Prefix(usize),
    /// One typo at a position: 0 swap, 1 drop, 2 double, 3 replace.
    Typo(u8, usize),
    /// Typed on a CJK keyboard: full-width letters and digits (NFKC folds them back).
    FullWidth,
}

#[derive(Debug, Clone)]
struct QuerySpec {
    words: Vec<(usize, Form)>,
    region: usize,
    limit: u32,
    offset: u32,
    channel: Option<usize>,
    min_duration: Option<i64>,
    max_duration: Option<i64>,
    sort: u8,
    highlight: bool,
}

#[derive(Debug, Clone)]
struct VideoSpec {
    /// Some: an existing video (index into the known ids); None: a new one.
    existing: Option<usize>,
    title: Vec<usize>,
    channel: usize,
    region: usize,
    duration: i64,
    thumbnail: u8,
    published: Option<(i64, i32)>,
    views: i64,
}

#[derive(Debug, Clone)]
enum Step {
    Query(QuerySpec),
    Upsert(Vec<VideoSpec>),
    Delete(usize),
    /// A thumbnail check of an existing video: (video, broken, of its current URL).
    Check(usize, bool, bool),
    /// Only the columns filters and orders read change, as a view-count updater
    /// does: (video, view count, duration, published_at as Unix seconds or NULL).
    Columns(usize, i64, i64, Option<i64>),
    Settle,
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        4 => Just(Form::Whole),
        2 => (1usize..5).prop_map(Form::Prefix),
        3 => (0u8..4, 0usize..12).prop_map(|(k, at)| Form::Typo(k, at)),
        1 => Just(Form::FullWidth),
    ]
}

/// A word of the vocabulary (most frequent first): one of the eight most common
/// half of the time, so queries of several words reach the paths that start past a
/// size (score classes, walks, the memo).
fn word(words: usize) -> impl Strategy<Value = usize> {
    prop_oneof![1 => 0..words.min(8), 1 => 0..words]
}

fn query(words: usize, channels: usize) -> impl Strategy<Value = QuerySpec> {
    (
        prop_oneof![4 => Just(1usize), 2 => Just(2usize), 1 => Just(3usize), 1 => Just(4usize)]
            .prop_flat_map(move |n| proptest::collection::vec((word(words), form()), n)),
        0..REGIONS.len(),
        prop_oneof![Just(1u32), Just(3), Just(10), Just(24), 1u32..40],
        prop_oneof![3 => Just(0u32), 2 => 0u32..40],
        proptest::option::weighted(0.15, 0..channels),
        proptest::option::weighted(0.15, 0i64..900),
        proptest::option::weighted(0.15, 300i64..4000),
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(words, region, limit, offset, channel, min_duration, max_duration, sort, highlight)| {
            QuerySpec {
                words,
                region,
                limit,
                offset,
                channel,
                min_duration,
                max_duration: max_duration.map(|m| m.max(min_duration.unwrap_or(0))),
                sort,
                highlight,
            }
        })
}

fn video(words: usize, channels: usize) -> impl Strategy<Value = VideoSpec> {
    (
        // Half of the rewrites hit a hot set of three videos (issue 33: the delta's
        // superseded versions pile up, and the repack drops them).
        proptest::option::weighted(0.5, prop_oneof![0usize..10_000, 0usize..3]),
        proptest::collection::vec(0..words, 1..6),
        0..channels,
        0..STORED_REGIONS.len(),
        0i64..5000,
        0u8..3,
        proptest::option::of((1_500_000_000i64..1_800_000_000, -720i32..=720)),
        0i64..1_000_000,
    )
        .prop_map(|(existing, title, channel, region, duration, thumbnail, published, views)| VideoSpec {
            existing,
            title,
            channel,
            region,
            duration,
            thumbnail,
            published,
            views,
        })
}

fn steps(words: usize, channels: usize) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            10 => query(words, channels).prop_map(Step::Query),
            2 => proptest::collection::vec(video(words, channels), 1..4).prop_map(Step::Upsert),
            1 => (0usize..10_000).prop_map(Step::Delete),
            1 => (0usize..10_000, any::<bool>(), any::<bool>()).prop_map(|(v, b, c)| Step::Check(v, b, c)),
            2 => (0usize..10_000, 0i64..5_000_000, 0i64..4000, proptest::option::weighted(0.8, 1_500_000_000i64..1_800_000_000))
                .prop_map(|(v, views, d, p)| Step::Columns(v, views, d, p)),
            2 => Just(Step::Settle),
        ],
        4..20,
    )
}

/// The word with one typo of kind `k` at position `at` (wrapped to the word's length).
fn typo(word: &str, k: u8, at: usize) -> String {
    let mut c: Vec<char> = word.chars().collect();
    let i = at % c.len();
    match k {
        0 if c.len() > 1 => {
            let j = if i + 1 < c.len() { i + 1 } else { i - 1 };
            c.swap(i, j);
        }
        1 if c.len() > 1 => {
            c.remove(i);
        }
        2 => c.insert(i, c[i]),
        _ => c[i] = if c[i] == 'z' { 'q' } else { 'z' },
    }
    c.into_iter().collect()
}

struct Rig {
    db: PathBuf,
    cached: Server,
    sql: Server,
    index: Server,
    words: Vec<String>,
    channels: Vec<String>,
    ids: Vec<String>,
    next_id: usize,
    queries: usize,
    corrected: usize,
    relaxed: usize,
    filtered: usize,
    nonempty: usize,
    column_writes: usize,
    _dirs: Vec<TestDir>,
}

impl Rig {
    fn uri(&self, q: &QuerySpec) -> (String, Vec<String>) {
        let words: Vec<String> =
            q.words
                .iter()
                .map(|(w, form)| {
                    let word = &self.words[w % self.words.len()];
                    match form {
                        Form::Whole => word.clone(),
                        Form::Prefix(n) => word.chars().take(*n + 1).collect(),
                        Form::Typo(k, at) => typo(word, *k, *at),
                        Form::FullWidth => word
                            .chars()
                            .map(|c| {
                                if c.is_ascii_alphanumeric() {
                                    char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
                                } else {
                                    c
                                }
                            })
                            .collect(),
                    }
                })
                .collect();
        let mut params = vec![
            ("q", words.join(" ")),
            ("region", REGIONS[q.region].to_owned()),
            ("limit", q.limit.to_string()),
            ("offset", q.offset.to_string()),
        ];
        if let Some(c) = q.channel {
            params.push(("channel", self.channels[c % self.channels.len()].clone()));
        }
        if let Some(m) = q.min_duration {
            params.push(("min_duration", m.to_string()));
        }
        if let Some(m) = q.max_duration {
            params.push(("max_duration", m.to_string()));
        }
        if q.sort > 0 {
            params.push(("sort", ["relevance", "recent", "popular"][usize::from(q.sort - 1)].to_owned()));
        }
        if q.highlight {
            params.push(("highlight", "1".to_owned()));
        }
        let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
        let mut args = vec!["query".to_owned(), "--db".to_owned(), self.db.display().to_string()];
        for (name, value) in &params {
            args.push(format!("--{}", name.replace('_', "-")));
            args.push(value.clone());
        }
        (format!("/feed?{qs}"), args)
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match step {
            Step::Query(q) => self.check_query(q),
            Step::Upsert(videos) => {
                // One line per id: a batch naming an id twice is (rightly) refused.
                let mut seen = std::collections::HashSet::new();
                let lines: Vec<String> = videos
                    .iter()
                    .map(|v| self.line(v))
                    .filter(|(id, _)| seen.insert(id.clone()))
                    .map(|(_, l)| l)
                    .collect();
                let r = send(&self.cached, "POST", "/feed/admin/videos", &auth(), lines.join("\n").as_bytes());
                prop_assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
                Ok(())
            }
            Step::Delete(i) if !self.ids.is_empty() => {
                let id = self.ids.swap_remove(i % self.ids.len());
                let r = send(&self.cached, "DELETE", &format!("/feed/admin/videos/{id}"), &auth(), b"");
                prop_assert!(matches!(r.status(), 200 | 404), "{}", r.status());
                Ok(())
            }
            Step::Check(i, broken, current) if !self.ids.is_empty() => {
                let id = &self.ids[i % self.ids.len()];
                let conn = rusqlite::Connection::open(&self.db).map_err(fail)?;
                conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(fail)?;
                let url = if *current {
                    "(SELECT thumbnail FROM videos WHERE id = ?1)"
                } else {
                    "'https://img.example/t1.jpg'"
                };
                conn.execute(
                    &format!(
                        "INSERT OR REPLACE INTO thumbnail_checks (video_id, url, ok, status, checked_at)
                         SELECT ?1, {url}, ?2, 404, 1 WHERE EXISTS (SELECT 1 FROM videos WHERE id = ?1)"
                    ),
                    rusqlite::params![id, i64::from(!*broken)],
                )
                .map_err(fail)?;
                Ok(())
            }
            Step::Columns(i, views, duration, published) if !self.ids.is_empty() => {
                let id = &self.ids[i % self.ids.len()];
                let conn = rusqlite::Connection::open(&self.db).map_err(fail)?;
                conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(fail)?;
                conn.execute(
                    "UPDATE videos SET view_count = ?2, duration_seconds = ?3, published_at = ?4 WHERE id = ?1",
                    rusqlite::params![id, views, duration, published.map(videofeed::timefmt::rfc3339)],
                )
                .map_err(fail)?;
                self.column_writes += 1;
                Ok(())
            }
            Step::Settle => {
                wait_index_current(&self.cached, &self.db);
                wait_index_current(&self.index, &self.db);
                Ok(())
            }
            Step::Delete(_) | Step::Check(..) | Step::Columns(..) => Ok(()),
        }
    }

    /// (id, JSON line) for `v`.
    fn line(&mut self, v: &VideoSpec) -> (String, String) {
        let id = match v.existing {
            Some(i) if !self.ids.is_empty() => self.ids[i % self.ids.len()].clone(),
            _ => {
                self.next_id += 1;
                let id = format!("prop{:06}", self.next_id);
                self.ids.push(id.clone());
                id
            }
        };
        let title: Vec<&str> = v.title.iter().map(|w| self.words[w % self.words.len()].as_str()).collect();
        let published = v.published.map(|(unix, offset)| {
            // Local time at the offset, written with that offset.
            let local = videofeed::timefmt::rfc3339(unix + i64::from(offset) * 60);
            let sign = if offset < 0 { '-' } else { '+' };
            let (h, m) = (offset.abs() / 60, offset.abs() % 60);
            format!("{}{sign}{h:02}:{m:02}", local.trim_end_matches('Z'))
        });
        let line = serde_json::json!({
            "id": id,
            "title": title.join(" "),
            "channel": self.channels[v.channel % self.channels.len()],
            "duration_seconds": v.duration,
            "thumbnail": format!("https://img.example/t{}.jpg", v.thumbnail),
            "region": STORED_REGIONS[v.region],
            "view_count": v.views,
            "published_at": published,
        })
        .to_string();
        (id, line)
    }

    /// After the random cases, a fixed sweep: the most common words in pairs and
    /// triples, alone and with short prefixes of each other, in two regions and at two
    /// page sizes. These are the queries whose rarest phrase is long (the walks and
    /// their giving up, the classes, the memo's merges) on any database large enough.
    fn sweep(&mut self) -> Result<usize, TestCaseError> {
        let common: Vec<String> = self.words.iter().take(8).cloned().collect();
        let mut asked = 0;
        let mut texts = Vec::new();
        for (i, a) in common.iter().enumerate() {
            texts.push(a.chars().take(2).collect::<String>());
            for (j, b) in common.iter().enumerate() {
                if i != j {
                    texts.push(format!("{a} {b}"));
                    texts.push(format!("{a} {}", b.chars().take(2).collect::<String>()));
                    if let Some(c) = common.get((i + j + 1) % common.len()).filter(|c| *c != a && *c != b) {
                        texts.push(format!("{a} {b} {c}"));
                    }
                }
            }
        }
        for text in &texts {
            for (region, limit) in [("US", "24"), ("GB", "3")] {
                let qs = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([("q", text.as_str()), ("region", region), ("limit", limit)])
                    .finish();
                self.compare(&format!("/feed?{qs}"))?;
                asked += 1;
            }
        }
        Ok(asked)
    }

    /// Rewrites one video's title six times, comparing an answer that holds its words
    /// after each (issue 33: the delta then holds superseded versions, which the repack
    /// drops; the random cases do this only by chance). Returns the queries asked.
    fn churn(&mut self) -> Result<usize, TestCaseError> {
        let n = self.words.len().max(1);
        for k in 0..6 {
            let spec = VideoSpec {
                existing: Some(0),
                title: vec![k % n, (k + 1) % n, (2 * k + 3) % n],
                channel: 0,
                region: 0,
                duration: 60,
                thumbnail: 0,
                published: None,
                views: 1,
            };
            self.step(&Step::Upsert(vec![spec]))?;
            let word = self.words.get(k % n).cloned().unwrap_or_default();
            let qs = url::form_urlencoded::Serializer::new(String::new()).extend_pairs([("q", word.as_str())]).finish();
            self.compare(&format!("/feed?{qs}&limit=50"))?;
        }
        Ok(6)
    }

    /// Asks `uri` of the three servers (the cached one twice): byte-identical bodies.
    fn compare(&self, uri: &str) -> Result<(), TestCaseError> {
        let sql = self.sql.get(uri);
        let index = self.index.get(uri);
        let computed = self.cached.get(uri);
        let again = self.cached.get(uri);
        let text = |r: &videofeed::fcgi::client::Response| String::from_utf8_lossy(r.body()).into_owned();
        prop_assert_eq!(sql.status(), 200, "{}: {}", uri, text(&sql));
        prop_assert_eq!(text(&index), text(&sql), "{}: rank index vs SQL", uri);
        prop_assert_eq!(text(&computed), text(&sql), "{}: cached server vs SQL", uri);
        prop_assert_eq!(text(&again), text(&sql), "{}: the cached copy", uri);
        Ok(())
    }

    fn check_query(&mut self, q: &QuerySpec) -> Result<(), TestCaseError> {
        let (uri, args) = self.uri(q);
        let sql = self.sql.get(&uri);
        let index = self.index.get(&uri);
        let computed = self.cached.get(&uri);
        let again = self.cached.get(&uri);
        let text = |r: &videofeed::fcgi::client::Response| String::from_utf8_lossy(r.body()).into_owned();
        prop_assert_eq!(sql.status(), 200, "{}: {}", uri, text(&sql));
        prop_assert_eq!(text(&index), text(&sql), "{}: rank index vs SQL", uri);
        prop_assert_eq!(text(&computed), text(&sql), "{}: cached server vs SQL", uri);
        prop_assert_eq!(text(&again), text(&sql), "{}: the cached copy", uri);
        prop_assert_eq!(again.header("ETag"), computed.header("ETag"), "{}", uri);
        if self.queries % 5 == 0 {
            let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert!(out.status.success(), "{:?}: {}", args, String::from_utf8_lossy(&out.stderr));
            let printed = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
            prop_assert_eq!(printed, text(&sql), "{:?}", args);
        }
        let body: serde_json::Value = serde_json::from_slice(sql.body()).map_err(fail)?;
        self.queries += 1;
        self.corrected += usize::from(body.get("corrected").is_some());
        self.relaxed += usize::from(body.get("relaxed").is_some());
        self.filtered += usize::from(q.channel.is_some() || q.min_duration.is_some() || q.sort > 1);
        self.nonempty += usize::from(body["count"].as_u64() > Some(0));
        Ok(())
    }
}

fn auth() -> [(&'static str, &'static str); 1] {
    [("HTTP_AUTHORIZATION", "Bearer consistency-token")]
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Lower-case ASCII words of the stored titles, most frequent first (then in byte
/// order), with [`MULTILINGUAL`] spread among them; the channels; the first ids.
fn vocabulary(db: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut stmt = conn.prepare("SELECT title FROM videos ORDER BY rowid LIMIT 2000").unwrap();
    for title in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        for w in title.unwrap().split(|c: char| !c.is_ascii_alphanumeric()) {
            if w.len() >= 2 {
                *counts.entry(w.to_ascii_lowercase()).or_default() += 1;
            }
        }
    }
    let mut words: Vec<(String, usize)> = counts.into_iter().collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let channels: Vec<String> = conn
        .prepare("SELECT DISTINCT channel FROM videos ORDER BY channel LIMIT 40")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM videos ORDER BY rowid LIMIT 500")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Words of every script (issue 34), spread among the first 200 so random titles
    // written and queries asked use them: CJK and Thai inside unspaced text, Arabic
    // and Hebrew with and without marks, ß, Hangul with a particle, Devanagari.
    let mut words: Vec<String> = words.into_iter().map(|(w, _)| w).collect();
    for (i, w) in MULTILINGUAL.iter().enumerate() {
        words.insert((5 + 7 * i).min(words.len()), (*w).to_owned());
    }
    (words, channels, ids)
}

/// Words of other scripts the random titles and queries mix in.
const MULTILINGUAL: &[&str] = &[
    "ローファイヒップホップ",
    "ヒップホップ",
    "猫の動画",
    "猫",
    "作業用BGM",
    "เพลงฟังสบายๆ",
    "ฟัง",
    "مُوسِيقَى",
    "موسيقى",
    "ـعـربـي",
    "שָׁלוֹם",
    "שלום",
    "Straße",
    "strasse",
    "고양이가",
    "고양이",
    "हिन्दी",
    "ёлка",
];

/// How often each path of the rank index answered (summed over both index servers).
#[derive(Debug, Default)]
struct Paths {
    one_phrase: f64,
    several_phrases: f64,
    several_given_up: f64,
    memo_hits: f64,
    delta_memo_hits: f64,
    compactions: f64,
    singles_skipped: f64,
    repacks: f64,
    prefix_reads: f64,
}

impl Paths {
    fn of(servers: &[&Server]) -> Paths {
        let mut p = Paths::default();
        for s in servers {
            let walk = |path: &str| metric(s, &format!("videofeed_rank_index_class_walks_total{{path=\"{path}\"}}"));
            p.one_phrase += walk("one_phrase");
            p.several_phrases += walk("several_phrases");
            p.several_given_up += walk("several_given_up");
            p.memo_hits += metric(s, "videofeed_rank_index_memo_lookups_total{result=\"hit\"}");
            p.delta_memo_hits += metric(s, "videofeed_rank_index_delta_memo_hits_total");
            p.compactions += metric(s, "videofeed_rank_index_compactions_total");
            p.singles_skipped += metric(s, "videofeed_relaxed_singles_skipped_total");
            p.repacks += metric(s, "videofeed_rank_index_delta_repacks_total");
            p.prefix_reads += metric(s, "videofeed_rank_index_prefix_reads_total");
        }
        p
    }
}

/// The property over a demo database of `videos` rows, the servers' thresholds set
/// by `thresholds` (`VIDEOFEED_TEST_THRESHOLDS`: "" = the shipped ones). Returns the
/// rig (counts of what was asked) and the paths that answered. The counts are also
/// written to `target/consistency-NAME.txt`, which `.ci/run` prints.
fn property(name: &str, videos: usize, thresholds: &str) -> Result<(Rig, Paths), String> {
    let dir = TestDir::new(&format!("consistency-{name}"));
    let db = dir.path("demo.db");
    let out = run(&["demo", "--db", db.to_str().unwrap(), "--videos", &videos.to_string(), "--seed", "7"]);
    assert!(out.status.success());
    let (words, channels, ids) = vocabulary(&db);
    let (d1, d2, d3) = (TestDir::new("cons-cached"), TestDir::new("cons-sql"), TestDir::new("cons-index"));
    let limits = ("VIDEOFEED_TEST_THRESHOLDS", thresholds);
    let cached = Server::start_with(&d1, &db, 2, &[("VIDEOFEED_ADMIN_TOKEN", TOKEN), limits]);
    let sql = Server::start_with(&d2, &db, 2, &[("VIDEOFEED_RANK_INDEX", "off"), ("VIDEOFEED_CACHE_BYTES", "0")]);
    let index = Server::start_with(&d3, &db, 2, &[("VIDEOFEED_CACHE_BYTES", "0"), limits]);
    wait_index_current(&cached, &db);
    wait_index_current(&index, &db);
    let (n_words, n_channels) = (words.len(), channels.len());
    let mut rig = Rig {
        db,
        cached,
        sql,
        index,
        words,
        channels,
        ids,
        next_id: 0,
        queries: 0,
        corrected: 0,
        relaxed: 0,
        filtered: 0,
        nonempty: 0,
        column_writes: 0,
        _dirs: vec![dir, d1, d2, d3],
    };
    let cases = std::env::var("VIDEOFEED_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 32, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let rig_cell = std::cell::RefCell::new(&mut rig);
    runner
        .run(&steps(n_words, n_channels), |steps| {
            let mut rig = rig_cell.borrow_mut();
            for step in &steps {
                rig.step(step)?;
            }
            Ok(())
        })
        .map_err(|e| format!("{e}"))?;
    let churned = rig.churn().map_err(|e| format!("the churn: {e}"))?;
    let swept = rig.sweep().map_err(|e| format!("the sweep: {e}"))?;
    let paths = Paths::of(&[&rig.index, &rig.cached]);
    let (by_index, by_index_cached) = (index_answers(&rig.index), index_answers(&rig.cached));
    let summary = format!(
        "consistency {name} ({videos} videos, thresholds {:?}): {} queries, {churned} after rewrites and {swept} swept, {} corrected, {} relaxed, {} filtered, {} with rows, {} column-only writes; index answered {by_index} / {by_index_cached}; paths: one_phrase={} several_phrases={} several_given_up={} memo_hits={} delta_memo_hits={} compactions={} singles_skipped={} repacks={} prefix_reads={}",
        if thresholds.is_empty() { "shipped" } else { thresholds },
        rig.queries,
        rig.corrected,
        rig.relaxed,
        rig.filtered,
        rig.nonempty,
        rig.column_writes,
        paths.one_phrase,
        paths.several_phrases,
        paths.several_given_up,
        paths.memo_hits,
        paths.delta_memo_hits,
        paths.compactions,
        paths.singles_skipped,
        paths.repacks,
        paths.prefix_reads,
    );
    eprintln!("{summary}");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::write(target.join(format!("consistency-{name}.txt")), format!("{summary}\n"))
        .map_err(|e| e.to_string())?;
    // The comparison covered what it claims: the index answered, corrections and
    // filters happened, and most answers had rows.
    assert!(rig.queries >= 40, "{} queries", rig.queries);
    assert!(by_index >= (rig.queries / 10) as f64, "the rank index answered only {by_index} of {}", rig.queries);
    assert!(by_index_cached > 0.0);
    // Writes were answered through the delta, not by rebuilding the base after each.
    assert!(paths.delta_memo_hits > 0.0, "no delta was used");
    assert!(rig.corrected > 0 && rig.filtered > 0 && rig.nonempty > rig.queries / 4);
    assert!(rig.relaxed > 0, "no answer dropped words: word dropping went unchecked");
    assert!(paths.singles_skipped > 0.0, "word dropping's rarest-single rule never skipped a ranking");
    // Filtered and re-ordered queries were answered by the index too (issue 15), with
    // column-only writes (view counts, durations, dates) interleaved.
    let filtered_by_index = metric(&rig.index, "videofeed_filtered_searches_total{path=\"index\"}");
    assert!(filtered_by_index > 0.0, "no filtered query was answered by the index");
    assert!(rig.column_writes > 0);
    Ok((rig, paths))
}

/// The shipped thresholds, on a database large enough that the common words and
/// short prefixes pass them (20,000 rows: in 100,000 demo videos `the` is in about
/// 68,000 titles, `to`, `how`, `my` and `and` in 20,000 to 42,000): every path
/// answers as it does in production.
#[test]
fn every_path_gives_the_same_answer_through_writes() -> TestResult {
    let (rig, paths) = property("shipped", 100_000, "")?;
    // Measured at 40 cases: one_phrase 56, several 138, given up 50, memo hits 620
    // (before issue 36; at 12 cases after it: prefix reads 1,045, memo hits 0).
    assert!(rig.queries >= 40);
    assert!(paths.one_phrase >= 10.0, "one-phrase class walks: {paths:?}");
    assert!(paths.several_phrases >= 20.0, "several-phrase walks: {paths:?}");
    assert!(paths.several_given_up >= 10.0, "given-up walks: {paths:?}");
    assert!(paths.delta_memo_hits >= 50.0, "delta memo hits: {paths:?}");
    // Short prefixes are counted and kept by class in the index file (issue 36): read
    // unmerged, not merged into the memo (which at this size keeps nothing: its
    // path is proven at the minimum thresholds below).
    assert!(paths.prefix_reads >= 50.0, "prefixes read unmerged: {paths:?}");
    Ok(())
}

/// Every threshold at its minimum (`VIDEOFEED_TEST_THRESHOLDS=min`): every merge is
/// kept in the memo, every phrase ranked by its classes, walks give up after a
/// sixteenth, the delta's memo both keeps and refuses, and the base is compacted
/// every 16 changed rows. Each path must answer many times.
#[test]
fn every_path_gives_the_same_answer_with_every_threshold_at_its_minimum() -> TestResult {
    let (rig, paths) = property("minimum", 4000, "min")?;
    // Measured at 40 cases: one_phrase 272, several 142, given up 886, memo hits
    // 1,233, delta memo hits 4,812, compactions 12.
    let many = (rig.queries / 8).max(5) as f64;
    assert!(paths.one_phrase >= many, "one-phrase class walks: {paths:?}");
    assert!(paths.several_phrases >= many / 2.0, "several-phrase walks: {paths:?}");
    assert!(paths.several_given_up >= many / 2.0, "given-up walks: {paths:?}");
    assert!(paths.memo_hits >= many, "memo hits: {paths:?}");
    assert!(paths.delta_memo_hits >= many, "delta memo hits: {paths:?}");
    assert!(paths.compactions >= 2.0, "compactions: {paths:?}");
    assert!(paths.repacks >= 1.0, "the delta was never repacked: {paths:?}");
    assert!(paths.prefix_reads >= many / 2.0, "prefixes read unmerged: {paths:?}");
    Ok(())
}
