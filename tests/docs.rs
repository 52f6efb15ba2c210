//! The documentation's example answers, produced here from the demo database
//! (`videofeed demo`, the corpus `./install.sh --demo` creates) and compared
//! with the text, so the docs cannot drift from the binary.
//!
//! A checked example is a Markdown comment followed by a ```json block:
//! `<!-- checked: demo VIDEOS SEED, GET URI -->` must equal the real answer
//! (as JSON values); `<!-- shape: demo VIDEOS SEED, GET URI -->` must have the
//! same fields, recursively (for answers with times and paths in them), and the
//! same `schema_version` wherever one appears. `VIDEOFEED_BLESS=1 cargo test
//! docs::` rewrites the blocks of `checked` examples from the real answers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Server, TestDir, TestResult, run};

/// The documents whose examples are checked.
const DOCS: [&str; 2] = ["README.md", "docs/operations.md"];

/// One example found in a document.
struct Example {
    doc: PathBuf,
    exact: bool,
    videos: u64,
    seed: u64,
    uri: String,
    /// Byte range of the JSON text between the fences.
    json: std::ops::Range<usize>,
}

fn examples(doc: &Path, text: &str) -> Result<Vec<Example>, String> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(at) = text.get(rest..).and_then(|t| t.find("<!-- ")).map(|i| i + rest) {
        rest = at + 5;
        let line_end = text.get(at..).and_then(|t| t.find("-->")).map(|i| i + at).ok_or("unclosed comment")?;
        let comment = text.get(at + 5..line_end).unwrap_or("").trim();
        let (exact, spec) = match comment.split_once(": ") {
            Some(("checked", spec)) => (true, spec),
            Some(("shape", spec)) => (false, spec),
            _ => continue,
        };
        let bad = || format!("{}: malformed example marker {comment:?}", doc.display());
        let (demo, uri) = spec.split_once(", GET ").ok_or_else(bad)?;
        let mut words = demo.split_whitespace();
        let (Some("demo"), Some(videos), Some(seed)) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let open = text.get(line_end..).and_then(|t| t.find("```json\n")).map(|i| i + line_end + 8).ok_or_else(bad)?;
        let close = text.get(open..).and_then(|t| t.find("```")).map(|i| i + open).ok_or_else(bad)?;
        out.push(Example {
            doc: doc.to_owned(),
            exact,
            videos: videos.parse().map_err(|_| bad())?,
            seed: seed.parse().map_err(|_| bad())?,
            uri: uri.trim().to_owned(),
            json: open..close,
        });
    }
    Ok(out)
}

/// The answer as sent (fields in the binary's order), one result a line.
fn layout(raw: &str) -> String {
    raw.replace("\"results\":[{", "\n \"results\":[\n  {")
        .replace("},{\"id\"", "},\n  {\"id\"")
        .replace("}],\"", "}],\n \"")
}

/// Whether `doc` and `real` have the same fields (recursively; arrays by their first item).
fn same_shape(doc: &Value, real: &Value, path: &str) -> Result<(), String> {
    match (doc, real) {
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<&String>, Vec<&String>) = (a.keys().collect(), b.keys().collect());
            if ka != kb {
                return Err(format!("{path}: the docs have fields {ka:?}, the answer {kb:?}"));
            }
            for (k, v) in a {
                if k == "schema_version" && Some(v) != b.get(k) {
                    return Err(format!("{path}.{k}: the docs say {v}, the binary {:?}", b.get(k)));
                }
                same_shape(v, &b[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) => match (a.first(), b.first()) {
            (Some(x), Some(y)) => same_shape(x, y, &format!("{path}[0]")),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

#[test]
fn the_docs_example_answers_are_the_binarys() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = TestDir::new("docs-drift");
    let bless = std::env::var_os("VIDEOFEED_BLESS").is_some();
    let mut servers: BTreeMap<(u64, u64), Server> = BTreeMap::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in DOCS {
        let path = root.join(name);
        let mut text = std::fs::read_to_string(&path)?;
        let found = examples(&path, &text)?;
        // Back to front, so blessing one block does not move the next one's range.
        for ex in found.iter().rev() {
            let key = (ex.videos, ex.seed);
            let server = match servers.entry(key) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let db = dir.path(&format!("demo-{}-{}.db", ex.videos, ex.seed));
                    let (videos, seed) = (ex.videos.to_string(), ex.seed.to_string());
                    let out = run(&["demo", "--db", db.to_str().unwrap_or(""), "--videos", &videos, "--seed", &seed]);
                    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                    let server = Server::start(&dir, &db, 2);
                    crate::util::wait_index_current(&server, &db);
                    e.insert(server)
                }
            };
            let resp = server.get(&ex.uri);
            let raw = String::from_utf8_lossy(resp.body()).into_owned();
            let real: Value = serde_json::from_str(&raw)?;
            let shown = text.get(ex.json.clone()).unwrap_or("");
            let doc: Value = match serde_json::from_str(shown) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{} ({}): the example is not JSON: {e}", ex.doc.display(), ex.uri));
                    continue;
                }
            };
            checked += 1;
            let verdict = if ex.exact {
                if doc == real {
                    Ok(())
                } else {
                    Err(format!("differs; the binary answers:\n{}", serde_json::to_string_pretty(&real)?))
                }
            } else {
                same_shape(&doc, &real, "$")
            };
            match verdict {
                Err(_) if bless && ex.exact => {
                    text.replace_range(ex.json.clone(), &format!("{}\n", layout(&raw)));
                }
                Err(why) => failures.push(format!("{} GET {}: {why}", ex.doc.display(), ex.uri)),
                Ok(()) => {}
            }
        }
        if bless {
            std::fs::write(&path, &text)?;
        }
    }
    assert!(checked >= 3, "the docs lost their checked examples ({checked} found)");
    assert!(failures.is_empty(), "{}\n(VIDEOFEED_BLESS=1 rewrites the checked examples)", failures.join("\n\n"));
    Ok(())
}
