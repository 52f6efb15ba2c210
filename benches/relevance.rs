//! Relevance evaluation: recall@1 and recall@10 per query kind, against the real service.
//!
//! `cargo bench --bench relevance -- DB [SAMPLE]` (default 500 videos; `VIDEOFEED_BIN`
//! evaluates another build of `videofeed`, e.g. an earlier commit's; `RELEVANCE_MISSES=KIND`
//! prints that kind's misses at 10, or at 1 with `RELEVANCE_AT_1=1`)
//!
//! From every (rows/SAMPLE)-th video of DB it builds judged queries:
//! `exact` (the title's words), `subset` (its two rarest words), `prefix` (all
//! words, the last cut to half its length, at least 2 letters), `typo` (the
//! title with its longest word, 5+ letters, given a one-letter substitution),
//! `accents` (the title with accents stripped; only titles that have some), and
//! what people type (issue 19): `extra` (the two rarest words plus one or two
//! words of other sampled titles that this title lacks, each at a random
//! position), `reordered` (all words, shuffled), `fullwidth` (all words in
//! full-width forms, as CJK keyboards type them), `typo+channel` (the `typo`
//! query with `channel=` the video's channel), and `two typos` (the title with
//! its longest word, 8+ letters, given two substitutions). Random choices come
//! from a fixed-seed generator, so a run is repeatable.
//! A query is answered by `videofeed serve` started on DB (read-only), asked
//! over FastCGI with the video's region (US for GLOBAL) and limit 10. Judged
//! relevant: the video itself, or a video whose title is the same text
//! (identical titles cannot be told apart by a search). Prints a markdown table.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::indexing_slicing, reason = "a benchmark")]

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use videofeed::fcgi::client;

fn fold(c: char) -> char {
    match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'Á' | 'À' | 'Â' | 'Ä' | 'Ã' | 'Å' => 'a',
        'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' | 'Í' | 'Ì' | 'Î' | 'Ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'Ó' | 'Ò' | 'Ô' | 'Ö' | 'Õ' | 'Ø' => 'o',
        'ú' | 'ù' | 'û' | 'ü' | 'Ú' | 'Ù' | 'Û' | 'Ü' => 'u',
        'ñ' | 'Ñ' => 'n',
        'ç' | 'Ç' => 'c',
        'ß' => 's',
        other => other,
    }
}

fn words(title: &str) -> Vec<String> {
    title.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

fn norm(title: &str) -> String {
    words(title).iter().map(|w| w.to_lowercase().chars().map(fold).collect::<String>()).collect::<Vec<_>>().join(" ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(db) = args.first().map(PathBuf::from) else {
        println!("usage: cargo bench --bench relevance -- DB [SAMPLE]");
        return;
    };
    let sample: i64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.execute_batch("CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, 'videos_fts', 'row')").unwrap();
    let rows: i64 = conn.query_row("SELECT max(rowid) FROM videos", [], |r| r.get(0)).unwrap();
    let step = (rows / sample).max(1);
    let mut stmt = conn.prepare("SELECT id, title, region, channel FROM videos WHERE rowid % ?1 = 0 LIMIT ?2").unwrap();
    let videos: Vec<(String, String, String, String)> = stmt
        .query_map([step, sample], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut df = conn.prepare("SELECT doc FROM temp.v WHERE term = ?1").unwrap();
    let mut doc_freq = |w: &str| -> i64 { df.query_row([norm(w)], |r| r.get(0)).unwrap_or(0) };
    let mut title_of = conn.prepare("SELECT title FROM videos WHERE id = ?1").unwrap();

    let dir = std::env::temp_dir().join(format!("vf-relevance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("vf.sock");
    // VIDEOFEED_BIN: another build to evaluate (an earlier commit's, for a before/after table).
    let bin = std::env::var_os("VIDEOFEED_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/videofeed"), PathBuf::from);
    let mut server = Command::new(&bin)
        .args(["serve", "--db", db.to_str().unwrap(), "--socket", socket.to_str().unwrap(), "--workers", "2"])
        .env("VIDEOFEED_LOG", "warn")
        .env("VIDEOFEED_CACHE_BYTES", "0")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while UnixStream::connect(&socket).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_secs(6)); // the rank index (and with it the typo fallback) is built

    let kinds = [
        "exact",
        "subset",
        "prefix",
        "typo",
        "accents",
        "extra",
        "reordered",
        "fullwidth",
        "typo+channel",
        "two typos",
    ];
    let mut tally: HashMap<&str, (u32, u32, u32)> = HashMap::new(); // (queries, @1, @10)
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |n: usize| -> usize {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        usize::try_from(rng % n.max(1) as u64).unwrap_or(0)
    };
    let all_words: Vec<String> = videos.iter().flat_map(|v| words(&v.1)).collect();
    for (n, (id, title, region, channel)) in videos.iter().enumerate() {
        let ws = words(title);
        if ws.is_empty() {
            continue;
        }
        let region = if region == "GLOBAL" { "US" } else { region.as_str() };
        let mut queries: Vec<(&str, String, Option<&str>)> = Vec::new();
        queries.push(("exact", ws.join(" "), None));
        let mut by_rarity = ws.clone();
        by_rarity.sort_by_key(|w| doc_freq(w));
        if by_rarity.len() >= 2 {
            queries.push(("subset", format!("{} {}", by_rarity[0], by_rarity[1]), None));
            // One or two words the title lacks, from other titles, each at a random position.
            let have: Vec<String> = ws.iter().map(|w| norm(w)).collect();
            let mut extra = vec![by_rarity[0].clone(), by_rarity[1].clone()];
            for _ in 0..1 + n % 2 {
                let w = (0..20).map(|_| &all_words[next(all_words.len())]).find(|w| !have.contains(&norm(w)));
                if let Some(w) = w {
                    let at = next(extra.len() + 1);
                    extra.insert(at, w.clone());
                }
            }
            queries.push(("extra", extra.join(" "), None));
        }
        if ws.len() >= 2 {
            let mut shuffled = ws.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, next(i + 1));
            }
            if shuffled == ws {
                shuffled.reverse();
            }
            queries.push(("reordered", shuffled.join(" "), None));
        }
        let wide: String = ws
            .join(" ")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { char::from_u32(c as u32 + 0xFEE0).unwrap() } else { c })
            .collect();
        queries.push(("fullwidth", wide, None));
        let last = ws.last().unwrap();
        let cut: String = last.chars().take((last.chars().count() / 2).max(2)).collect();
        queries.push(("prefix", format!("{} {cut}", ws[..ws.len() - 1].join(" ")).trim().to_owned(), None));
        let longest = ws.iter().enumerate().max_by_key(|(_, w)| w.chars().count());
        if let Some((i, long)) = longest.filter(|(_, w)| w.chars().count() >= 5) {
            let mut chars: Vec<char> = long.chars().collect();
            let mid = chars.len() / 2;
            chars[mid] = if chars[mid] == 'x' { 'q' } else { 'x' };
            let mut typo = ws.clone();
            typo[i] = chars.into_iter().collect();
            queries.push(("typo", typo.join(" "), None));
            queries.push(("typo+channel", typo.join(" "), Some(channel.as_str())));
        }
        if let Some((i, long)) = longest.filter(|(_, w)| w.chars().count() >= 8) {
            let mut chars: Vec<char> = long.chars().collect();
            let len = chars.len();
            for at in [len / 3, 2 * len / 3] {
                chars[at] = if chars[at] == 'x' { 'q' } else { 'x' };
            }
            let mut typo = ws.clone();
            typo[i] = chars.into_iter().collect();
            queries.push(("two typos", typo.join(" "), None));
        }
        let stripped: String = ws.join(" ").chars().map(fold).collect();
        if stripped != ws.join(" ") {
            queries.push(("accents", stripped, None));
        }
        let want = norm(title);
        for (kind, q, channel) in queries {
            let q: String = q.chars().take(120).collect();
            let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let mut uri = format!("/feed?q={enc}&region={region}&limit=10");
            if let Some(c) = channel {
                uri.push_str("&channel=");
                uri.extend(url::form_urlencoded::byte_serialize(c.as_bytes()));
            }
            let params = client::get_params("GET", &uri);
            let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let mut s = UnixStream::connect(&socket).unwrap();
            let resp = client::request(&mut s, 1, false, &pairs, &[]).unwrap();
            let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
            let hits: Vec<bool> = body["results"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            r["id"] == id.as_str()
                                || title_of
                                    .query_row([r["id"].as_str().unwrap_or("")], |row| row.get::<_, String>(0))
                                    .is_ok_and(|t| norm(&t) == want)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let missed = if std::env::var_os("RELEVANCE_AT_1").is_some() {
                hits.first() != Some(&true)
            } else {
                !hits.iter().any(|h| *h)
            };
            if missed && std::env::var("RELEVANCE_MISSES").is_ok_and(|k| k == kind) {
                let got: Vec<&str> = body["results"]
                    .as_array()
                    .map(|a| a.iter().take(3).filter_map(|r| r["title"].as_str()).collect())
                    .unwrap_or_default();
                println!("miss {kind}: {q:?} (title {title:?}) relaxed={} got {got:?}", body["relaxed"]);
            }
            let entry = tally.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += u32::from(hits.first() == Some(&true));
            entry.2 += u32::from(hits.iter().any(|h| *h));
        }
    }
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("| kind | queries | recall@1 | recall@10 |");
    println!("|---|---|---|---|");
    for kind in kinds {
        let (n, r1, r10) = tally.get(kind).copied().unwrap_or_default();
        let pct = |x: u32| if n == 0 { 0.0 } else { f64::from(x) / f64::from(n) };
        println!("| {kind} | {n} | {:.3} | {:.3} |", pct(r1), pct(r10));
    }
}
