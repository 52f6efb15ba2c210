//! The top-k walks: a query's phrases matched against a [`Snapshot`] brought up
//! to date by its [`Delta`], ranked as FTS5's `bm25()` ranks them, and counted.
//! A phrase's rows come from its term's postings, a merge (kept in the memo),
//! or unmerged through the prefix table; a ranking walks score classes best
//! first (one phrase; several phrases, bounded by what the others can add) or
//! drives the row loop from the rarest phrase, galloping in the others. The
//! caller uses SQL for any database generation other than the one a snapshot
//! was built from; answers are the same bits either way (decision 20).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::columns::{Filter, Key};
use super::delta::{Delta, DeltaPhrase, Row};
use super::hidden::Hidden;
use super::memo::{Classed, MAX_CLASS_CELLS, MAX_CLASS_FREQS, Merged, Scratch, phrase_key};
use super::prefixes;
use super::snapshot::{Forward, Hit, Snapshot};
use super::thresholds;
use crate::search::bm25::{B, CHANNEL_WEIGHT, CHANNEL_WEIGHT_INT, K1, TITLE_WEIGHT, TITLE_WEIGHT_INT};
use crate::search::query::Sort;
use crate::search::tokenize::Phrase;

/// One phrase's matches: rows ascending with the weighted frequency in each.
enum PhraseMatches<'a> {
    /// A single term: its postings, read in place.
    Term { snapshot: &'a Snapshot, term: usize, rowids: &'a [u32] },
    /// Several terms (a prefix) merged: a row's frequency sums its instances.
    Merged { rowids: Vec<u32>, freq: Vec<u32> },
    /// A merge kept in the snapshot's [`super::memo::Memo`].
    Kept(std::sync::Arc<Merged>),
    /// A prefix of many rows, not merged: `rows` base rows hold one of the terms
    /// `terms` (the [`prefixes::PrefixTable`]), and a row's weighted count is summed from the
    /// row's own tokens (the forward index). Never the phrase a ranking walks row by
    /// row: [`Snapshot::matches_for`] merges that one.
    /// `classes`: its rows by score class, when the file keeps them (then it may be
    /// the phrase walked: its classes are walked instead of a merge).
    Unmerged {
        snapshot: &'a Snapshot,
        terms: std::ops::Range<usize>,
        rows: usize,
        classes: Option<prefixes::Classes<'a>>,
    },
    /// A phrase of several tokens (`i've` is `i ve`) whose row count an earlier
    /// ranking found (the memo's `phrase_rows`), not the phrase walked: a row's
    /// weighted count is found in the row's own tokens, as the first search did,
    /// instead of keeping (or finding again) every row it matches.
    Checked { snapshot: &'a Snapshot, ranges: Vec<std::ops::Range<usize>>, rows: usize },
}

/// A phrase's rows by score class: kept in the memo (built from its merge), or read
/// from the prefix table in the index file.
enum ClassSource<'a> {
    Kept(std::sync::Arc<Classed>),
    Stored(prefixes::Classes<'a>),
}

/// The rows of one class, ascending.
enum ClassRows<'a> {
    Kept(std::slice::Iter<'a, u32>),
    Stored(super::codec::Rows<'a>),
}

impl Iterator for ClassRows<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            ClassRows::Kept(rows) => rows.next().copied(),
            ClassRows::Stored(rows) => rows.next(),
        }
    }
}

impl ClassSource<'_> {
    fn count(&self) -> usize {
        match self {
            ClassSource::Kept(c) => c.classes.len(),
            ClassSource::Stored(c) => c.count(),
        }
    }

    /// (weighted frequency, token count) of class `class`.
    fn class(&self, class: usize) -> (f64, u32) {
        match self {
            ClassSource::Kept(c) => c.classes.get(class).map_or((0.0, 0), |&(f, d, _)| (f, d)),
            ClassSource::Stored(c) => c.class(class),
        }
    }

    fn rows(&self, class: usize) -> ClassRows<'_> {
        match self {
            ClassSource::Kept(c) => {
                let start = class.checked_sub(1).and_then(|k| c.classes.get(k)).map_or(0, |k| k.2);
                let end = c.classes.get(class).map_or(start, |k| k.2);
                ClassRows::Kept(c.rows.get(start..end).unwrap_or_default().iter())
            }
            ClassSource::Stored(c) => ClassRows::Stored(c.rows(class)),
        }
    }
}

impl PhraseMatches<'_> {
    /// The matching rows ascending (empty for [`PhraseMatches::Unmerged`], which
    /// answers [`PhraseMatches::seek`] and [`PhraseMatches::find`] only).
    fn rowids(&self) -> &[u32] {
        match self {
            PhraseMatches::Term { rowids, .. } => rowids,
            PhraseMatches::Merged { rowids, .. } => rowids,
            PhraseMatches::Kept(m) => &m.rowids,
            PhraseMatches::Unmerged { .. } | PhraseMatches::Checked { .. } => &[],
        }
    }

    /// How many base rows match.
    fn len(&self) -> usize {
        match self {
            PhraseMatches::Unmerged { rows, .. } | PhraseMatches::Checked { rows, .. } => *rows,
            m => m.rowids().len(),
        }
    }

    /// Whether this phrase is read row by row (never merged for this ranking).
    fn is_unmerged(&self) -> bool {
        matches!(self, PhraseMatches::Unmerged { .. } | PhraseMatches::Checked { .. })
    }

    /// The weighted frequency of the row at `at` of [`PhraseMatches::rowids`].
    fn freq(&self, at: usize) -> f64 {
        match self {
            PhraseMatches::Term { snapshot, term, .. } => weighted(snapshot.counts(*term, at)),
            PhraseMatches::Merged { freq, .. } => freq.get(at).copied().map_or(0.0, f64::from),
            PhraseMatches::Kept(m) => m.freq.get(at).copied().map_or(0.0, f64::from),
            PhraseMatches::Unmerged { .. } | PhraseMatches::Checked { .. } => 0.0,
        }
    }

    /// The weighted frequency in base row `rowid` if it matches, for rows asked in
    /// ascending order: `cursor` (0 at first) remembers where the last one was found.
    fn seek(&self, rowid: u32, cursor: &mut usize) -> Option<f64> {
        if let Some(found) = self.in_row(rowid) {
            return found;
        }
        let ids = self.rowids();
        *cursor += gallop(ids.get(*cursor..).unwrap_or_default(), rowid);
        (ids.get(*cursor) == Some(&rowid)).then(|| self.freq(*cursor))
    }

    /// For a phrase read row by row: Some(its weighted count in base row `rowid`, if
    /// there); None for a list (look it up instead).
    fn in_row(&self, rowid: u32) -> Option<Option<f64>> {
        match self {
            PhraseMatches::Unmerged { snapshot, terms, .. } => {
                Some(snapshot.weighted_in_range(rowid, terms).map(f64::from))
            }
            PhraseMatches::Checked { snapshot, ranges, .. } => {
                Some(Some(snapshot.weighted_phrase_in_row(rowid, ranges)).filter(|&w| w > 0).map(f64::from))
            }
            _ => None,
        }
    }

    /// As [`PhraseMatches::seek`], for rows asked in any order.
    fn find(&self, rowid: u32) -> Option<f64> {
        if let Some(found) = self.in_row(rowid) {
            return found;
        }
        self.rowids().binary_search(&rowid).ok().map(|at| self.freq(at))
    }
}

/// A merge too small for the [`super::memo::Memo`], kept in `scratch` for the rest of the answer.
fn keep_local<'a>(key: &str, m: PhraseMatches<'a>, scratch: Option<&Scratch>) -> PhraseMatches<'a> {
    match (m, scratch) {
        (PhraseMatches::Merged { rowids, freq }, Some(scratch)) => {
            PhraseMatches::Kept(scratch.keep(key, Merged { rowids, freq }))
        }
        (m, _) => m,
    }
}

/// FTS5's weighted frequency: each instance adds its column's weight.
fn weighted((title, channel): (f64, f64)) -> f64 {
    title * TITLE_WEIGHT + channel * CHANNEL_WEIGHT
}

/// A row in the running top k, ordered by its [`Key`] (best first); in the bounded
/// heap the worst (highest rank, then highest rowid) is on top.
#[derive(Clone, Copy)]
struct Candidate(Key);

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.order(&other.0)
    }
}

/// Each phrase's weighted frequency in base row `rowid` into `freqs`: the walked
/// phrase's (`driver`) is its class's `f_driver`, the others' are looked up; false
/// as soon as one of them is not in the row.
fn fill_freqs(matches: &[PhraseMatches<'_>], driver: usize, f_driver: f64, rowid: u32, freqs: &mut [f64]) -> bool {
    for (j, (m, slot)) in matches.iter().zip(freqs.iter_mut()).enumerate() {
        *slot = if j == driver {
            f_driver
        } else {
            match m.find(rowid) {
                Some(f) => f,
                None => return false,
            }
        };
    }
    true
}

/// Per phrase, the delta's rows it matches with their weighted counts, and how many
/// of its base rows (`matches`) the delta masks: kept in the delta's memo for its
/// generation, so the ranking and the count of one answer (and later answers) share them.
fn delta_phrases(d: &Delta, phrases: &[Phrase], matches: &[PhraseMatches<'_>]) -> Vec<std::sync::Arc<DeltaPhrase>> {
    phrases
        .iter()
        .zip(matches)
        .map(|(p, m)| {
            d.memo().get_or(&phrase_key(p), || DeltaPhrase {
                rows: delta_matches(d, p),
                masked_in_base: d.masked_rowids().filter(|&r| m.find(r).is_some()).count(),
            })
        })
        .collect()
}

/// The delta's terms equal to `token` (or starting with it, when `prefix`).
fn delta_terms<'d>(delta: &'d Delta, token: &'d str, prefix: bool) -> impl Iterator<Item = &'d String> + 'd {
    delta
        .added()
        .range::<str, _>((std::ops::Bound::Included(token), std::ops::Bound::Unbounded))
        .map(|(t, _)| t)
        .take_while(move |t| if prefix { t.starts_with(token) } else { t.as_str() == token })
}

/// The delta rows `phrase` matches, with FTS5's weighted count in each: a one-token
/// phrase from the delta's postings (every term with the prefix, for a prefix), a
/// longer one by checking the rows that hold its first token.
fn delta_matches(delta: &Delta, phrase: &Phrase) -> BTreeMap<usize, f64> {
    let mut out: BTreeMap<usize, f64> = BTreeMap::new();
    let Some(first) = phrase.tokens.first() else { return out };
    let single_prefix = phrase.tokens.len() == 1 && phrase.prefix;
    let range =
        delta.postings().range::<str, _>((std::ops::Bound::Included(first.as_str()), std::ops::Bound::Unbounded));
    for (term, list) in range {
        let hit = if single_prefix { term.starts_with(first.as_str()) } else { term == first };
        if !hit {
            break;
        }
        for &(i, title, channel) in list {
            let Some(row) = delta.row(i) else { continue };
            let f = if phrase.tokens.len() == 1 {
                weighted((f64::from(title), f64::from(channel)))
            } else {
                weighted_in_row(row, phrase)
            };
            if f > 0.0 {
                *out.entry(i).or_default() += f;
            }
        }
    }
    out
}

/// FTS5's weighted count of `phrase` in a delta row: each place in a column where
/// the phrase's tokens stand in order (the last one as a prefix when it is one)
/// adds that column's weight.
fn weighted_in_row(row: &Row, phrase: &Phrase) -> f64 {
    let n = phrase.tokens.len();
    let last = n.saturating_sub(1);
    let hits = |column: &[String]| -> usize {
        if n == 0 || column.len() < n {
            return 0;
        }
        (0..=column.len() - n)
            .filter(|&p| {
                phrase.tokens.iter().enumerate().all(|(j, t)| {
                    column
                        .get(p + j)
                        .is_some_and(|c| if phrase.prefix && j == last { c.starts_with(t.as_str()) } else { c == t })
                })
            })
            .count()
    };
    weighted((hits(&row.title) as f64, hits(&row.channel) as f64))
}

/// The number of leading elements of `sorted` that are smaller than `target`.
fn gallop(sorted: &[u32], target: u32) -> usize {
    let mut bound = 1;
    while sorted.get(bound).is_some_and(|&v| v < target) {
        bound *= 2;
    }
    let hi = bound.min(sorted.len());
    let lo = bound / 2;
    lo + sorted.get(lo..hi).map_or(0, |s| s.partition_point(|&v| v < target))
}

impl Snapshot {
    /// All rows matching one phrase, with FTS5's weighted frequency (title × 8 + channel × 2).
    fn matches(&self, phrase: &Phrase, scratch: Option<&Scratch>) -> PhraseMatches<'_> {
        if phrase.tokens.len() > 1 {
            // `don't`, `he's`: checking the positions of every row of the rarest token
            // costs as much as a short prefix's merge, and such phrases come back in
            // query after query (and in every shorter query word dropping ranks).
            let key = phrase_key(phrase);
            if let Some(kept) = self.memo.get(&key).or_else(|| scratch.and_then(|s| s.get(&key))) {
                return PhraseMatches::Kept(kept);
            }
            return keep_local(&key, self.phrase_matches(phrase, &key), scratch);
        }
        let token = phrase.tokens.first().map_or("", String::as_str);
        let range = self.term_range(token, phrase.prefix);
        if range.len() == 1 {
            let term = range.start;
            let rowids = self.lists.get(term).map_or(&[][..], |l| l.rowids);
            return PhraseMatches::Term { snapshot: self, term, rowids };
        }
        if range.is_empty() {
            // No term (a whole word no row holds, or a prefix no term starts): nothing
            // matches, whatever a merge kept under similar letters says.
            return PhraseMatches::Merged { rowids: Vec::new(), freq: Vec::new() };
        }
        // A prefix's merge is kept under its phrase key (`hav` + U+0001 + `*`), never
        // under the bare letters: the whole word `hav` is another phrase (issue 29).
        let key = phrase_key(phrase);
        if let Some(kept) = self.memo.get(&key).or_else(|| scratch.and_then(|s| s.get(&key))) {
            return PhraseMatches::Kept(kept);
        }
        // A prefix spanning several terms: merge their postings. Each (row, weighted count)
        // is packed in one u64 (row id high, count low) so the merge is a sort of plain
        // integers, then equal rows are summed.
        let mut packed: Vec<u64> =
            Vec::with_capacity(range.clone().map(|t| self.lists.get(t).map_or(0, |l| l.len())).sum());
        for term in range {
            if let Some(list) = self.lists.get(term) {
                packed.extend(list.rowids.iter().enumerate().map(|(i, &r)| {
                    // The weights as integers: exact, and summed exactly as doubles later.
                    let (t, c) = self.counts_int(term, i);
                    (u64::from(r) << 32) | (TITLE_WEIGHT_INT * u64::from(t) + CHANNEL_WEIGHT_INT * u64::from(c))
                }));
            }
        }
        packed.sort_unstable();
        let mut rowids: Vec<u32> = Vec::with_capacity(packed.len());
        let mut freq: Vec<u32> = Vec::with_capacity(packed.len());
        for p in packed {
            let r = u32::try_from(p >> 32).unwrap_or(u32::MAX);
            let f = u32::try_from(p & u64::from(u32::MAX)).unwrap_or(u32::MAX);
            if rowids.last() == Some(&r) {
                if let Some(last) = freq.last_mut() {
                    *last = last.saturating_add(f);
                }
            } else {
                rowids.push(r);
                freq.push(f);
            }
        }
        if rowids.len() >= thresholds::get().memo_min_rows {
            return PhraseMatches::Kept(self.memo.keep(&key, Merged { rowids, freq }));
        }
        keep_local(&key, PhraseMatches::Merged { rowids, freq }, scratch)
    }

    /// Every phrase's matches for one ranking or count. A one-token prefix the
    /// [`prefixes::PrefixTable`] counts is left unmerged unless it is the phrase with the fewest
    /// rows (the one walked row by row, which must be a list): `music th` walks
    /// `music`'s rows and reads `th*` in each of them, instead of merging the
    /// postings of every term starting with `th`.
    fn matches_for(&self, phrases: &[Phrase], scratch: Option<&Scratch>) -> Vec<PhraseMatches<'_>> {
        let mut all: Vec<PhraseMatches<'_>> =
            phrases.iter().map(|p| self.unmerged(p).unwrap_or_else(|| self.matches(p, scratch))).collect();
        let driver = all.iter().enumerate().min_by_key(|(_, m)| m.len()).map(|(i, _)| i);
        if let Some((slot, phrase)) = driver.and_then(|i| Some((all.get_mut(i)?, phrases.get(i)?))) {
            if matches!(slot, PhraseMatches::Unmerged { classes: None, .. } | PhraseMatches::Checked { .. }) {
                *slot = self.matches(phrase, scratch);
            }
        }
        if all.iter().any(PhraseMatches::is_unmerged) {
            self.memo.prefix_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::obs::metrics::global().prefix_read();
        }
        all
    }

    /// `phrase` unmerged, when it is a one-token prefix over terms the prefix table counts.
    fn unmerged(&self, phrase: &Phrase) -> Option<PhraseMatches<'_>> {
        if phrase.tokens.len() > 1 {
            let rows = self.memo.phrase_rows(&phrase_key(phrase))?;
            let last = phrase.tokens.len() - 1;
            let ranges: Vec<std::ops::Range<usize>> =
                phrase.tokens.iter().enumerate().map(|(j, t)| self.term_range(t, phrase.prefix && j == last)).collect();
            return Some(PhraseMatches::Checked { snapshot: self, ranges, rows });
        }
        let [token] = phrase.tokens.as_slice() else { return None };
        if !phrase.prefix {
            return None;
        }
        let terms = self.term_range(token, true);
        if terms.len() < 2 {
            return None;
        }
        let entry = self.prefixes.find(&terms)?;
        Some(PhraseMatches::Unmerged { snapshot: self, terms, rows: entry.rows, classes: entry.classes })
    }

    /// FTS5's weighted count (title × 8 + channel × 2) of the terms `terms` in base
    /// row `rowid`, from the row's tokens; None when none of them is there.
    fn weighted_in_range(&self, rowid: u32, terms: &std::ops::Range<usize>) -> Option<u32> {
        let slot = usize::try_from(rowid).ok()?;
        let start = usize::try_from(*self.doc_start.get(slot)?).ok()?;
        let title = usize::try_from(*self.title_len.get(slot)?).ok()?;
        let len = usize::try_from(*self.doc_len.get(slot)?).ok()?;
        let (lo, width) = (u32::try_from(terms.start).ok()?, u32::try_from(terms.len()).ok()?);
        let (in_title, in_channel) = (u32::try_from(TITLE_WEIGHT_INT).ok()?, u32::try_from(CHANNEL_WEIGHT_INT).ok()?);
        let weigh = |(p, t): (usize, u32)| match (t.wrapping_sub(lo) < width, p < title) {
            (false, _) => 0,
            (true, true) => in_title,
            (true, false) => in_channel,
        };
        let end = start.checked_add(len)?;
        let sum: u32 = match &self.forward {
            Forward::Narrow(v) => v.get(start..end)?.iter().map(|&t| u32::from(t)).enumerate().map(weigh).sum(),
            Forward::Wide(v) => v.get(start..end)?.iter().copied().enumerate().map(weigh).sum(),
        };
        (sum > 0).then_some(sum)
    }

    /// The rows of one phrase's `matches` by score class: from the index file when it
    /// keeps them, else from the memo or built now ([`Snapshot::classed`]).
    fn class_source<'s>(&'s self, phrase: &Phrase, matches: &PhraseMatches<'s>) -> Option<ClassSource<'s>> {
        match matches {
            PhraseMatches::Unmerged { classes: Some(classes), .. } => Some(ClassSource::Stored(*classes)),
            PhraseMatches::Unmerged { .. } | PhraseMatches::Checked { .. } => None,
            PhraseMatches::Term { term, .. } => match self.prefixes.find(&(*term..term + 1)).and_then(|e| e.classes) {
                Some(classes) => Some(ClassSource::Stored(classes)),
                None => self.classed(phrase, matches).map(ClassSource::Kept),
            },
            m => self.classed(phrase, m).map(ClassSource::Kept),
        }
    }

    /// The rows of one phrase's `matches` by score class, from the memo or built now
    /// (and kept while its budget allows).
    /// None when they would not fit ([`super::memo::Memo::classes_fit`]) or the phrase's rows hold
    /// too many distinct frequencies.
    fn classed(&self, phrase: &Phrase, matches: &PhraseMatches<'_>) -> Option<std::sync::Arc<Classed>> {
        if matches.is_unmerged() {
            return None; // never the case (the phrase walked is merged); no rows to class
        }
        let key = phrase_key(phrase);
        if let Some(kept) = self.memo.classed(&key) {
            return kept;
        }
        if !self.memo.classes_fit(matches.rowids().len()) {
            return None;
        }
        let ids = matches.rowids();
        let len_of =
            |rowid: u32| usize::try_from(rowid).ok().and_then(|slot| self.doc_len.get(slot).copied()).unwrap_or(0);
        // A counting sort: each row's class is (its frequency's place among the few
        // distinct frequencies, its length); rows are visited ascending, so they stay
        // ascending within a class. Linear in the rows, a few nanoseconds each.
        let mut freqs: Vec<u64> = Vec::new();
        let mut codes: Vec<(usize, u32)> = Vec::with_capacity(ids.len());
        let mut longest = 0u32;
        for (i, &rowid) in ids.iter().enumerate() {
            let f = matches.freq(i).to_bits();
            let at = match freqs.iter().position(|&x| x == f) {
                Some(at) => at,
                None if freqs.len() < MAX_CLASS_FREQS => {
                    freqs.push(f);
                    freqs.len() - 1
                }
                None => {
                    self.memo.keep_unclassable(&key); // too many distinct frequencies: the row loop ranks it
                    return None;
                }
            };
            let d = len_of(rowid);
            longest = longest.max(d);
            codes.push((at, d));
        }
        let cells = usize::try_from(longest)
            .ok()
            .and_then(|l| l.checked_add(1))
            .and_then(|width| Some((width, freqs.len().checked_mul(width).filter(|&c| c <= MAX_CLASS_CELLS)?)));
        let Some((width, cells)) = cells else {
            self.memo.keep_unclassable(&key); // rows too long for the counting sort's table
            return None;
        };
        let mut counts = vec![0usize; cells];
        for &(at, d) in &codes {
            if let Some(c) = counts.get_mut(at * width + usize::try_from(d).unwrap_or(0)) {
                *c += 1;
            }
        }
        // Start of each cell's rows; the classes in cell order (their order does not matter).
        let mut classes: Vec<(f64, u32, usize)> = Vec::new();
        let mut next = vec![0usize; cells];
        let mut end = 0;
        for (cell, (&count, start)) in counts.iter().zip(next.iter_mut()).enumerate() {
            *start = end;
            if count > 0 {
                end += count;
                let f = freqs.get(cell / width).copied().unwrap_or(0);
                classes.push((f64::from_bits(f), u32::try_from(cell % width).unwrap_or(u32::MAX), end));
            }
        }
        let mut rows = vec![0u32; ids.len()];
        for (&rowid, &(at, d)) in ids.iter().zip(&codes) {
            if let Some(slot) = next.get_mut(at * width + usize::try_from(d).unwrap_or(0)) {
                if let Some(row) = rows.get_mut(*slot) {
                    *row = rowid;
                }
                *slot += 1;
            }
        }
        classes.shrink_to_fit();
        Some(self.memo.keep_classed(&key, Classed { classes, rows }))
    }

    /// Rows where the phrase's tokens stand next to each other in one column, with
    /// the weighted count of such places (FTS5 counts every starting position).
    /// The rows where a phrase of several tokens stands, kept in the memo under `key`
    /// when finding them meant looking at [`super::memo::MEMO_MIN_ROWS`] rows or more.
    fn phrase_matches(&self, phrase: &Phrase, key: &str) -> PhraseMatches<'_> {
        let last = phrase.tokens.len().saturating_sub(1);
        let ranges: Vec<std::ops::Range<usize>> =
            phrase.tokens.iter().enumerate().map(|(j, t)| self.term_range(t, phrase.prefix && j == last)).collect();
        let empty = PhraseMatches::Merged { rowids: Vec::new(), freq: Vec::new() };
        if ranges.iter().any(|r| r.is_empty()) {
            return empty;
        }
        // Candidates: the rows of the rarest whole-word token.
        let driver = ranges
            .iter()
            .enumerate()
            .filter(|(j, r)| r.len() == 1 && !(phrase.prefix && *j == last))
            .filter_map(|(_, r)| self.lists.get(r.start))
            .min_by_key(|l| l.len());
        let Some(driver) = driver else { return empty };
        let (mut rowids, mut freq) = (Vec::new(), Vec::new());
        for &rowid in driver.rowids.iter() {
            let weighted_count = self.weighted_phrase_in_row(rowid, &ranges);
            if weighted_count > 0 {
                rowids.push(rowid);
                freq.push(weighted_count);
            }
        }
        if driver.len() >= thresholds::get().memo_min_rows {
            // Its row count is kept apart (a few bytes, never evicted with the rows):
            // a later query in which it is not the phrase walked checks its rows one by one.
            self.memo.keep_phrase_rows(key, rowids.len());
            return PhraseMatches::Kept(self.memo.keep_any(key, Merged { rowids, freq }));
        }
        PhraseMatches::Merged { rowids, freq }
    }

    /// FTS5's weighted count of a phrase (its tokens' term ranges, in order) in base
    /// row `rowid`: each place in a column where they stand in order adds the column's
    /// weight (title 8, channel 2). 0 when it is not there.
    fn weighted_phrase_in_row(&self, rowid: u32, ranges: &[std::ops::Range<usize>]) -> u32 {
        let n = ranges.len();
        let slot = usize::try_from(rowid).unwrap_or(usize::MAX);
        let start = self.doc_start.get(slot).copied().unwrap_or(0);
        let title = self.title_len.get(slot).copied().unwrap_or(0);
        let len = self.doc_len.get(slot).copied().unwrap_or(0);
        let mut weighted_count = 0u32;
        for (from, count, weight) in [
            (start, title, TITLE_WEIGHT_INT),
            (start.saturating_add(title), len.saturating_sub(title), CHANNEL_WEIGHT_INT),
        ] {
            let weight = u32::try_from(weight).unwrap_or(u32::MAX);
            let (from, count) = (usize::try_from(from).unwrap_or(0), usize::try_from(count).unwrap_or(0));
            for p in 0..count.saturating_sub(n.saturating_sub(1)) {
                let hit = ranges.iter().enumerate().all(|(j, r)| {
                    let term = self.forward.get(from + p + j);
                    usize::try_from(term).is_ok_and(|t| r.contains(&t))
                });
                if hit {
                    weighted_count = weighted_count.saturating_add(weight);
                }
            }
        }
        weighted_count
    }

    /// The best `limit` rows for the AND of `phrases` in `region` or `GLOBAL`,
    /// ordered as `ORDER BY bm25(...), rowid` orders them.
    pub fn top_k(&self, phrases: &[Phrase], region: &str, limit: usize) -> Vec<Hit> {
        self.top_k_visible(phrases, region, limit, &Hidden::default())
    }

    /// As [`Snapshot::top_k`], skipping the rows in `hidden` (videos the feed leaves
    /// out; they still count in bm25's statistics, as they do in FTS5's).
    pub fn top_k_visible(&self, phrases: &[Phrase], region: &str, limit: usize, hidden: &Hidden) -> Vec<Hit> {
        self.top_k_view(phrases, region, limit, hidden, None, None, None)
    }

    /// As [`Snapshot::top_k_visible`] over this snapshot brought up to date by
    /// `delta`: masked base rows do not count, the delta's rows do, and bm25's totals
    /// (rows, tokens, rows per phrase) are those of the current data.
    /// `scratch` keeps small merges for the answer's other rankings.
    #[allow(clippy::too_many_arguments)]
    pub fn top_k_view(
        &self,
        phrases: &[Phrase],
        region: &str,
        limit: usize,
        hidden: &Hidden,
        delta: Option<&Delta>,
        filter: Option<&Filter<'_>>,
        scratch: Option<&Scratch>,
    ) -> Vec<Hit> {
        let delta = delta.filter(|d| !d.is_empty() || d.has_column_changes());
        let (rows_adjust, tokens_adjust) = delta.map_or((0, 0), Delta::adjust);
        let total_rows = self.n_rows + rows_adjust;
        if phrases.is_empty() || limit == 0 || total_rows <= 0 {
            return Vec::new();
        }
        let code_of = |name: &str| self.regions.iter().position(|r| r == name).and_then(|c| u16::try_from(c).ok());
        let wanted: [Option<u16>; 2] = [code_of(region), code_of("GLOBAL")];

        let matches = self.matches_for(phrases, scratch);
        // The delta's rows: per phrase, the rows it matches with their weighted counts,
        // and how many of its base rows the delta masks (kept for the delta's generation).
        let delta_phrases = delta.map_or_else(Vec::new, |d| delta_phrases(d, phrases, &matches));
        let delta_freq: Vec<&BTreeMap<usize, f64>> = delta_phrases.iter().map(|d| &d.rows).collect();
        // fts5Bm25GetData: avgdl and one IDF per phrase, from whole-table counts.
        let mut hits_per_phrase: Vec<usize> = matches.iter().map(PhraseMatches::len).collect();
        for (hits, d) in hits_per_phrase.iter_mut().zip(&delta_phrases) {
            *hits = *hits - d.masked_in_base + d.rows.len();
        }
        if hits_per_phrase.contains(&0) {
            return Vec::new();
        }
        let n_rows = total_rows as f64;
        let avgdl = (self.n_tokens + tokens_adjust) as f64 / n_rows;
        let idf: Vec<f64> = hits_per_phrase
            .iter()
            .map(|&hits| {
                let hits = hits as f64;
                let idf = ((n_rows - hits + 0.5) / (hits + 0.5)).ln();
                if idf <= 0.0 { 1e-6 } else { idf }
            })
            .collect();
        let score_of = |freqs: &mut dyn Iterator<Item = f64>, d: f64| -> f64 {
            let mut score = 0.0;
            for (f, idf) in freqs.zip(&idf) {
                score += idf * ((f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * d / avgdl)));
            }
            score
        };
        // With a filter: the base's ids of the channels asked for (empty: no base row has them).
        let channel_ids = self.channel_ids(filter);
        let overrides = delta.filter(|d| d.has_column_changes());
        let mut heap: std::collections::BinaryHeap<Candidate> = std::collections::BinaryHeap::with_capacity(limit + 1);
        let offer = |heap: &mut std::collections::BinaryHeap<Candidate>, candidate: Candidate| {
            if heap.len() < limit {
                heap.push(candidate);
            } else if heap.peek().is_some_and(|worst| candidate < *worst) {
                heap.pop();
                heap.push(candidate);
            }
        };

        let masked = delta.map(Delta::masked);
        let skip = |rowid: u32| -> bool {
            let code = usize::try_from(rowid).ok().and_then(|slot| self.region.get(slot).copied());
            !wanted.iter().any(|w| w.is_some() && *w == code)
                || hidden.contains(rowid)
                || masked.is_some_and(|m| m.contains(rowid))
        };
        let limits = thresholds::get();
        let classed_off = self.memo.classed_off.load(std::sync::atomic::Ordering::Relaxed);
        let single = match (phrases, matches.as_slice()) {
            ([phrase], [m]) if filter.is_none() && m.len() >= limits.classed_min_rows => Some((phrase, m)),
            _ => None,
        };
        let classed = single.filter(|_| !classed_off).and_then(|(phrase, m)| self.class_source(phrase, m));
        let any_region = wanted.iter().any(Option::is_some);
        let driver = matches.iter().enumerate().min_by_key(|(_, m)| m.len()).map_or(0, |(i, _)| i);
        let mut classed_done = false;
        if let Some(classed) = classed.as_ref().filter(|_| any_region) {
            classed_done = true;
            self.memo.classed_answers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            crate::obs::metrics::global().rank_walk(crate::obs::metrics::Walk::OnePhrase);
            // Each class's score, computed as the plain loop computes a row's; best first.
            let mut order: Vec<(f64, usize)> = (0..classed.count())
                .map(|i| {
                    let (f, d) = classed.class(i);
                    (score_of(&mut std::iter::once(f), f64::from(d)), i)
                })
                .collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (score, class) in order {
                if heap.len() >= limit && heap.peek().is_some_and(|worst| -score > worst.0.rank) {
                    break; // this class and every later one rank below the page
                }
                for rowid in classed.rows(class) {
                    if skip(rowid) {
                        continue;
                    }
                    let candidate =
                        Candidate(Key { major: (0, 0), rank: -score, rowid: i64::from(rowid), score: -score });
                    if heap.len() >= limit && heap.peek().is_some_and(|worst| candidate > *worst) {
                        break; // one score, rows ascending: the rest of the class ranks below too
                    }
                    offer(&mut heap, candidate);
                }
            }
        }
        // Several phrases, the rarest still long: walk its classes best first, checking
        // the others' lists for each row, until no row left can reach the page (the
        // others add at most IDF × (k1 + 1) each). Given up, for the row-by-row loop,
        // once it has checked an eighth of the list's rows without stopping.
        let bounded = match (phrases.get(driver), matches.get(driver)) {
            (Some(phrase), Some(m))
                if phrases.len() >= 2
                    && filter.is_none()
                    && any_region
                    && m.len() >= limits.classed_min_rows
                    && !classed_off =>
            {
                self.class_source(phrase, m)
            }
            _ => None,
        };
        if let Some(classed) = bounded.as_ref() {
            let idf_a = idf.get(driver).copied().unwrap_or(0.0);
            let rest: f64 = idf.iter().enumerate().filter(|(j, _)| *j != driver).map(|(_, idf)| idf * (K1 + 1.0)).sum();
            let mut order: Vec<(f64, usize)> = (0..classed.count())
                .map(|i| {
                    let (f, d) = classed.class(i);
                    let bound = idf_a * ((f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * f64::from(d) / avgdl)));
                    (bound, i)
                })
                .collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut budget = matches.get(driver).map_or(0, PhraseMatches::len) / limits.walk_give_up_divisor.max(1);
            let mut freqs = vec![0.0; matches.len()];
            classed_done = true;
            'classes: for (bound, class) in order {
                let reachable = (bound + rest) * (1.0 + 1e-9);
                if heap.len() >= limit && heap.peek().is_some_and(|worst| reachable < -worst.0.rank) {
                    break; // no row of this class or a later one reaches the page
                }
                let (f_a, d) = classed.class(class);
                'rows: for rowid in classed.rows(class) {
                    if skip(rowid) {
                        continue;
                    }
                    if budget == 0 {
                        classed_done = false;
                        break 'classes;
                    }
                    budget -= 1;
                    if !fill_freqs(&matches, driver, f_a, rowid, &mut freqs) {
                        continue 'rows;
                    }
                    let score = score_of(&mut freqs.iter().copied(), f64::from(d));
                    offer(
                        &mut heap,
                        Candidate(Key { major: (0, 0), rank: -score, rowid: i64::from(rowid), score: -score }),
                    );
                }
            }
            if classed_done {
                self.memo.bounded_answers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::obs::metrics::global().rank_walk(crate::obs::metrics::Walk::SeveralPhrases);
            } else {
                heap.clear();
                self.memo.bounded_given_up.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::obs::metrics::global().rank_walk(crate::obs::metrics::Walk::SeveralGivenUp);
            }
        }
        // The base, row by row: each row matching every phrase scored (and filtered).
        let mut consider = |rowid: u32, freqs: &[f64]| {
            let slot = usize::try_from(rowid).unwrap_or(usize::MAX);
            let mut major = (0, 0);
            if let Some(f) = filter {
                let (duration, published, views, channel) = match overrides.and_then(|d| d.column_change(rowid)) {
                    Some(c) => (c.duration, c.published, c.views, Err(c.channel.as_str())),
                    None => {
                        let (d, p, v, c) = self.cols.get(slot);
                        (d, p, v, Ok(c))
                    }
                };
                let is_asked = |asked: &[String]| match channel {
                    Ok(id) => channel_ids.as_ref().is_some_and(|ids| ids.contains(&id)),
                    Err(name) => asked.iter().any(|a| a == name),
                };
                if !f.admits(duration, is_asked) {
                    return;
                }
                major = f.key(published, views);
            }
            let d = f64::from(self.doc_len.get(slot).copied().unwrap_or(0));
            let score = score_of(&mut freqs.iter().copied(), d);
            // FTS5 returns -1.0 * score: the same bits.
            let rank = if filter.is_some_and(|f| f.sort != Sort::Relevance) { 0.0 } else { -score };
            offer(&mut heap, Candidate(Key { major, rank, rowid: i64::from(rowid), score: -score }));
        };
        let mut freqs = vec![0.0; matches.len()];
        if !classed_done && any_region && matches.iter().all(|m| m.len() > 0) {
            if let Some(PhraseMatches::Unmerged { classes: Some(classes), .. }) = matches.get(driver) {
                // The rarest phrase is a prefix whose rows the file keeps by class: every
                // row of every class (in class order: the heap does not care), the others
                // looked up.
                for class in 0..classes.count() {
                    let (f_a, _) = classes.class(class);
                    for rowid in classes.rows(class) {
                        if skip(rowid) {
                            continue;
                        }
                        if fill_freqs(&matches, driver, f_a, rowid, &mut freqs) {
                            consider(rowid, &freqs);
                        }
                    }
                }
            } else {
                // Driven from the shortest list, galloping in the others.
                let mut cursors = vec![0usize; matches.len()];
                let drive = matches.get(driver).map_or(&[][..], PhraseMatches::rowids);
                'rows: for &rowid in drive {
                    if skip(rowid) {
                        continue;
                    }
                    for ((m, cursor), f) in matches.iter().zip(cursors.iter_mut()).zip(freqs.iter_mut()) {
                        match m.seek(rowid, cursor) {
                            Some(found) => *f = found,
                            None => continue 'rows,
                        }
                    }
                    consider(rowid, &freqs);
                }
            }
        }
        // The delta's rows matching every phrase, driven from the phrase with fewest.
        if let Some(fewest) = delta_freq.iter().min_by_key(|m| m.len()) {
            for &i in fewest.keys() {
                let Some(row) = delta.and_then(|d| d.row(i)) else { continue };
                let in_region = row.region == region || row.region == "GLOBAL";
                if !in_region || hidden.contains(row.rowid) {
                    continue;
                }
                let mut major = (0, 0);
                if let Some(f) = filter {
                    if !f.admits(row.cols.duration, |asked| asked.contains(&row.cols.channel)) {
                        continue;
                    }
                    major = f.key(row.cols.published, row.cols.views);
                }
                let freqs: Option<Vec<f64>> = delta_freq.iter().map(|m| m.get(&i).copied()).collect();
                let Some(freqs) = freqs else { continue };
                let score = score_of(&mut freqs.into_iter(), row.len() as f64);
                let rank = if filter.is_some_and(|f| f.sort != Sort::Relevance) { 0.0 } else { -score };
                offer(&mut heap, Candidate(Key { major, rank, rowid: i64::from(row.rowid), score: -score }));
            }
        }
        heap.into_sorted_vec().into_iter().map(|c| Hit { rowid: c.0.rowid, rank: c.0.score }).collect()
    }

    /// The base's ids of the channels `filter` asks for (None without a channel filter;
    /// empty when no base row has them).
    fn channel_ids(&self, filter: Option<&Filter<'_>>) -> Option<Vec<u32>> {
        filter.and_then(|f| f.channel).map(|names| names.iter().filter_map(|c| self.cols.channel_id(c)).collect())
    }

    /// How many rows now match every phrase in `region` (or GLOBAL), outside `hidden`
    /// and passing `filter`, counted up to `cap` (the result is at most `cap`; `cap`
    /// means "at least `cap`"). The rows are those [`Snapshot::top_k_view`] ranks
    /// (the delta's rows, the base's not masked by it); counting stops at `cap`, so
    /// a common word costs at most about `cap` rows of its region.
    #[allow(clippy::too_many_arguments)]
    pub fn count_view(
        &self,
        phrases: &[Phrase],
        region: &str,
        cap: usize,
        hidden: &Hidden,
        delta: Option<&Delta>,
        filter: Option<&Filter<'_>>,
        scratch: Option<&Scratch>,
    ) -> usize {
        if phrases.is_empty() || cap == 0 {
            return 0;
        }
        let delta = delta.filter(|d| !d.is_empty() || d.has_column_changes());
        let code_of = |name: &str| self.regions.iter().position(|r| r == name).and_then(|c| u16::try_from(c).ok());
        let wanted: [Option<u16>; 2] = [code_of(region), code_of("GLOBAL")];
        let matches = self.matches_for(phrases, scratch);
        let channel_ids = self.channel_ids(filter);
        let overrides = delta.filter(|d| d.has_column_changes());
        let mut count = 0usize;
        // The delta's rows matching every phrase.
        if let Some(d) = delta {
            let per_phrase = delta_phrases(d, phrases, &matches);
            if let Some(fewest) = per_phrase.iter().map(|p| &p.rows).min_by_key(|m| m.len()) {
                for &i in fewest.keys() {
                    let Some(row) = d.row(i) else { continue };
                    let in_region = row.region == region || row.region == "GLOBAL";
                    if !in_region || hidden.contains(row.rowid) || !per_phrase.iter().all(|p| p.rows.contains_key(&i)) {
                        continue;
                    }
                    if filter.is_some_and(|f| !f.admits(row.cols.duration, |asked| asked.contains(&row.cols.channel))) {
                        continue;
                    }
                    count += 1;
                    if count >= cap {
                        return cap;
                    }
                }
            }
        }
        // The base's rows, driven from the shortest list.
        if !wanted.iter().any(Option::is_some) || matches.iter().any(|m| m.len() == 0) {
            return count;
        }
        let masked = delta.map(Delta::masked);
        let driver = matches.iter().enumerate().min_by_key(|(_, m)| m.len()).map_or(0, |(i, _)| i);
        // The driver's rows: ascending from a list (the others galloped), or class
        // after class from the file's classes of a prefix (the others looked up).
        let stored = match matches.get(driver) {
            Some(PhraseMatches::Unmerged { classes: Some(classes), .. }) => Some(*classes),
            _ => None,
        };
        let drive: Box<dyn Iterator<Item = u32> + '_> = match stored {
            Some(classes) => Box::new((0..classes.count()).flat_map(move |k| classes.rows(k))),
            None => Box::new(matches.get(driver).map_or(&[][..], PhraseMatches::rowids).iter().copied()),
        };
        let mut cursors = vec![0usize; matches.len()];
        'rows: for rowid in drive {
            let slot = usize::try_from(rowid).unwrap_or(usize::MAX);
            let code = self.region.get(slot).copied();
            if !wanted.iter().any(|w| w.is_some() && *w == code)
                || hidden.contains(rowid)
                || masked.is_some_and(|m| m.contains(rowid))
            {
                continue;
            }
            for (j, (m, cursor)) in matches.iter().zip(cursors.iter_mut()).enumerate() {
                if j == driver {
                    continue;
                }
                let found = if stored.is_some() { m.find(rowid) } else { m.seek(rowid, cursor) };
                if found.is_none() {
                    continue 'rows;
                }
            }
            if let Some(f) = filter {
                let (duration, channel) = match overrides.and_then(|d| d.column_change(rowid)) {
                    Some(c) => (c.duration, Err(c.channel.as_str())),
                    None => {
                        let (d, _, _, c) = self.cols.get(slot);
                        (d, Ok(c))
                    }
                };
                let is_asked = |asked: &[String]| match channel {
                    Ok(id) => channel_ids.as_ref().is_some_and(|ids| ids.contains(&id)),
                    Err(name) => asked.iter().any(|a| a == name),
                };
                if !f.admits(duration, is_asked) {
                    continue;
                }
            }
            count += 1;
            if count >= cap {
                return cap;
            }
        }
        count
    }

    /// [`Snapshot::knows`] for the current data: this snapshot brought up to date by `delta`.
    pub fn knows_view(&self, token: &str, prefix: bool, delta: &Delta) -> bool {
        let base = self.term_range(token, prefix).any(|t| self.df(t) > delta.removed(t));
        base || delta_terms(delta, token, prefix).next().is_some()
    }

    /// [`Snapshot::candidates`] for the current data: this snapshot brought up to date by `delta`.
    pub fn candidates_view(&self, token: &str, prefix: bool, delta: &Delta, n: usize) -> Vec<String> {
        if self.knows_view(token, prefix, delta) {
            return Vec::new();
        }
        // Base terms (rows adjusted) and delta terms, merged in byte order.
        let mut base =
            self.terms.iter().enumerate().map(|(i, t)| (&**t, self.df(i).saturating_sub(delta.removed(i)))).peekable();
        let mut added = delta.added().iter().map(|(t, n)| (t.as_str(), *n as usize)).peekable();
        let merged = std::iter::from_fn(move || match (base.peek(), added.peek()) {
            (Some(b), Some(a)) if b.0 == a.0 => {
                let (b, a) = (base.next()?, added.next()?);
                Some((b.0, b.1 + a.1))
            }
            (Some(b), Some(a)) if b.0 < a.0 => base.next(),
            (Some(_), Some(_)) | (None, Some(_)) => added.next(),
            (Some(_), None) => base.next(),
            (None, None) => None,
        });
        super::terms::candidates_among(merged, token, n)
    }

    /// [`Snapshot::docs`] for the current data: this snapshot brought up to date by `delta`.
    pub fn docs_view(&self, token: &str, prefix: bool, delta: &Delta) -> usize {
        let base = self
            .term_range(token, prefix)
            .map(|t| self.df(t).saturating_sub(delta.removed(t)))
            .fold(0usize, usize::saturating_add);
        let added = delta_terms(delta, token, prefix)
            .filter_map(|t| delta.added().get(t))
            .map(|n| *n as usize)
            .fold(0usize, usize::saturating_add);
        base.saturating_add(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::index::build::{BuildError, Builder, Instance, MAX_ROWID};
    use crate::search::index::memo::{Lru, Memo, memo_budget};
    use crate::search::index::prefixes::PrefixTable;
    use crate::search::index::snapshot::prefix_table_with;

    fn inst(rowid: i64, column: u8, offset: u32) -> Instance {
        Instance { rowid, column, offset }
    }

    fn sample() -> Snapshot {
        // rows: 1 "music live" / "chan"; 2 "music music" / "music"; 3 "movie" / "chan"
        let mut b = Builder::new(7, 3);
        for (r, reg, t, c) in [(1, "US", 2, 1), (2, "GLOBAL", 2, 1), (3, "DE", 1, 1)] {
            b.set_region(r, reg).unwrap();
            b.set_sizes(r, t, c).unwrap();
        }
        b.begin_terms(4);
        b.add_term("chan", &[inst(1, 1, 0), inst(3, 1, 0)]).unwrap();
        b.add_term("live", &[inst(1, 0, 1)]).unwrap();
        b.add_term("movie", &[inst(3, 0, 0)]).unwrap();
        b.add_term("music", &[inst(1, 0, 0), inst(2, 0, 0), inst(2, 0, 1), inst(2, 1, 0)]).unwrap();
        b.finish()
    }

    fn ph(tokens: &[&str], prefix: bool) -> Vec<Phrase> {
        vec![Phrase { tokens: tokens.iter().map(|t| (*t).to_owned()).collect(), prefix }]
    }

    #[test]
    fn corrections_pick_the_most_frequent_close_term() {
        let s = sample();
        assert_eq!(s.correct("musix", false).as_deref(), Some("music"));
        assert_eq!(s.correct("muisc", false).as_deref(), Some("music"));
        assert_eq!(s.correct("music", false), None, "known words are not corrected");
        assert_eq!(s.correct("mus", true), None, "too short, and a known prefix");
        assert_eq!(s.correct("qqqqq", false), None);
        assert_eq!(s.correct("movei", false).as_deref(), Some("movie"));
    }

    #[test]
    fn a_small_merge_is_made_once_per_answer() {
        // `m*` spans `movie` and `music` (two terms: a merge, too small for the memo).
        let s = sample();
        let hidden = Hidden::default();
        let prefix = ph(&["m"], true);
        let alone = s.top_k_view(&prefix, "US", 10, &hidden, None, None, None);
        let scratch = Scratch::default();
        let first = s.top_k_view(&prefix, "US", 10, &hidden, None, None, Some(&scratch));
        assert_eq!(scratch.reused(), 0);
        let mut both = prefix.clone();
        both.extend(ph(&["chan"], false));
        let second = s.top_k_view(&both, "US", 10, &hidden, None, None, Some(&scratch));
        assert_eq!(scratch.reused(), 1, "the second ranking took the merge from the scratch");
        assert_eq!(first, alone, "the same rows and bits as without a scratch");
        assert_eq!(second, s.top_k_view(&both, "US", 10, &hidden, None, None, None));
        assert_eq!(s.memo.bytes(), 0, "too small for the snapshot's memo");
    }

    #[test]
    #[allow(clippy::cast_possible_truncation, reason = "small test numbers")]
    fn one_phrase_ranked_by_classes_answers_as_the_plain_loop() {
        // 30,000 rows of 2-9 tokens from four terms, in four regions.
        const N: i64 = 30_000;
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let names = ["coal", "common", "cool", "other"];
        let mut b = Builder::new(1, N);
        let mut instances: Vec<Vec<Instance>> = vec![Vec::new(); names.len()];
        let mut layout = Vec::new();
        for r in 1..=N {
            let (t, c) = (1 + next(6) as u32, 1 + next(3) as u32);
            b.set_sizes(r, t, c).unwrap();
            b.set_region(r, ["US", "GLOBAL", "DE", "BR"][next(4) as usize]).unwrap();
            layout.push((r, t, c));
        }
        b.begin_terms(names.len());
        for (r, t, c) in layout {
            for (column, len) in [(0u8, t), (1u8, c)] {
                for offset in 0..len {
                    let term = match next(10) {
                        0..5 => 1,
                        5 => 0,
                        6 => 2,
                        _ => 3,
                    };
                    instances[term].push(inst(r, column, offset));
                }
            }
        }
        for (name, list) in names.iter().zip(&instances) {
            let mut list = list.clone();
            list.sort_by_key(|i| (i.rowid, i.column, i.offset));
            b.add_term(name, &list).unwrap();
        }
        let s = b.finish();
        let hidden = Hidden::from_rowids((1..N).step_by(97));
        for (query, prefix) in [("common", false), ("co", true), ("cool", false)] {
            for region in ["US", "DE", "FR"] {
                for limit in [1, 7, 25, 100, 1000] {
                    s.memo.classed_off.store(true, std::sync::atomic::Ordering::Relaxed);
                    let plain = s.top_k_visible(&ph(&[query], prefix), region, limit, &hidden);
                    s.memo.classed_off.store(false, std::sync::atomic::Ordering::Relaxed);
                    let before = s.memo.classed_answers();
                    let classed = s.top_k_visible(&ph(&[query], prefix), region, limit, &hidden);
                    assert_eq!(classed, plain, "{query} {region} {limit}");
                    let big = query != "cool";
                    assert_eq!(
                        s.memo.classed_answers() - before,
                        u64::from(big),
                        "{query} {region} {limit}: the classed path answered"
                    );
                    if region != "FR" {
                        assert_eq!(plain.len(), limit, "{query} {region}");
                    }
                }
            }
        }
        // Several phrases: the rarest one's classes walked best first (or given up).
        let queries: [&[(&str, bool)]; 4] = [
            &[("other", false), ("common", false)],
            &[("common", false), ("other", false)],
            &[("common", false), ("co", true)],
            &[("other", false), ("common", false), ("co", true)],
        ];
        for query in queries {
            let phrases: Vec<Phrase> = query.iter().flat_map(|(t, prefix)| ph(&[t], *prefix)).collect();
            for region in ["US", "DE", "FR"] {
                for limit in [1, 7, 25, 100, 1000] {
                    s.memo.classed_off.store(true, std::sync::atomic::Ordering::Relaxed);
                    let plain = s.top_k_visible(&phrases, region, limit, &hidden);
                    s.memo.classed_off.store(false, std::sync::atomic::Ordering::Relaxed);
                    let bounded = s.top_k_visible(&phrases, region, limit, &hidden);
                    assert_eq!(bounded, plain, "{query:?} {region} {limit}");
                }
            }
        }
        let (answered, given_up) = s.memo.bounded_answers();
        // Both ends are exercised: walks that stopped early, and walks given up for the loop.
        assert!(answered > 0 && given_up > 0, "answered {answered}, given up {given_up}");
    }

    #[test]
    #[allow(clippy::cast_possible_truncation, reason = "small test numbers")]
    fn a_prefix_read_unmerged_ranks_and_counts_as_its_merge() {
        // 40,000 rows of 1-9 tokens from nine terms, five of them under `co`, two under `st`.
        const N: i64 = 40_000;
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let names = ["coal", "code", "common", "cool", "cow", "other", "star", "state", "zen"];
        let mut b = Builder::new(1, N);
        let mut instances: Vec<Vec<Instance>> = vec![Vec::new(); names.len()];
        let mut layout = Vec::new();
        for r in 1..=N {
            let (t, c) = (1 + next(6) as u32, next(4) as u32);
            b.set_sizes(r, t, c).unwrap();
            b.set_region(r, ["US", "GLOBAL", "DE"][next(3) as usize]).unwrap();
            layout.push((r, t, c));
        }
        b.begin_terms(names.len());
        for (r, t, c) in layout {
            for (column, len) in [(0u8, t), (1u8, c)] {
                for offset in 0..len {
                    // Skewed: `other` and `co…` common, `zen` rare.
                    let term = match next(20) {
                        0..6 => 5,
                        6..9 => 2,
                        9 => 0,
                        10 => 1,
                        11 => 3,
                        12 => 4,
                        13..15 => 6,
                        15..19 => 7,
                        _ => 8,
                    };
                    instances[term].push(inst(r, column, offset));
                }
            }
        }
        for (name, list) in names.iter().zip(&instances) {
            let mut list = list.clone();
            list.sort_by_key(|i| (i.rowid, i.column, i.offset));
            b.add_term(name, &list).unwrap();
        }
        let mut s = b.finish();
        let limits = |classes_bytes| prefixes::Limits { min_rows: 1, classes_min_rows: 1, classes_bytes };
        let (counts, classes) = (prefix_table_with(&s, limits(0)), prefix_table_with(&s, limits(usize::MAX)));
        assert!(counts.rows(&(0..5)).is_some() && counts.rows(&(6..8)).is_some(), "co and st are counted");
        assert_eq!(counts.classes_kept().0, 0);
        assert_eq!(classes.classes_kept().0, 2 + 9, "co (and c: the same terms), st and the nine terms: rows by class");
        let hidden = Hidden::from_rowids((1..N).step_by(89));
        let queries: [&[(&str, bool)]; 7] = [
            &[("zen", false), ("co", true)],
            &[("other", false), ("co", true)],
            &[("zen", false), ("st", true)],
            &[("co", true), ("st", true)],
            &[("other", false), ("zen", false), ("c", true)],
            &[("state", false), ("co", true)],
            &[("co", true)],
        ];
        let run = |s: &Snapshot| {
            let mut out = Vec::new();
            for query in queries {
                let phrases: Vec<Phrase> = query.iter().flat_map(|(t, prefix)| ph(&[t], *prefix)).collect();
                for region in ["US", "DE"] {
                    for limit in [1, 10, 100, 5000] {
                        out.push(s.top_k_view(&phrases, region, limit, &hidden, None, None, None));
                    }
                    out.push(vec![Hit {
                        rowid: s.count_view(&phrases, region, 100_000, &hidden, None, None, None) as i64,
                        rank: 0.0,
                    }]);
                }
            }
            out
        };
        s.prefixes = PrefixTable::default();
        let merged = run(&s);
        assert_eq!(s.memo.prefix_reads(), 0, "no table: every prefix merged");
        s.prefixes = counts;
        let unmerged = run(&s);
        assert_eq!(unmerged, merged, "the same rows, order and scores, and the same counts");
        // Every query with a prefix that is not its rarest phrase read it unmerged.
        assert_eq!(s.memo.prefix_reads(), 6 * 2 * 5, "six queries, two regions, four rankings and a count each");
        assert!(merged.iter().filter(|hits| hits.len() >= 10).count() > 40, "the queries have rows");
        // With the rows of `co` and `st` by class in the table: `co` alone and `co st`
        // walk the file's classes (no merge at all), and answer the same.
        s.prefixes = classes;
        let bounded_walks = |s: &Snapshot| s.memo.bounded_answers().0 + s.memo.bounded_answers().1;
        let (walks, bounded) = (s.memo.classed_answers(), bounded_walks(&s));
        s.memo.lists.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entries.clear();
        let stored = run(&s);
        assert_eq!(stored, merged, "classes from the file rank and count as the merge");
        assert_eq!(s.memo.prefix_reads(), 6 * 2 * 5 + 7 * 2 * 5, "every query read a prefix unmerged");
        assert!(s.memo.classed_answers() > walks, "`co` alone walked the stored classes");
        assert!(bounded_walks(&s) > bounded, "`co st` walked `st`'s stored classes (to the end or given up)");
        let kept = s.memo.lists.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entries.len();
        assert_eq!(kept, 0, "nothing was merged into the memo");
    }

    #[test]
    fn a_phrase_with_too_many_frequencies_is_ranked_row_by_row_and_not_scanned_again() {
        // 20,480 rows holding `zz` 1-16 times in the title and 0-15 in the channel:
        // 8t + 2c takes more distinct values than a class index is built for.
        let rows = 20_480i64;
        let mut b = Builder::new(1, rows);
        let counts = |r: i64| -> (u32, u32) {
            let r = u32::try_from(r).unwrap();
            (1 + r % 16, (r / 16) % 16)
        };
        for r in 1..=rows {
            let (t, c) = counts(r);
            b.set_region(r, "US").unwrap();
            b.set_sizes(r, t, c).unwrap();
        }
        b.begin_terms(1);
        let instances: Vec<Instance> = (1..=rows)
            .flat_map(|r| {
                let (t, c) = counts(r);
                (0..t).map(move |o| inst(r, 0, o)).chain((0..c).map(move |o| inst(r, 1, o)))
            })
            .collect();
        b.add_term("zz", &instances).unwrap();
        let mut s = b.finish();
        // The memo's rule is what is checked: without the prefix table (which keeps the
        // classes of a term this common, however many).
        s.prefixes = PrefixTable::default();
        let p = ph(&["zz"], false);
        s.memo.classed_off.store(true, std::sync::atomic::Ordering::Relaxed);
        let plain = s.top_k(&p, "US", 25);
        s.memo.classed_off.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(s.top_k(&p, "US", 25), plain);
        assert!(matches!(s.memo.classed("zz"), Some(None)), "remembered as unclassable");
        assert_eq!(s.top_k(&p, "US", 25), plain);
        assert_eq!(s.memo.classed_answers(), 0, "the row loop answered both times");
    }

    #[test]
    fn gallop_finds_insertion_points() {
        let v: Vec<u32> = (0..100).map(|x| x * 2).collect();
        for t in 0..210 {
            assert_eq!(gallop(&v, t), v.partition_point(|&x| x < t), "{t}");
        }
        assert_eq!(gallop(&[], 5), 0);
    }

    #[test]
    fn whole_and_prefix_terms_and_regions() {
        let s = sample();
        let p = |t: &str, prefix| ph(&[t], prefix);
        let ids = |h: Vec<Hit>| h.iter().map(|h| h.rowid).collect::<Vec<_>>();
        assert_eq!(ids(s.top_k(&p("music", false), "US", 10)), vec![2, 1], "row 2 has more music");
        assert_eq!(ids(s.top_k(&p("music", false), "DE", 10)), vec![2], "GLOBAL always, US not");
        assert_eq!(ids(s.top_k(&p("m", true), "DE", 10)).len(), 2, "movie and music");
        assert!(s.top_k(&p("mus", false), "US", 10).is_empty(), "whole word only");
        assert!(s.top_k(&p("zzz", true), "US", 10).is_empty());
        assert_eq!(ids(s.top_k(&p("music", false), "XX", 10)), vec![2], "unknown region: GLOBAL only");
        let hidden = Hidden::from_rowids([2, -1, 1 << 40]);
        // Every row id is held, the far ones outside the bitmap.
        assert_eq!((hidden.len(), hidden.contains(2), hidden.contains(1)), (3, true, false));
        assert!(hidden.contains_row(-1) && hidden.contains_row(1 << 40));
        assert_eq!(ids(s.top_k_visible(&p("music", false), "US", 10, &hidden)), vec![1], "row 2 left out");
        let both = vec![
            Phrase { tokens: vec!["music".into()], prefix: false },
            Phrase { tokens: vec!["li".into()], prefix: true },
        ];
        assert_eq!(ids(s.top_k(&both, "US", 10)), vec![1]);
        // Phrases: adjacent tokens in one column, counted per starting place.
        assert_eq!(ids(s.top_k(&ph(&["music", "li"], true), "US", 10)), vec![1]);
        assert!(s.top_k(&ph(&["live", "music"], false), "US", 10).is_empty(), "order matters");
        assert!(s.top_k(&ph(&["live", "chan"], false), "US", 10).is_empty(), "not across columns");
        assert_eq!(ids(s.top_k(&ph(&["music", "music"], false), "US", 10)), vec![2]);
        assert_eq!(s.generation(), 7);
        assert_eq!(s.posting_count(), 6);
    }

    #[test]
    fn builder_rejects_disorder_and_bad_rowids() {
        let mut b = Builder::new(0, 1);
        b.set_sizes(1, 1, 0).unwrap();
        b.begin_terms(3);
        b.add_term("b", &[inst(1, 0, 0)]).unwrap();
        assert_eq!(b.add_term("a", &[inst(1, 0, 0)]), Err(BuildError::TermsOutOfOrder));
        assert_eq!(b.add_term("c", &[inst(-1, 0, 0)]), Err(BuildError::RowidOutOfRange(-1)));
        assert!(b.set_region(MAX_ROWID, "US").is_err());
    }

    #[test]
    fn large_counts_use_the_overflow_list() {
        let mut b = Builder::new(0, 2);
        b.set_region(1, "US").unwrap();
        b.set_region(2, "US").unwrap();
        b.set_sizes(1, 20, 0).unwrap();
        b.set_sizes(2, 3, 0).unwrap();
        b.begin_terms(1);
        let many: Vec<Instance> = (0..20).map(|o| inst(1, 0, o)).chain((0..3).map(|o| inst(2, 0, o))).collect();
        b.add_term("la", &many).unwrap();
        let s = b.finish();
        let hits = s.top_k(&ph(&["la"], false), "US", 5);
        assert_eq!(hits.first().map(|h| h.rowid), Some(1), "20 occurrences beat 3");
    }

    #[test]
    fn an_expensive_prefix_is_merged_once_and_answers_the_same() {
        let rows = 25_000i64;
        let mut b = Builder::new(1, rows);
        for r in 1..=rows {
            b.set_region(r, "US").unwrap();
            b.set_sizes(r, 1, 0).unwrap();
        }
        b.begin_terms(50);
        let mut terms: Vec<String> = (0..50).map(|k| format!("pa{k:02}")).collect();
        terms.sort();
        for (k, term) in terms.iter().enumerate() {
            let instances: Vec<Instance> =
                (1..=rows).filter(|r| usize::try_from(r % 50) == Ok(k)).map(|r| inst(r, 0, 0)).collect();
            b.add_term(term, &instances).unwrap();
        }
        let mut s = b.finish();
        // The memo is what is checked: without the prefix table (which keeps `pa*` by class).
        s.prefixes = PrefixTable::default();
        let p = ph(&["pa"], true);
        assert_eq!(s.memo.bytes(), 0);
        let first = s.top_k(&p, "US", 30);
        assert!(s.memo.bytes() >= 25_000 * 8, "the merge was kept: {}", s.memo.bytes());
        assert!(matches!(s.matches(&p[0], None), PhraseMatches::Kept(_)), "the next query reads the kept merge");
        assert_eq!(s.top_k(&p, "US", 30), first, "the same answer, bit for bit");
        assert_eq!(first.len(), 30);
    }

    /// 24,000 rows: "have" / "having" / "haven" (the prefix `hav` spans 24,000 rows,
    /// past the memo's shipped minimum, and no row holds the word `hav`), every third
    /// row also "music".
    fn hav_snapshot() -> Snapshot {
        let rows = 24_000i64;
        let mut b = Builder::new(3, rows);
        for r in 1..=rows {
            b.set_region(r, "US").unwrap();
            b.set_sizes(r, if r % 3 == 0 { 2 } else { 1 }, 0).unwrap();
        }
        b.begin_terms(4);
        for (k, term) in ["have", "haven", "having"].iter().enumerate() {
            let instances: Vec<Instance> =
                (1..=rows).filter(|r| usize::try_from(r % 3) == Ok(k)).map(|r| inst(r, 0, 0)).collect();
            b.add_term(term, &instances).unwrap();
        }
        let music: Vec<Instance> = (1..=rows).filter(|r| r % 3 == 0).map(|r| inst(r, 0, 1)).collect();
        b.add_term("music", &music).unwrap();
        b.finish()
    }

    #[test]
    fn a_prefix_kept_in_the_memo_is_not_the_whole_word_of_the_same_letters() {
        // Issue 29: `q=hav` kept the merge of `hav*` under `hav`, and a later `q=hav music`
        // read it for the whole word `hav`, which no row holds.
        let mut s = hav_snapshot();
        // The memo's keys are what is checked: the prefix table (which keeps `hav*`'s
        // rows by class, so nothing is merged) is set aside until the end.
        let table = std::mem::take(&mut s.prefixes);
        let hidden = Hidden::default();
        let prefix = ph(&["hav"], true);
        let by_prefix = s.top_k(&prefix, "US", 10);
        assert_eq!(by_prefix.len(), 10);
        assert!(s.memo.bytes() >= 24_000 * 8, "the prefix's merge is in the memo: {}", s.memo.bytes());
        let mut whole_and_music = ph(&["hav"], false);
        whole_and_music.extend(ph(&["music"], false));
        assert_eq!(s.top_k(&whole_and_music, "US", 10), Vec::new(), "no row holds the word `hav`");
        assert_eq!(s.top_k(&ph(&["hav"], false), "US", 10), Vec::new());
        let scratch = Scratch::default();
        assert_eq!(s.top_k_view(&whole_and_music, "US", 10, &hidden, None, None, Some(&scratch)), Vec::new());
        // And the prefix still answers from its kept merge.
        assert_eq!(s.top_k(&prefix, "US", 10), by_prefix);
        // The same from the prefix table's classes.
        s.prefixes = table;
        assert!(s.prefixes.find(&(0..3)).is_some_and(|e| e.rows == 24_000 && e.classes.is_some()));
        assert_eq!(s.top_k(&prefix, "US", 10), by_prefix);
        assert_eq!(s.top_k(&whole_and_music, "US", 10), Vec::new());
        let mut prefix_and_music = ph(&["music"], false);
        prefix_and_music.extend(prefix);
        assert_eq!(s.top_k(&prefix_and_music, "US", 3).len(), 3);
    }

    #[test]
    fn a_whole_word_in_an_answer_does_not_hide_the_prefix_of_the_same_letters() {
        // Issue 29: `q=hav hav` in a fresh process: the whole word left an empty merge
        // under `hav` in the answer's scratch, and the prefix `hav*` then read it.
        let s = hav_snapshot();
        let fresh = hav_snapshot();
        let hidden = Hidden::default();
        let scratch = Scratch::default();
        let whole = ph(&["hav"], false);
        assert_eq!(s.top_k_view(&whole, "US", 10, &hidden, None, None, Some(&scratch)), Vec::new());
        let mut both = whole.clone();
        both.extend(ph(&["hav"], true));
        assert_eq!(s.top_k_view(&both, "US", 10, &hidden, None, None, Some(&scratch)), Vec::new());
        let prefix = ph(&["hav"], true);
        let after = s.top_k_view(&prefix, "US", 10, &hidden, None, None, Some(&scratch));
        assert_eq!(after.len(), 10, "the prefix matches 24,000 rows");
        assert_eq!(after, fresh.top_k(&prefix, "US", 10), "the same rows and bits as a fresh snapshot's");
    }

    #[test]
    fn the_memo_budget_is_fixed_whatever_the_corpus() {
        // Lib tests never set VIDEOFEED_RANK_MEMO_BYTES' static: the default here.
        assert_eq!(memo_budget(), 32 << 20);
        let memo = Memo::with_budget();
        assert_eq!((memo.merges_budget(), memo.classes_budget()), (22_369_620, 11_184_810));
    }

    #[test]
    fn a_full_memo_makes_room_by_evicting_the_least_recently_used() {
        let mut lru: Lru<u32> = Lru::default();
        lru.insert("a", 1, 40, 100);
        lru.insert("b", 2, 40, 100);
        assert_eq!(lru.get("a"), Some(1), "a is now the more recently used");
        lru.insert("c", 3, 40, 100);
        assert_eq!((lru.get("b"), lru.get("a"), lru.get("c")), (None, Some(1), Some(3)), "b gave way");
        assert_eq!((lru.bytes, lru.evicted), (80, 1));
        lru.insert("huge", 4, 101, 100);
        assert_eq!((lru.get("huge"), lru.bytes), (None, 80), "larger than the budget: not kept, nothing evicted");
        lru.insert("a", 9, 40, 100);
        assert_eq!(lru.get("a"), Some(1), "a kept key is not replaced");
        lru.insert("d", 5, 100, 100);
        assert_eq!((lru.get("a"), lru.get("c"), lru.get("d"), lru.bytes, lru.evicted), (None, None, Some(5), 100, 3));
    }

    #[test]
    fn a_phrase_found_by_checking_many_rows_is_kept_and_answers_the_same() {
        // 25,000 rows hold "he" then "s", so checking the phrase reads 25,000 rows.
        let rows = 25_000i64;
        let mut b = Builder::new(1, rows);
        for r in 1..=rows {
            b.set_region(r, "US").unwrap();
            b.set_sizes(r, 3, 0).unwrap();
        }
        b.begin_terms(3);
        let all = |pos: u32| -> Vec<Instance> { (1..=rows).map(|r| inst(r, 0, pos)).collect() };
        b.add_term("he", &all(0)).unwrap();
        b.add_term("s", &all(1)).unwrap();
        b.add_term("x", &[inst(7, 0, 2)]).unwrap();
        let s = b.finish();
        let p = ph(&["he", "s"], false);
        let first = s.top_k(&p, "US", 10);
        assert!(matches!(s.matches(&p[0], None), PhraseMatches::Kept(_)), "kept after the first query");
        assert_eq!(s.top_k(&p, "US", 10), first, "the same answer, bit for bit");
        assert_eq!(first.len(), 10);
        assert!(
            !matches!(s.matches(&ph(&["he"], true)[0], None), PhraseMatches::Kept(_)),
            "no key is shared with a prefix"
        );
    }
}
