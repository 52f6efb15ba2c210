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
//! over the current data does (`Snapshot::top_k_view`). Pure data: the rows are
//! read and tokenized by `index::RankIndex` in the answer's read transaction.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, HashMap};

use super::snapshot::{Hidden, Snapshot};

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

/// The changes since a base snapshot, at one generation.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    /// The generation this delta brings the base to.
    generation: i64,
    /// Every changed row id and its state now (None: deleted).
    changed: BTreeMap<u32, Option<Row>>,
    /// Derived: base rows whose base entry no longer counts.
    masked: Hidden,
    /// Derived: the rows now present, by row id.
    rows: Vec<Row>,
    /// Derived: rows and tokens to add to the base's totals (may be negative).
    rows_adjust: i64,
    tokens_adjust: i64,
    /// Derived: per base term id, masked rows that held it.
    removed: HashMap<u32, u32>,
    /// Derived: per term, delta rows that hold it.
    added: BTreeMap<String, u32>,
}

impl Delta {
    /// No change: the base at its own generation.
    pub fn empty(generation: i64) -> Delta {
        Delta { generation, ..Delta::default() }
    }

    /// This delta with `updates` (row id → its state now) applied, at `generation`.
    pub fn with(&self, base: &Snapshot, generation: i64, updates: Vec<(u32, Option<Row>)>) -> Delta {
        let mut changed = self.changed.clone();
        changed.extend(updates);
        Delta::derive(base, generation, changed)
    }

    fn derive(base: &Snapshot, generation: i64, changed: BTreeMap<u32, Option<Row>>) -> Delta {
        let mut masked = Vec::new();
        let (mut rows_adjust, mut tokens_adjust) = (0i64, 0i64);
        let mut removed: HashMap<u32, u32> = HashMap::new();
        for &rowid in changed.keys() {
            if let Some(len) = base.row_len(rowid) {
                masked.push(i64::from(rowid));
                rows_adjust -= 1;
                tokens_adjust -= i64::from(len);
                for term in base.row_terms(rowid) {
                    *removed.entry(term).or_default() += 1;
                }
            }
        }
        let rows: Vec<Row> = changed.values().flatten().cloned().collect();
        let mut added: BTreeMap<String, u32> = BTreeMap::new();
        for row in &rows {
            rows_adjust += 1;
            tokens_adjust += i64::try_from(row.len()).unwrap_or(i64::MAX);
            let mut distinct: Vec<&String> = row.title.iter().chain(&row.channel).collect();
            distinct.sort_unstable();
            distinct.dedup();
            for term in distinct {
                *added.entry(term.clone()).or_default() += 1;
            }
        }
        Delta {
            generation,
            changed,
            masked: Hidden::from_rowids(masked),
            rows,
            rows_adjust,
            tokens_adjust,
            removed,
            added,
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

    /// Base rows whose base entry no longer counts.
    pub fn masked(&self) -> &Hidden {
        &self.masked
    }

    /// The masked base rows, ascending.
    pub fn masked_rowids(&self) -> impl Iterator<Item = u32> + '_ {
        self.changed.keys().copied().filter(|r| self.masked.contains(*r))
    }

    /// The changed rows as they are now (deleted ones left out), by row id.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// (rows, tokens) to add to the base's totals.
    pub fn adjust(&self) -> (i64, i64) {
        (self.rows_adjust, self.tokens_adjust)
    }

    /// Masked base rows that held base term `term`.
    pub fn removed(&self, term: usize) -> usize {
        u32::try_from(term).ok().and_then(|t| self.removed.get(&t)).map_or(0, |&n| n as usize)
    }

    /// Per term (sorted), the delta rows that hold it.
    pub fn added(&self) -> &BTreeMap<String, u32> {
        &self.added
    }

    /// Heap bytes, roughly (for logs).
    pub fn heap_bytes(&self) -> usize {
        self.rows
            .iter()
            .map(|r| 64 + r.title.iter().chain(&r.channel).map(|t| t.len() + 24).sum::<usize>())
            .sum::<usize>()
            * 2
            + self.removed.len() * 16
            + self.added.keys().map(|k| k.len() + 32).sum::<usize>()
    }
}
