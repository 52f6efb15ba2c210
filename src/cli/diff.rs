//! `videofeed diff`: the differential check of decision 20 on any database and
//! query log. Two real `serve` processes on one file, one ranking with the rank
//! index and one with SQL alone (both with the response cache off), are asked
//! every query; their bodies must be byte-identical. The log is asked cold, then
//! again with the index's memo warm, and optionally after random writes through
//! the write API (the delta answering) and after a compaction. Generated hard
//! shapes (`--shapes`) are drawn from the database's own vocabulary: short
//! non-words used as whole words, prefixes asked before the same letters as a
//! word, repeated words, three-word phrases, apostrophes, full-width forms, typos
//! with filters, every sort and filter, offsets at and past the cap, highlights.
//! The first differing query is printed with both bodies.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use videofeed::fcgi::client;

use super::{Fatal, fatal, help, parse_args, say};

pub(super) const DIFF_HELP: &str = "\
videofeed diff --db PATH [--queries FILE] [--shapes N] [--passes N] [--writes N] [--compact]
               [--clients N] [--seed N] [--work-dir DIR] [--keep-going] [--expect-paths]

Checks that the rank index answers exactly as SQL does (decision 20) on this database:
starts two responders on it (`serve`: one with the rank index, one with
VIDEOFEED_RANK_INDEX=off; both with the response cache off and the other settings
from this environment), asks both every query and compares the bodies byte for byte.
  --queries FILE   a query log: one /feed?... path (or bare query string) a line
  --shapes N       also N hard query shapes generated from the database's vocabulary
                   (default 0 with --queries, 600 without)
  --passes N       ask everything N times (default 2: cold, then with the memo warm)
  --writes N       then make N random writes (upserts, retitles, deletes) through the
                   write API and compare again (the index answers through its delta);
                   the database is copied into --work-dir first: yours is not written
  --compact        then write until the index compacts (its delta reaches the
                   compaction point) and compare again (implies a copy, as --writes)
  --clients N      queries asked at once (default 4)
  --seed N         for the shapes and the writes (default 29)
  --work-dir DIR   sockets, logs and the copy (default a new directory under /tmp)
  --keep-going     count every difference instead of stopping at the first
  --expect-paths   fail unless every fast path of the rank index answered (the score
                   class walks, the memo, prefixes read unmerged, and with writes
                   the delta's memo)
Prints a line per pass with the counts and the paths that answered; on a difference,
the query and both bodies. Exit status: 0 identical, 1 a difference (or a path that
never answered with --expect-paths), 2 the check could not run.

Examples:
  videofeed diff --db videos.db --queries queries.txt
  videofeed diff --db videos.db --shapes 2000 --writes 3000 --compact";

/// What a pass compares: each query's (status, body) from both responders.
#[derive(Default)]
struct Tally {
    asked: usize,
    identical: usize,
    differing: usize,
}

/// A responder started for the check (killed when dropped).
struct Served {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Served {
    fn start(dir: &Path, name: &str, db: &Path, workers: usize, env: &[(&str, &str)]) -> Result<Served, Fatal> {
        let exe = std::env::current_exe().map_err(|e| fatal(format!("cannot find this program: {e}")))?;
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&socket);
        let stderr = std::fs::File::create(&log).map_err(|e| fatal(format!("{}: {e}", log.display())))?;
        let child = Command::new(exe)
            .args(["serve", "--db"])
            .arg(db)
            .arg("--socket")
            .arg(&socket)
            .args(["--workers", &workers.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| fatal(format!("cannot start serve: {e}")))?;
        let served = Served { child, socket, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(&served.socket).is_err() {
            if Instant::now() > deadline {
                return Err(fatal(format!("the {name} responder did not start; see {}", served.log.display())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(served)
    }

    fn send(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let mut params = client::get_params(method, uri);
        if !body.is_empty() {
            params.push(("CONTENT_LENGTH".into(), body.len().to_string()));
            params.push(("CONTENT_TYPE".into(), "application/x-ndjson".into()));
        }
        params.extend(headers.iter().cloned());
        let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| format!("{}: {e}", self.socket.display()))?;
        let timeout = Some(Duration::from_secs(120));
        stream.set_read_timeout(timeout).and_then(|()| stream.set_write_timeout(timeout)).map_err(|e| e.to_string())?;
        let answer = client::request(&mut stream, 1, false, &pairs, body).map_err(|e| format!("{uri}: {e}"))?;
        Ok((answer.status(), answer.body().to_vec()))
    }

    fn get(&self, uri: &str) -> Result<(u16, Vec<u8>), String> {
        self.send("GET", uri, &[], b"")
    }

    /// The responder's metrics, by series (`name{labels}` → value).
    fn metrics(&self) -> Result<BTreeMap<String, f64>, Fatal> {
        let (status, body) = self.get("/feed/metrics").map_err(fatal)?;
        if status != 200 {
            return Err(fatal(format!("/feed/metrics answered {status}; see {}", self.log.display())));
        }
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?))))
            .collect())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic generator (xorshift64*), so a seed names one run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { usize::try_from(self.next() % n as u64).unwrap_or(0) }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

/// What the shapes and the writes are made from: terms with their row counts,
/// sampled rows (id, title, channel, region), channels and regions.
struct Material {
    terms: Vec<(String, i64)>,
    rows: Vec<(String, String, String, String)>,
    channels: Vec<String>,
    regions: Vec<String>,
}

fn material(db: &Path, rng: &mut Rng) -> Result<Material, Fatal> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(db, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("CREATE VIRTUAL TABLE temp.diff_terms USING fts5vocab(main, 'videos_fts', 'row');")?;
    let terms: Vec<(String, i64)> = conn
        .prepare("SELECT term, doc FROM temp.diff_terms")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let max: i64 = conn.query_row("SELECT coalesce(max(rowid), 0) FROM videos", [], |r| r.get(0))?;
    let mut stmt = conn.prepare("SELECT id, title, channel, region FROM videos WHERE rowid >= ?1 LIMIT 1")?;
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for _ in 0..4000 {
        let at = i64::try_from(rng.next() % u64::try_from(max.max(1)).unwrap_or(1)).unwrap_or(0) + 1;
        if let Ok(row) = stmt.query_row([at], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))) {
            rows.push(row);
        }
    }
    rows.sort();
    rows.dedup();
    let mut channels: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
    channels.sort();
    channels.dedup();
    let mut regions: Vec<String> = rows
        .iter()
        .map(|r| r.3.clone())
        .filter(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
        .collect();
    regions.sort();
    regions.dedup();
    if regions.is_empty() {
        regions.push("US".into());
    }
    if terms.is_empty() || rows.is_empty() {
        return Err(fatal(format!("{} holds no videos to check", db.display())));
    }
    Ok(Material { terms, rows, channels, regions })
}

/// `/feed?` and the pairs, encoded.
fn feed_uri(pairs: &[(&str, String)]) -> String {
    let mut qs = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        qs.append_pair(k, v);
    }
    format!("/feed?{}", qs.finish())
}

/// The word with one typo (a swap, a drop, a double or a replacement).
fn typo(word: &str, rng: &mut Rng) -> String {
    let mut c: Vec<char> = word.chars().collect();
    if c.len() < 2 {
        return word.to_owned();
    }
    let i = rng.below(c.len() - 1);
    match rng.below(4) {
        0 => c.swap(i, i + 1),
        1 => {
            c.remove(i);
        }
        2 => {
            if let Some(&x) = c.get(i) {
                c.insert(i, x);
            }
        }
        _ => {
            if let Some(x) = c.get_mut(i) {
                *x = if *x == 'z' { 'q' } else { 'z' };
            }
        }
    }
    c.into_iter().collect()
}

/// Full-width forms of ASCII letters and digits (what a CJK keyboard types).
fn full_width(word: &str) -> String {
    word.chars()
        .map(|c| if c.is_ascii_alphanumeric() { char::from_u32(c as u32 + 0xFEE0).unwrap_or(c) } else { c })
        .collect()
}

/// Hard query shapes from the database's own vocabulary, about `n` of them. Shapes
/// whose order matters (a prefix, then the same letters as a word) come in two
/// halves: every first ask before every second one.
fn shapes(m: &Material, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut by_rows: Vec<&(String, i64)> = m.terms.iter().collect();
    by_rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let common: Vec<&str> = by_rows.iter().take(300).map(|(t, _)| t.as_str()).collect();
    let long: Vec<&str> =
        by_rows.iter().filter(|(t, _)| t.chars().count() >= 5).take(500).map(|(t, _)| t.as_str()).collect();
    let is_term = |s: &str| m.terms.binary_search_by(|(t, _)| t.as_str().cmp(s)).is_ok();
    // Prefixes of 2-3 letters by the rows of the terms they start: words or not.
    let mut starts: BTreeMap<String, i64> = BTreeMap::new();
    for (t, docs) in &m.terms {
        for len in 2..=3 {
            if t.chars().count() > len {
                *starts.entry(t.chars().take(len).collect()).or_default() += docs;
            }
        }
    }
    let mut prefixes: Vec<(String, i64)> = starts.into_iter().collect();
    prefixes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let non_words: Vec<&str> = prefixes.iter().filter(|(p, _)| !is_term(p)).take(60).map(|(p, _)| p.as_str()).collect();
    let word_prefixes: Vec<&str> =
        prefixes.iter().filter(|(p, _)| is_term(p)).take(30).map(|(p, _)| p.as_str()).collect();
    let apostrophes: Vec<&str> = {
        let mut seen: Vec<&str> =
            m.rows.iter().flat_map(|r| r.1.split_whitespace()).filter(|w| w.contains('\'') && w.len() > 2).collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    };
    let region = |rng: &mut Rng| -> String {
        match rng.below(10) {
            0 => "ZZ".into(),
            _ => rng.pick(&m.regions).cloned().unwrap_or_else(|| "US".into()),
        }
    };
    let word = |rng: &mut Rng| rng.pick(&common).map_or("music", |w| w).to_owned();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    // 1. Short non-words: asked as prefixes first, then as whole words (issue 29).
    for p in &non_words {
        let r = region(rng);
        first.push(feed_uri(&[("q", (*p).to_owned()), ("region", r.clone())]));
        second.push(feed_uri(&[("q", format!("{p} {}", word(rng))), ("region", r.clone())]));
        second.push(feed_uri(&[("q", format!("{p} {p}")), ("region", r.clone())]));
        second.push(feed_uri(&[("q", format!("{} {p} {}", word(rng), word(rng))), ("region", r)]));
    }
    // 2. Prefixes that are words too: the prefix first, then the word with another.
    for p in &word_prefixes {
        let r = region(rng);
        first.push(feed_uri(&[("q", (*p).to_owned()), ("region", r.clone())]));
        second.push(feed_uri(&[("q", format!("{p} {}", word(rng))), ("region", r)]));
    }
    let mut rest = Vec::new();
    let mut k = 0usize;
    while first.len() + second.len() + rest.len() < n && k < n * 4 {
        k += 1;
        let r = region(rng);
        let w = word(rng);
        let q: Vec<(&str, String)> = match k % 12 {
            // 3. Repeated words, whole and as the typed prefix.
            0 => vec![("q", format!("{w} {w}"))],
            1 => vec![("q", format!("{w} {w} {}", w.chars().take(3).collect::<String>()))],
            // 4. Three words that stand together in a title, as words and as a phrase.
            2 | 3 => {
                let Some(row) = rng.pick(&m.rows) else { continue };
                let words: Vec<&str> = row.1.split_whitespace().collect();
                if words.len() < 3 {
                    continue;
                }
                let at = rng.below(words.len() - 2);
                let three = words.get(at..at + 3).map(|w| w.join(" ")).unwrap_or_default();
                if k % 12 == 2 { vec![("q", three)] } else { vec![("q", format!("\"{three}\""))] }
            }
            // 5. Apostrophes (`don't` is the phrase `don t`).
            4 => match rng.pick(&apostrophes) {
                Some(a) => vec![("q", format!("{a} {}", if rng.below(2) == 0 { w.clone() } else { String::new() }))],
                None => vec![("q", format!("{w}'s"))],
            },
            // 6. Full-width forms.
            5 => vec![("q", format!("{} {}", full_width(&w), full_width(&word(rng))))],
            // 7. Typos, with filters.
            6 => {
                let t = rng.pick(&long).map_or_else(|| w.clone(), |t| (*t).to_owned());
                let mut q = vec![("q", typo(&t, rng))];
                match rng.below(4) {
                    0 => q.push(("channel", rng.pick(&m.channels).cloned().unwrap_or_default())),
                    1 => q.push(("min_duration", (rng.below(900)).to_string())),
                    2 => q.push(("sort", "popular".into())),
                    _ => {}
                }
                q
            }
            // 8. Every sort and filter.
            7 | 8 => {
                let mut q = vec![("q", if k % 2 == 0 { w.clone() } else { w.chars().take(3).collect() })];
                q.push(("sort", ["relevance", "recent", "popular"][rng.below(3)].into()));
                if rng.below(2) == 0 {
                    // A channel as stored, or typed otherwise (case, spacing, punctuation).
                    let c = rng.pick(&m.channels).cloned().unwrap_or_default();
                    let c = match rng.below(3) {
                        0 => c.to_uppercase(),
                        1 => c.to_lowercase().replace(' ', "-"),
                        _ => c,
                    };
                    q.push(("channel", c));
                }
                if rng.below(2) == 0 {
                    q.push(("min_duration", rng.below(600).to_string()));
                }
                // Browsing: the same without the query (issue 35).
                if k % 7 == 0 {
                    q.retain(|(name, _)| *name != "q");
                    if !q.iter().any(|(name, v)| *name == "channel" || (*name == "sort" && v != "relevance")) {
                        q.push(("sort", "popular".into()));
                    }
                }
                if rng.below(2) == 0 {
                    q.push(("max_duration", (600 + rng.below(3000)).to_string()));
                }
                q
            }
            // 9. Offsets at and past the cap.
            9 => vec![
                ("q", w.chars().take(2).collect()),
                ("offset", ["999", "1000", "1001", "976"][rng.below(4)].into()),
                ("limit", ["24", "100", "1"][rng.below(3)].into()),
            ],
            // 10. Highlights.
            10 => {
                vec![("q", format!("{w} {}", word(rng).chars().take(2).collect::<String>())), ("highlight", "1".into())]
            }
            // Two common words and a typed prefix; a page further on.
            _ => vec![
                ("q", format!("{w} {} {}", word(rng), word(rng).chars().take(2).collect::<String>())),
                ("offset", (rng.below(5) * 24).to_string()),
            ],
        };
        let mut q = q;
        if rng.below(8) > 0 {
            q.push(("region", r));
        }
        rest.push(feed_uri(&q));
    }
    first.extend(rest);
    first.extend(second);
    first
}

/// The log's queries: `/feed?...` paths, or bare query strings.
fn read_log(path: &Path) -> Result<Vec<String>, Fatal> {
    let file = std::fs::File::open(path).map_err(|e| fatal(format!("--queries {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| fatal(format!("--queries {}: {e}", path.display())))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(if line.starts_with('/') { line.to_owned() } else { format!("/feed?{line}") });
    }
    Ok(out)
}

/// The database's generation (what a current rank index reports).
fn generation(db: &Path) -> Result<i64, Fatal> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(db, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn.query_row("SELECT value FROM videofeed_meta WHERE key = 'generation'", [], |r| r.get(0))?)
}

/// Waits until the index responder's rank index is of the database's generation
/// (and, with `compacted`, has no delta left).
fn wait_current(index: &Served, db: &Path, compacted: bool) -> Result<(), Fatal> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let want = generation(db)? as f64;
        let _ = index.get("/feed?q=zzzdiffwait"); // a query starts a build when behind
        let m = index.metrics()?;
        let at = m.get("videofeed_rank_index_generation").copied();
        let delta = m.get("videofeed_rank_index_delta_rows").copied().unwrap_or(0.0);
        if at == Some(want) && (!compacted || delta == 0.0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(fatal(format!(
                "the rank index did not reach generation {want} (at {at:?}, delta {delta}); see {}",
                index.log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The counters that show which paths answered, from the index responder.
fn paths(m: &BTreeMap<String, f64>) -> Vec<(&'static str, f64)> {
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    vec![
        (
            "index",
            get("videofeed_searches_total{path=\"index\"}") + get("videofeed_filtered_searches_total{path=\"index\"}"),
        ),
        ("sql", get("videofeed_searches_total{path=\"sql\"}") + get("videofeed_filtered_searches_total{path=\"sql\"}")),
        ("one_phrase", get("videofeed_rank_index_class_walks_total{path=\"one_phrase\"}")),
        ("several_phrases", get("videofeed_rank_index_class_walks_total{path=\"several_phrases\"}")),
        ("several_given_up", get("videofeed_rank_index_class_walks_total{path=\"several_given_up\"}")),
        ("memo_hits", get("videofeed_rank_index_memo_lookups_total{result=\"hit\"}")),
        ("memo_misses", get("videofeed_rank_index_memo_lookups_total{result=\"miss\"}")),
        ("prefix_reads", get("videofeed_rank_index_prefix_reads_total")),
        ("delta_memo_hits", get("videofeed_rank_index_delta_memo_hits_total")),
        ("delta_rows", get("videofeed_rank_index_delta_rows")),
        ("compactions", get("videofeed_rank_index_compactions_total")),
        ("relaxed", get("videofeed_relaxed_searches_total{outcome=\"added\"}")),
        ("singles_skipped", get("videofeed_relaxed_singles_skipped_total")),
        ("corrected", get("videofeed_typo_corrections_total")),
        ("counted_by_index", get("videofeed_totals_counted_total{by=\"index\"}")),
    ]
}

/// One pass: every query to both responders (`reuse`: the SQL answers of an earlier
/// pass at the same data, which the rank index's state cannot change).
#[derive(Clone, Copy)]
struct Pass<'a> {
    name: &'a str,
    index: &'a Served,
    sql: &'a Served,
    clients: usize,
    keep_going: bool,
}

type Answers = Vec<Option<(u16, Vec<u8>)>>;

/// What passes carry to the next: the counters after the last, the differences so
/// far, and the last SQL answers (reused by a pass at the same data).
struct State {
    before: Vec<(&'static str, f64)>,
    differing: usize,
    answers: Option<Answers>,
}

impl State {
    fn pass(&mut self, pass: Pass<'_>, queries: &[String], reuse: bool) -> Result<Vec<(&'static str, f64)>, Fatal> {
        let t0 = Instant::now();
        let (tally, sql_answers) = pass.run(queries, if reuse { self.answers.as_ref() } else { None })?;
        let after = paths(&pass.index.metrics()?);
        report(pass.name, &tally, &self.before, &after, t0.elapsed());
        self.before.clone_from(&after);
        self.differing += tally.differing;
        self.answers = Some(sql_answers);
        Ok(after)
    }
}

impl Pass<'_> {
    fn run(&self, queries: &[String], reuse: Option<&Answers>) -> Result<(Tally, Answers), Fatal> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let sql_answers: Mutex<Answers> = Mutex::new(vec![None; queries.len()]);
        let tally = Mutex::new(Tally::default());
        let first: Mutex<Option<(usize, String)>> = Mutex::new(None);
        let failure: Mutex<Option<String>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..self.clients.max(1) {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(uri) = queries.get(i) else { break };
                        let by_sql = match reuse.and_then(|r| r.get(i).cloned().flatten()) {
                            Some(kept) => Ok(kept),
                            None => self.sql.get(uri),
                        };
                        let (by_index, by_sql) = match (self.index.get(uri), by_sql) {
                            (Ok(a), Ok(b)) => (a, b),
                            (Err(e), _) | (_, Err(e)) => {
                                *failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                                stop.store(true, Ordering::Relaxed);
                                break;
                            }
                        };
                        let same = by_index == by_sql;
                        {
                            let mut t = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            t.asked += 1;
                            if same {
                                t.identical += 1;
                            } else {
                                t.differing += 1;
                            }
                        }
                        if !same {
                            let mut f = first.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            if f.as_ref().is_none_or(|(at, _)| i < *at) {
                                *f = Some((
                                    i,
                                    format!(
                                        "diff: {}: first difference, query {} of {}: {uri}\n  index ({}): {}\n  sql   ({}): {}",
                                        self.name,
                                        i + 1,
                                        queries.len(),
                                        by_index.0,
                                        String::from_utf8_lossy(&by_index.1),
                                        by_sql.0,
                                        String::from_utf8_lossy(&by_sql.1)
                                    ),
                                ));
                            }
                            if !self.keep_going {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        if let Some(slot) =
                            sql_answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(i)
                        {
                            *slot = Some(by_sql);
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Err(fatal(format!("{}: no answer: {e}", self.name)));
        }
        if let Some((_, text)) = first.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            say(&text);
        }
        Ok((
            tally.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
            sql_answers.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

/// Random writes through the write API: `n` rows in batches (new videos, retitles
/// with words of other titles, region changes) and some deletes.
fn write_randomly(index: &Served, token: &str, m: &mut Material, n: usize, rng: &mut Rng) -> Result<usize, Fatal> {
    let auth = vec![("HTTP_AUTHORIZATION".to_owned(), format!("Bearer {token}"))];
    let mut written = 0;
    let mut next_id = 0usize;
    while written < n {
        if rng.below(8) == 0 && m.rows.len() > 100 {
            let at = rng.below(m.rows.len());
            let id = m.rows.swap_remove(at).0;
            let (status, body) =
                index.send("DELETE", &format!("/feed/admin/videos/{}", url_path(&id)), &auth, b"").map_err(fatal)?;
            if !matches!(status, 200 | 404) {
                return Err(fatal(format!("DELETE {id}: {status} {}", String::from_utf8_lossy(&body))));
            }
            written += 1;
            continue;
        }
        let batch = 1 + rng.below(50).min(n - written);
        let mut lines = Vec::with_capacity(batch);
        let mut ids = std::collections::HashSet::new();
        for _ in 0..batch {
            let existing = rng.below(3) > 0;
            let id = match rng.pick(&m.rows) {
                Some(r) if existing => r.0.clone(),
                _ => {
                    next_id += 1;
                    format!("diff-{}-{next_id}", rng.next() % 1_000_000_000)
                }
            };
            if !ids.insert(id.clone()) {
                continue;
            }
            let mut words: Vec<String> = Vec::new();
            for _ in 0..1 + rng.below(7) {
                if let Some(row) = rng.pick(&m.rows) {
                    let in_title: Vec<&str> = row.1.split_whitespace().collect();
                    if let Some(w) = rng.pick(&in_title) {
                        words.push((*w).to_owned());
                    }
                }
            }
            let title = if words.is_empty() { "untitled".to_owned() } else { words.join(" ") };
            let channel = rng.pick(&m.channels).cloned().unwrap_or_else(|| "diff".into());
            let region = if rng.below(6) == 0 {
                "GLOBAL".to_owned()
            } else {
                rng.pick(&m.regions).cloned().unwrap_or_else(|| "US".into())
            };
            lines.push(
                serde_json::json!({
                    "id": id,
                    "title": title,
                    "channel": channel,
                    "duration_seconds": rng.below(4000),
                    "thumbnail": format!("https://img.example/{}.jpg", rng.below(1000)),
                    "region": region,
                    "view_count": rng.below(5_000_000),
                    "published_at": videofeed::timefmt::rfc3339(1_500_000_000 + i64::try_from(rng.below(300_000_000)).unwrap_or(0)),
                })
                .to_string(),
            );
        }
        let body = lines.join("\n");
        let (status, answer) = index.send("POST", "/feed/admin/videos", &auth, body.as_bytes()).map_err(fatal)?;
        if status != 200 {
            return Err(fatal(format!("a write was refused: {status} {}", String::from_utf8_lossy(&answer))));
        }
        written += lines.len();
    }
    Ok(written)
}

/// An id as a URL path segment.
fn url_path(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>().replace('+', "%20")
}

fn report(name: &str, t: &Tally, before: &[(&'static str, f64)], after: &[(&'static str, f64)], took: Duration) {
    let moved: Vec<String> = after
        .iter()
        .zip(before)
        .map(|((k, a), (_, b))| if *k == "delta_rows" { format!("{k}={a}") } else { format!("{k}={}", a - b) })
        .collect();
    say(&format!(
        "diff: {name}: {} queries, {} identical, {} differing in {:.1} s; paths: {}",
        t.asked,
        t.identical,
        t.differing,
        took.as_secs_f64(),
        moved.join(" ")
    ));
}

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let valued = ["--db", "--queries", "--shapes", "--passes", "--writes", "--clients", "--seed", "--work-dir"];
    let a = parse_args(raw, &valued, &["--compact", "--keep-going", "--expect-paths"], DIFF_HELP)?;
    if a.help {
        return help(DIFF_HELP);
    }
    let db = a.db(DIFF_HELP)?;
    if !db.exists() {
        return Err(fatal(format!("{} does not exist", db.display())));
    }
    let log = a.get("--queries").map(PathBuf::from);
    let shapes_n: usize = a.number("--shapes", if log.is_some() { 0 } else { 600 })?;
    let passes: usize = a.number("--passes", 2)?;
    let writes: usize = a.number("--writes", 0)?;
    let compact = a.get("--compact").is_some();
    let clients: usize = a.number("--clients", 4)?;
    let seed: u64 = a.number("--seed", 29)?;
    let keep_going = a.get("--keep-going").is_some();
    let expect_paths = a.get("--expect-paths").is_some();
    let work = match a.get("--work-dir") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("videofeed-diff-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).map_err(|e| fatal(format!("--work-dir {}: {e}", work.display())))?;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);

    // Writes go to a copy: the database checked is never changed by the check.
    let db = if writes > 0 || compact {
        let copy = work.join("diff-copy.db");
        for suffix in ["", "-wal", "-shm", ".rank"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        }
        videofeed::store::db::backup(&db, &copy)?;
        say(&format!("diff: writes go to a copy of {} at {}", db.display(), copy.display()));
        copy
    } else {
        db
    };
    let mut m = material(&db, &mut rng)?;
    let mut queries = match &log {
        Some(path) => read_log(path)?,
        None => Vec::new(),
    };
    let generated = shapes(&m, shapes_n, &mut rng);
    let n_generated = if shapes_n > 0 { generated.len() } else { 0 };
    if shapes_n > 0 {
        queries.extend(generated);
    }
    if queries.is_empty() {
        return Err(fatal(format!("nothing to ask: give --queries FILE or --shapes N\n\n{DIFF_HELP}")));
    }
    let token = format!("diff-{:016x}", rng.next());
    let inherit = |k: &str, default: &'static str| std::env::var(k).ok().map_or(default.to_owned(), |v| v);
    let timeout = inherit("VIDEOFEED_QUERY_TIMEOUT_MS", "60000");
    let level = inherit("VIDEOFEED_LOG", "info");
    let mut index_env = vec![
        ("VIDEOFEED_CACHE_BYTES", "0"),
        ("VIDEOFEED_RANK_INDEX", "on"),
        ("VIDEOFEED_QUERY_TIMEOUT_MS", timeout.as_str()),
        ("VIDEOFEED_LOG", level.as_str()),
    ];
    if writes > 0 || compact {
        index_env.push(("VIDEOFEED_ADMIN_TOKEN", token.as_str()));
    }
    let sql_env = [
        ("VIDEOFEED_CACHE_BYTES", "0"),
        ("VIDEOFEED_RANK_INDEX", "off"),
        ("VIDEOFEED_QUERY_TIMEOUT_MS", timeout.as_str()),
        ("VIDEOFEED_LOG", level.as_str()),
    ];
    let index = Served::start(&work, "index", &db, clients, &index_env)?;
    let sql = Served::start(&work, "sql", &db, clients, &sql_env)?;
    let started = Instant::now();
    wait_current(&index, &db, false)?;
    say(&format!(
        "diff: {} queries ({} from the log, {n_generated} generated shapes), rank index ready in {:.1} s; logs in {}",
        queries.len(),
        queries.len() - n_generated,
        started.elapsed().as_secs_f64(),
        work.display()
    ));
    let pass = Pass { name: "", index: &index, sql: &sql, clients, keep_going };
    let origin = paths(&index.metrics()?);
    let mut state = State { before: origin.clone(), differing: 0, answers: None };
    for k in 0..passes.max(1) {
        let name = if k == 0 { "cold".to_owned() } else { format!("warm {k}") };
        state.pass(Pass { name: &name, ..pass }, &queries, k > 0)?;
        if state.differing > 0 && !keep_going {
            return Ok(1);
        }
    }
    let base_paths = state.before.clone();
    let mut delta_paths = None;
    if writes > 0 {
        let t0 = Instant::now();
        let n = write_randomly(&index, &token, &mut m, writes, &mut rng)?;
        wait_current(&index, &db, false)?;
        say(&format!("diff: {n} random writes through the write API in {:.1} s", t0.elapsed().as_secs_f64()));
        delta_paths = Some(state.pass(Pass { name: "after writes (delta)", ..pass }, &queries, false)?);
        if state.differing > 0 && !keep_going {
            return Ok(1);
        }
    }
    if compact {
        let t0 = Instant::now();
        let was = index.metrics()?.get("videofeed_rank_index_compactions_total").copied().unwrap_or(0.0);
        let mut n = 0;
        loop {
            n += write_randomly(&index, &token, &mut m, 2000, &mut rng)?;
            let _ = index.get("/feed?q=zzzdiffwait");
            let now = index.metrics()?.get("videofeed_rank_index_compactions_total").copied().unwrap_or(0.0);
            if now > was {
                break;
            }
            if n > 2_000_000 {
                return Err(fatal("the rank index did not compact after 2,000,000 writes"));
            }
        }
        wait_current(&index, &db, true)?;
        say(&format!("diff: {n} writes, then a compaction, in {:.1} s", t0.elapsed().as_secs_f64()));
        state.pass(Pass { name: "after compaction", ..pass }, &queries, false)?;
    }
    let differing = state.differing;
    let total = paths(&index.metrics()?);
    if differing > 0 {
        say(&format!("diff: {differing} answers differed"));
        return Ok(1);
    }
    if expect_paths {
        let moved = |list: &[(&'static str, f64)], from: &[(&'static str, f64)], k: &str| {
            let get = |l: &[(&'static str, f64)]| l.iter().find(|(n, _)| *n == k).map_or(0.0, |(_, v)| *v);
            get(list) - get(from)
        };
        let mut missing: Vec<String> = [
            "index",
            "one_phrase",
            "several_phrases",
            "several_given_up",
            "memo_hits",
            "prefix_reads",
            "relaxed",
            "corrected",
            "counted_by_index",
        ]
        .iter()
        .filter(|k| moved(&base_paths, &origin, k) <= 0.0)
        .map(|k| format!("{k} (before writes)"))
        .collect();
        if let Some(after) = &delta_paths {
            if moved(after, &base_paths, "delta_memo_hits") <= 0.0 {
                missing.push("delta_memo_hits (after writes)".into());
            }
            if moved(after, &base_paths, "counted_by_index") <= 0.0 {
                missing.push("counted_by_index (after writes)".into());
            }
        }
        if compact && moved(&total, &origin, "compactions") <= 0.0 {
            missing.push("compactions".into());
        }
        if !missing.is_empty() {
            say(&format!("diff: these paths never answered: {}", missing.join(", ")));
            return Ok(1);
        }
    }
    say("diff: every answer identical");
    let _ = std::io::stdout().flush();
    Ok(0)
}
