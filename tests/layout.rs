//! The layout rule of `docs/architecture.md`, checked on the source: each
//! top-level module of the library imports only modules of a lower rank, so
//! dependencies point one way and no cycle can form between them. The binary's
//! `cli/` may use everything; test-only `fuzz_tests` is outside the ranks.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::TestResult;

/// Top-level modules and their ranks (lower = more basic).
const RANKS: &[(&str, u8)] = &[
    ("timefmt", 0),
    ("text", 0),
    ("sys", 0),
    ("config", 0),
    ("fcgi", 0),
    ("obs", 1),
    ("store", 2),
    ("search", 3),
    ("jobs", 3),
    ("http", 4),
    ("server", 5),
];

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// Every `crate::X` a file names, with its line number.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push((n + 1, name));
            rest = after;
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

#[test]
fn modules_import_only_lower_ranks() -> TestResult {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files)?;
    let mut violations = Vec::new();
    let mut edges: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut checked = 0;
    for file in &files {
        let rel = file.strip_prefix(&src)?;
        let top = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
        let top = top.strip_suffix(".rs").unwrap_or(top);
        if matches!(top, "lib" | "main" | "cli" | "fuzz_tests") {
            continue;
        }
        let Some(own) = rank(top) else {
            violations.push(format!("{}: module {top} has no rank in tests/layout.rs", rel.display()));
            continue;
        };
        checked += 1;
        for (line, target) in crate_refs(&std::fs::read_to_string(file)?) {
            if target == top {
                continue;
            }
            *edges.entry((top.to_owned(), target.clone())).or_default() += 1;
            match rank(&target) {
                Some(r) if r < own => {}
                Some(r) => violations.push(format!(
                    "{}:{line}: {top} (rank {own}) imports {target} (rank {r}): dependencies must point down",
                    rel.display()
                )),
                None => violations.push(format!("{}:{line}: {top} imports unknown module {target}", rel.display())),
            }
        }
    }
    assert!(checked > 30, "only {checked} files checked");
    assert!(violations.is_empty(), "layout violations:\n{}\nedges: {edges:?}", violations.join("\n"));
    // The edges the architecture relies on exist (the check is not vacuous).
    for (from, to) in
        [("http", "search"), ("http", "store"), ("jobs", "store"), ("search", "store"), ("server", "http")]
    {
        assert!(edges.contains_key(&(from.to_owned(), to.to_owned())), "{from} -> {to} expected");
    }
    Ok(())
}

#[test]
fn the_protocol_layer_imports_nothing_of_the_crate() -> TestResult {
    let mut files = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fcgi"), &mut files)?;
    for file in files {
        let refs: Vec<_> =
            crate_refs(&std::fs::read_to_string(&file)?).into_iter().filter(|(_, m)| m != "fcgi").collect();
        assert!(refs.is_empty(), "{}: {refs:?}", file.display());
    }
    Ok(())
}

/// The rank index's files (`src/search/index/`) by rank: each imports only files of
/// a lower rank (tests aside), so the codec, the prefix table, the snapshot's data,
/// the delta, the walks and the file format point one way (issue 36). Lower ranks
/// are pure data; `mod.rs` (the shared state) sits on top.
const INDEX_RANKS: &[(&str, u8)] = &[
    ("arr", 0),
    ("codec", 0),
    ("hidden", 0),
    ("terms", 0),
    ("thresholds", 0),
    ("columns", 1),
    ("memo", 1),
    ("prefixes", 1),
    ("snapshot", 2),
    ("build", 3),
    ("delta", 3),
    ("persist", 3),
    ("load", 4),
    ("walk", 4),
    ("mod", 5),
];

/// The sibling modules a file of `src/search/index/` names (`super::X`,
/// `crate::search::index::X`, `super::super::X`), outside its tests, with line numbers.
fn index_refs(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        for marker in ["crate::search::index::", "super::super::", "crate::search::", "super::"] {
            let mut rest = line;
            while let Some(i) = rest.find(marker) {
                let after = &rest[i + marker.len()..];
                // `super::{a, b::C}` names a and b; `super::a::…` names a.
                let names: Vec<String> = match after.strip_prefix('{') {
                    Some(group) => group
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .map(|part| part.trim().split("::").next().unwrap_or("").to_owned())
                        .collect(),
                    None => vec![after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()],
                };
                // `super::super::X` and `crate::search::X` name a module beside `index`.
                let outside = marker == "super::super::" || marker == "crate::search::";
                let nested = marker == "super::" && rest[..i].ends_with("super::");
                for name in names.into_iter().filter(|n| !n.is_empty() && !nested) {
                    out.push((n + 1, if outside { format!("search::{name}") } else { name }));
                }
                rest = after;
            }
        }
    }
    out
}

#[test]
fn the_rank_index_files_import_one_way() -> TestResult {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/search/index");
    let mut violations = Vec::new();
    let mut edges = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        let Some(own) = INDEX_RANKS.iter().find(|(m, _)| *m == name).map(|(_, r)| *r) else {
            violations.push(format!("{name}.rs has no rank in tests/layout.rs"));
            continue;
        };
        for (line, target) in index_refs(&std::fs::read_to_string(&path)?) {
            if target == name || target == "search::index" {
                continue;
            }
            if target == "search::typo" {
                violations.push(format!("{name}.rs:{line}: imports search::typo, which sits above the index"));
                continue;
            }
            if target.starts_with("search::") {
                continue; // beside the index: the search layer's own pure modules (tokenize, bm25, query)
            }
            match INDEX_RANKS.iter().find(|(m, _)| *m == target).map(|(_, r)| *r) {
                Some(r) if r < own => edges.push((name.clone(), target)),
                Some(r) => violations.push(format!(
                    "{name}.rs:{line}: {name} (rank {own}) imports {target} (rank {r}): must point down"
                )),
                None => {} // not a sibling module (a type or function of `super`, as in `super::Error`)
            }
        }
    }
    assert!(violations.is_empty(), "rank index layout violations:\n{}", violations.join("\n"));
    for (from, to) in [("walk", "snapshot"), ("walk", "delta"), ("snapshot", "prefixes"), ("prefixes", "codec")] {
        assert!(edges.iter().any(|(f, t)| f == from && t == to), "{from} -> {to} expected: {edges:?}");
    }
    Ok(())
}
