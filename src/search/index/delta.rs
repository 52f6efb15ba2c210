//! What changed since a [`Snapshot`] was built: the rows written since its
//! generation, with their tokens as FTS5 made them, so the rank index answers
//! at the database's current generation without a rebuild.
//!
//! A [`Delta`] is the state, at one generation, of every row the change log
//! (`videofeed_changes`, schema 6) names since the base snapshot: its current
//! region and tokens, or gone. Every such row is masked in the base (its base
//! postings no longer count) and counted from the delta instead, and the
//! totals bm25 needs are adjusted the same way: rows, tokens, and per term the
//! rows that hold it. So base + delta rank, correct and count exactly as FTS5
//! over the current data does (`Snapshot::top_k_view`). A row whose duration,
//! published_at or view count changed and nothing else (a `kind` 1 log entry,
//! schema 7) keeps its base postings: only its columns are overridden, so a
//! stream of view-count updates costs neither tokenizing nor ranking work.
//! The rows are read and tokenized by `index::RankIndex` in the answer's read
//! transaction. What a phrase matches in the delta is kept for the delta's
//! generation ([`PhraseMemo`]): every answer at that generation, and every shorter
//! query word dropping ranks within one, merges the delta for that phrase once.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, BTreeSet};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::columns::{Cols, Inexact};
use super::hidden::Hidden;
use super::snapshot::Snapshot;

/// One changed row as it is now: its region and its tokens per column, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The `videos` row id.
    pub rowid: u32,
    /// Its region (`GLOBAL` or two letters).
    pub region: String,
    /// The title's tokens, as FTS5's tokenizer produced them.
    pub title: Vec<String>,
    /// The channel's tokens.
    pub channel: Vec<String>,
    /// Its filter and sort columns.
    pub cols: Cols,
}

/// What the change log says happened to a row since the delta's generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Its indexed text or region changed, or it was added (the row now) or deleted (None).
    Row(Option<Row>),
    /// Only its duration, published_at or view count changed (its columns now).
    Cols(Cols),
}

impl Row {
    /// The row's token count (FTS5's document length over both columns).
    pub fn len(&self) -> usize {
        self.title.len() + self.channel.len()
    }

    /// Whether the row has no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The changes since a base snapshot, at one generation, updated in place
/// ([`Delta::apply`]: the cost of an update is that of the rows it changes, not
/// of the whole delta).
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// The generation this delta brings the base to.
    generation: i64,
    /// Every changed row id and its current version in `rows` (None: deleted).
    changed: BTreeMap<u32, Option<usize>>,
    /// Every version of a changed row, in the order applied; superseded ones are dead.
    rows: Vec<Row>,
    alive: Vec<bool>,
    /// Versions in `rows` that are superseded (dead).
    dead: usize,
    /// When the first change the base does not hold was applied.
    first_change: Option<std::time::Instant>,
    /// Base rows whose base entry no longer counts, as a bitmap and ascending.
    masked: Hidden,
    masked_list: BTreeSet<u32>,
    /// Rows and tokens to add to the base's totals (may be negative).
    rows_adjust: i64,
    tokens_adjust: i64,
    /// Per base term id, masked rows that held it.
    removed: BTreeMap<u32, u32>,
    /// Per term, live delta rows that hold it.
    added: BTreeMap<String, u32>,
    /// Per term, (index into `rows`, count in title, count in channel), by index (dead ones too).
    postings: BTreeMap<String, Vec<(usize, u16, u16)>>,
    /// Base rows whose columns changed and nothing else: their columns now.
    columns: Option<HashMap<u32, Cols>>,
    /// Columns some changed row holds an inexact value in.
    inexact: Inexact,
    /// What phrases match at this generation (emptied by [`Delta::apply`]).
    memo: PhraseMemo,
}

/// What one phrase matches in a delta at one generation.
#[derive(Debug, Default, PartialEq)]
pub struct DeltaPhrase {
    /// The live delta rows it matches (index for [`Delta::row`]) with FTS5's weighted count in each.
    pub rows: BTreeMap<usize, f64>,
    /// The masked base rows among those the phrase matches in the base (they no longer count).
    pub masked_in_base: usize,
}

/// Phrases' matches in the delta, kept until the delta next changes: a delta of
/// 20,000 rows costs a common word's merge (thousands of postings) per phrase, and
/// the same phrases come back in answer after answer. Bounded by the rows kept.
#[derive(Debug, Default)]
pub struct PhraseMemo {
    kept: Mutex<(BTreeMap<String, Arc<DeltaPhrase>>, usize)>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Delta rows (over all phrases) a memo keeps: ~40 bytes each, about 8 MB
/// (shipped value; tests lower it through [`super::thresholds`]).
pub const MEMO_ROWS: usize = super::thresholds::SHIPPED.delta_memo_rows;

impl PhraseMemo {
    /// An empty memo (a `const fn`, for a `static`).
    pub const fn new() -> PhraseMemo {
        PhraseMemo { kept: Mutex::new((BTreeMap::new(), 0)), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    /// The matches of the phrase `key` names: kept ones, or `compute`'s (then kept
    /// while the bound allows). Computed outside the lock, so answers never wait on another's merge.
    pub fn get_or(&self, key: &str, compute: impl FnOnce() -> DeltaPhrase) -> Arc<DeltaPhrase> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner).0.get(key).cloned();
        if let Some(kept) = kept {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return kept;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let computed = Arc::new(compute());
        let mut guard = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, rows) = &mut *guard;
        let size = computed.rows.len() + 1;
        if *rows + size <= super::thresholds::get().delta_memo_rows && !map.contains_key(key) {
            map.insert(key.to_owned(), Arc::clone(&computed));
            *rows += size;
        }
        computed
    }

    /// (hits, misses) of this memo and the ones it replaced ([`Delta::restart`]): the
    /// test hook that proves answers share merges.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Adds `counts` (a replaced delta's) to this memo's.
    fn carry(&self, (hits, misses): (u64, u64)) {
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// Forgets every kept phrase (the delta changed); the counts stay.
    fn clear(&mut self) {
        let (map, rows) = self.kept.get_mut().unwrap_or_else(PoisonError::into_inner);
        map.clear();
        *rows = 0;
    }
}

impl Clone for PhraseMemo {
    /// A clone starts empty: a kept match is only as good as the delta it was made from.
    fn clone(&self) -> PhraseMemo {
        PhraseMemo::default()
    }
}

impl Delta {
    /// A delta with nothing in it (a `const fn`, for a `static`).
    pub const fn new() -> Delta {
        Delta {
            generation: 0,
            changed: BTreeMap::new(),
            rows: Vec::new(),
            alive: Vec::new(),
            dead: 0,
            first_change: None,
            masked: Hidden::EMPTY,
            masked_list: BTreeSet::new(),
            rows_adjust: 0,
            tokens_adjust: 0,
            removed: BTreeMap::new(),
            added: BTreeMap::new(),
            postings: BTreeMap::new(),
            columns: None,
            inexact: Inexact { duration: false, published: false, views: false, channel: false },
            memo: PhraseMemo::new(),
        }
    }

    /// No change: the base at its own generation.
    pub fn empty(generation: i64) -> Delta {
        Delta { generation, ..Delta::default() }
    }

    /// A delta with nothing in it at `generation` that replaces `self` (it carries
    /// the memo's counts on, so they only grow).
    pub fn restart(&self, generation: i64) -> Delta {
        let fresh = Delta::empty(generation);
        fresh.memo.carry(self.memo.counts());
        fresh
    }

    /// Applies `updates` (row id → what changed) made up to `generation`; `inexact`
    /// marks the columns of those rows the index cannot compare as SQL does.
    pub fn apply(&mut self, base: &Snapshot, generation: i64, updates: Vec<(u32, Change)>, inexact: Inexact) {
        self.inexact.merge(inexact);
        self.memo.clear();
        if self.first_change.is_none() && !updates.is_empty() {
            self.first_change = Some(std::time::Instant::now());
        }
        for (rowid, change) in updates {
            let state = match change {
                Change::Row(state) => state,
                Change::Cols(cols) => {
                    self.set_columns(rowid, cols);
                    continue;
                }
            };
            if let Some(columns) = self.columns.as_mut() {
                columns.remove(&rowid);
            }
            match self.changed.get(&rowid).copied() {
                Some(Some(old)) => self.retire(old),
                Some(None) => {}
                None => {
                    if let Some(len) = base.row_len(rowid) {
                        self.masked.insert(rowid);
                        self.masked_list.insert(rowid);
                        self.rows_adjust -= 1;
                        self.tokens_adjust -= i64::from(len);
                        for term in base.row_terms(rowid) {
                            *self.removed.entry(term).or_default() += 1;
                        }
                    }
                }
            }
            let version = state.map(|row| self.add(row));
            self.changed.insert(rowid, version);
        }
        self.generation = generation;
        let t = super::thresholds::get();
        let live = self.versions().saturating_sub(self.dead);
        if self.dead > live.saturating_mul(t.delta_repack_live_factor).saturating_add(t.delta_repack_slack) {
            self.repack();
        }
    }

    /// Drops the superseded versions and their postings, renumbering the live ones
    /// in order (so every posting list stays sorted by index).
    fn repack(&mut self) {
        let mut renumbered: Vec<Option<usize>> = Vec::with_capacity(self.rows.len());
        let (mut rows, mut alive) = (Vec::new(), Vec::new());
        for (row, live) in std::mem::take(&mut self.rows).into_iter().zip(std::mem::take(&mut self.alive)) {
            if live {
                renumbered.push(Some(rows.len()));
                rows.push(row);
                alive.push(true);
            } else {
                renumbered.push(None);
            }
        }
        let new_index = |old: usize| renumbered.get(old).copied().flatten();
        for list in self.postings.values_mut() {
            list.retain_mut(|(index, _, _)| match new_index(*index) {
                Some(n) => {
                    *index = n;
                    true
                }
                None => false,
            });
        }
        self.postings.retain(|_, list| !list.is_empty());
        for version in self.changed.values_mut() {
            if let Some(old) = *version {
                *version = new_index(old);
            }
        }
        self.rows = rows;
        self.alive = alive;
        self.dead = 0;
        crate::obs::metrics::global().delta_repacked();
    }

    /// Since the first change the base does not hold (None: nothing changed).
    pub fn age(&self) -> Option<std::time::Duration> {
        self.first_change.map(|t| t.elapsed())
    }

    /// Row versions held, superseded ones included (at most about twice the live ones).
    pub fn versions(&self) -> usize {
        self.rows.len()
    }

    /// Postings held over all terms, superseded versions' included.
    pub fn posting_count(&self) -> usize {
        self.postings.values().map(Vec::len).sum()
    }

    /// A column-only change: in place for a row the delta holds, as an override for a base row.
    fn set_columns(&mut self, rowid: u32, cols: Cols) {
        match self.changed.get(&rowid).copied() {
            Some(Some(index)) => {
                if let Some(row) = self.rows.get_mut(index) {
                    row.cols = cols;
                }
            }
            Some(None) => {}
            None => {
                self.columns.get_or_insert_with(HashMap::new).insert(rowid, cols);
            }
        }
    }

    /// Adds a row version; returns its index.
    fn add(&mut self, row: Row) -> usize {
        let index = self.rows.len();
        self.rows_adjust += 1;
        self.tokens_adjust += i64::try_from(row.len()).unwrap_or(i64::MAX);
        for (term, (title, channel)) in counts(&row) {
            // (A term already held is found without allocating its key.)
            match self.added.get_mut(term) {
                Some(n) => *n += 1,
                None => {
                    self.added.insert(term.clone(), 1);
                }
            }
            match self.postings.get_mut(term) {
                Some(list) => list.push((index, title, channel)),
                None => {
                    self.postings.insert(term.clone(), vec![(index, title, channel)]);
                }
            }
        }
        self.rows.push(row);
        self.alive.push(true);
        index
    }

    /// Retires the row version at `index` (a newer one or a delete replaced it).
    fn retire(&mut self, index: usize) {
        let Some(row) = self.rows.get(index) else { return };
        self.rows_adjust -= 1;
        self.tokens_adjust -= i64::try_from(row.len()).unwrap_or(i64::MAX);
        for (term, _) in counts(row) {
            if let Some(n) = self.added.get_mut(term) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.added.remove(term);
                }
            }
        }
        if let Some(alive) = self.alive.get_mut(index) {
            if *alive {
                self.dead += 1;
            }
            *alive = false;
        }
        // Its text is no longer needed: only its slot stays until the next repack.
        if let Some(row) = self.rows.get_mut(index) {
            row.title = Vec::new();
            row.channel = Vec::new();
        }
    }

    /// The generation this delta brings its base to.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Rows changed since the base (deleted ones included).
    pub fn len(&self) -> usize {
        self.changed.len()
    }

    /// Whether nothing changed since the base.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }

    /// Whether some base row's columns changed (and nothing else of it).
    pub fn has_column_changes(&self) -> bool {
        self.columns.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// Base rows whose columns changed and nothing else.
    pub fn column_changes(&self) -> usize {
        self.columns.as_ref().map_or(0, HashMap::len)
    }

    /// The columns of base row `rowid` now, when only they changed.
    pub fn column_change(&self, rowid: u32) -> Option<&Cols> {
        self.columns.as_ref()?.get(&rowid)
    }

    /// Columns some changed row holds an inexact value in.
    pub fn inexact(&self) -> Inexact {
        self.inexact
    }

    /// Base rows whose base entry no longer counts.
    pub fn masked(&self) -> &Hidden {
        &self.masked
    }

    /// The masked base rows, ascending.
    pub fn masked_rowids(&self) -> impl Iterator<Item = u32> + '_ {
        self.masked_list.iter().copied()
    }

    /// The row version at `index`, if it is the current one.
    pub fn row(&self, index: usize) -> Option<&Row> {
        self.alive.get(index).copied().unwrap_or(false).then(|| self.rows.get(index)).flatten()
    }

    /// (rows, tokens) to add to the base's totals.
    pub fn adjust(&self) -> (i64, i64) {
        (self.rows_adjust, self.tokens_adjust)
    }

    /// Masked base rows that held base term `term`.
    pub fn removed(&self, term: usize) -> usize {
        u32::try_from(term).ok().and_then(|t| self.removed.get(&t)).map_or(0, |&n| n as usize)
    }

    /// Per term (sorted), the live delta rows that hold it.
    pub fn added(&self) -> &BTreeMap<String, u32> {
        &self.added
    }

    /// The phrases' matches kept for this generation.
    pub fn memo(&self) -> &PhraseMemo {
        &self.memo
    }

    /// Per term (sorted), the delta row versions holding it: (index for [`Delta::row`],
    /// count in title, count in channel), by index; superseded versions included.
    pub fn postings(&self) -> &BTreeMap<String, Vec<(usize, u16, u16)>> {
        &self.postings
    }
}

/// A row's distinct terms with their counts in title and channel.
fn counts(row: &Row) -> BTreeMap<&String, (u16, u16)> {
    let mut counts: BTreeMap<&String, (u16, u16)> = BTreeMap::new();
    for t in &row.title {
        let c = counts.entry(t).or_default();
        c.0 = c.0.saturating_add(1);
    }
    for t in &row.channel {
        let c = counts.entry(t).or_default();
        c.1 = c.1.saturating_add(1);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::super::build::{Builder, Instance};
    use super::*;

    fn base(rows: i64) -> Snapshot {
        let mut b = Builder::new(1, rows);
        for r in 1..=rows {
            b.set_region(r, "US").unwrap();
            b.set_sizes(r, 1, 0).unwrap();
        }
        b.begin_terms(1);
        let all: Vec<Instance> = (1..=rows).map(|rowid| Instance { rowid, column: 0, offset: 0 }).collect();
        b.add_term("music", &all).unwrap();
        b.finish()
    }

    fn row(rowid: u32, title: &[&str]) -> Row {
        Row {
            rowid,
            region: "US".into(),
            title: title.iter().map(|t| (*t).to_owned()).collect(),
            channel: vec!["chan".into()],
            cols: Cols::default(),
        }
    }

    /// Per term, the live rows holding it with their counts, by row id: what ranking reads.
    fn live_postings(d: &Delta) -> BTreeMap<String, Vec<(u32, u16, u16)>> {
        d.postings()
            .iter()
            .map(|(t, list)| {
                let mut live: Vec<_> =
                    list.iter().filter_map(|(i, a, b)| d.row(*i).map(|r| (r.rowid, *a, *b))).collect();
                live.sort_unstable();
                (t.clone(), live)
            })
            .filter(|(_, l)| !l.is_empty())
            .collect()
    }

    #[test]
    fn churn_over_a_hot_set_keeps_the_delta_bounded_and_equal_to_a_fresh_one() {
        // Issue 33 (2): retitling the same 10 rows 20,000 times kept every version
        // (200,000 of them and all their postings) in the build before.
        let snap = base(100);
        let mut churned = Delta::empty(1);
        let words = ["alpha", "beta", "gamma", "delta", "music"];
        let repacks_before = crate::obs::metrics::global().delta_repacks();
        let mut generation = 1;
        for round in 0..20_000u32 {
            generation += 1;
            let rowid = 1 + round % 10;
            let title = [words[(round % 5) as usize], words[((round / 5) % 5) as usize], "hot"];
            churned.apply(&snap, generation, vec![(rowid, Change::Row(Some(row(rowid, &title))))], Inexact::default());
            let slack = super::super::thresholds::get().delta_repack_slack;
            assert!(churned.versions() <= 2 * churned.len() + slack + 1, "{} versions", churned.versions());
        }
        assert!(crate::obs::metrics::global().delta_repacks() > repacks_before, "the repack ran");
        assert!(churned.posting_count() <= 4 * (2 * 10 + 1025), "{} postings", churned.posting_count());
        // The same final state written once: the same live postings, totals and masks.
        let mut fresh = Delta::empty(1);
        let last: Vec<(u32, Change)> = (0..10u32)
            .map(|k| {
                let round = 20_000 - 10 + k;
                let rowid = 1 + round % 10;
                let title = [words[(round % 5) as usize], words[((round / 5) % 5) as usize], "hot"];
                (rowid, Change::Row(Some(row(rowid, &title))))
            })
            .collect();
        fresh.apply(&snap, generation, last, Inexact::default());
        assert_eq!(live_postings(&churned), live_postings(&fresh));
        assert_eq!(churned.adjust(), fresh.adjust());
        assert_eq!(churned.added(), fresh.added());
        assert_eq!(churned.masked_rowids().collect::<Vec<_>>(), fresh.masked_rowids().collect::<Vec<_>>());
        assert_eq!(churned.removed(0), fresh.removed(0));
        for rowid in 1..=10u32 {
            let a = churned.changed.get(&rowid).copied().flatten().and_then(|i| churned.row(i)).unwrap();
            let b = fresh.changed.get(&rowid).copied().flatten().and_then(|i| fresh.row(i)).unwrap();
            assert_eq!(a, b);
        }
    }
}
