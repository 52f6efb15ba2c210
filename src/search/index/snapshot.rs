//! An in-memory copy of the FTS5 index that ranks exactly as FTS5's `bm25()`
//! does, without FTS5's per-row cost: the data (this file) and its reading
//! (`walk`, the top-k walks over it and the delta).
//!
//! FTS5 spends about a microsecond per matching row on `bm25()` (instance
//! lists, a `%_docsize` lookup, the join to `videos`), so a query matching
//! 100k rows costs ~100 ms. A [`Snapshot`] holds, per term, the sorted row
//! ids and the term's count in title and channel, plus each row's token count
//! and region, each row's tokens (the forward index), the prefix table
//! (`prefixes`) and the memo of merges (`memo`), and the walks score the same
//! formula in a few nanoseconds per row.
//!
//! Exactness: the snapshot is built from FTS5's own tokens (the `fts5vocab`
//! instance table) and FTS5's own totals, and the walks repeat FTS5's
//! arithmetic in the same order (`fts5Bm25Function`, constants in
//! [`crate::search::bm25`]: IDF floored at 1e-6, column weights applied to
//! instance counts, document length over all columns), so ids, order and
//! scores are the same bits. Pure data: no SQLite here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use super::arr::Arr;
use super::columns::BaseCols;
pub use super::memo::{
    CLASSED_MIN_ROWS, MEMO_BUDGET_DEFAULT, MEMO_MIN_ROWS, Memo, Scratch, memo_budget, set_memo_budget,
};
use super::prefixes::{self, PrefixTable};
use super::terms;
use super::thresholds;
use crate::search::bm25::{CHANNEL_WEIGHT_INT, TITLE_WEIGHT_INT};

/// Every term's postings, one after the other in term order: row ids ascending
/// per term, and title/channel counts packed in a byte (low nibble: count in
/// title; high nibble: count in channel; 0xFF: see `overflow`). Three arrays
/// in all, however many terms: mapped from the index file, they cost no heap.
#[derive(Debug, Default, Clone)]
pub struct Lists {
    pub(super) rowids: Arr<u32>,
    pub(super) counts: Arr<u8>,
    /// Per term, the end of its postings in `rowids` and `counts`.
    pub(super) ends: Arr<u32>,
}

impl Lists {
    /// Term `term`'s postings.
    pub fn get(&self, term: usize) -> Option<Postings<'_>> {
        let end = usize::try_from(*self.ends.get(term)?).ok()?;
        let start = match term.checked_sub(1) {
            Some(before) => usize::try_from(*self.ends.get(before)?).ok()?,
            None => 0,
        };
        Some(Postings { rowids: self.rowids.get(start..end)?, counts: self.counts.get(start..end)? })
    }

    /// Terms.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no term.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn heap_bytes(&self) -> usize {
        self.rowids.heap_bytes() + self.counts.heap_bytes() + self.ends.heap_bytes()
    }
}

/// One term's postings (see [`Lists`]).
#[derive(Debug, Clone, Copy)]
pub struct Postings<'a> {
    pub(super) rowids: &'a [u32],
    pub(super) counts: &'a [u8],
}

impl Postings<'_> {
    /// Number of rows containing the term.
    pub fn len(&self) -> usize {
        self.rowids.len()
    }

    /// Whether no row contains the term.
    pub fn is_empty(&self) -> bool {
        self.rowids.is_empty()
    }
}

/// Each row's tokens as term ids, in order (title, then channel).
#[derive(Debug)]
pub(super) enum Forward {
    Narrow(Arr<u16>),
    Wide(Arr<u32>),
}

impl Forward {
    pub(super) fn get(&self, i: usize) -> u32 {
        match self {
            Forward::Narrow(v) => v.get(i).map_or(u32::MAX, |&t| u32::from(t)),
            Forward::Wide(v) => v.get(i).copied().unwrap_or(u32::MAX),
        }
    }

    pub(super) fn set(&mut self, i: usize, term: u32) {
        match self {
            Forward::Narrow(v) => {
                if let (Some(slot), Ok(t)) = (v.vec().get_mut(i), u16::try_from(term)) {
                    *slot = t;
                }
            }
            Forward::Wide(v) => {
                if let Some(slot) = v.vec().get_mut(i) {
                    *slot = term;
                }
            }
        }
    }

    pub(super) fn bytes(&self) -> usize {
        match self {
            Forward::Narrow(v) => v.heap_bytes(),
            Forward::Wide(v) => v.heap_bytes(),
        }
    }
}

/// An immutable, shareable copy of the index for one database generation.
#[derive(Debug)]
pub struct Snapshot {
    pub(super) generation: i64,
    pub(super) terms: Vec<Box<str>>,
    pub(super) lists: Lists,
    pub(super) overflow: Vec<(u32, u32, u16, u16)>,
    pub(super) doc_len: Arr<u32>,
    pub(super) title_len: Arr<u32>,
    pub(super) doc_start: Arr<u32>,
    pub(super) forward: Forward,
    pub(super) region: Arr<u16>,
    pub(super) regions: Vec<String>,
    /// Per row: duration, published_at, views, channel (for filtered and sorted queries).
    pub(super) cols: BaseCols,
    pub(super) n_rows: i64,
    pub(super) n_tokens: i64,
    pub(super) postings: usize,
    /// Distinct rows of the prefixes of many rows (see [`PrefixTable`]).
    pub(super) prefixes: PrefixTable,
    /// Merged postings of prefixes already asked (see [`Memo`]).
    pub(super) memo: Memo,
}

/// Bytes a base row that the prefix table's kept classes may take in the index file
/// (their rows coded by [`super::codec`], about 1.5 bytes a row): the largest prefixes'
/// rows by class, so that a short prefix ranks from its best classes in every
/// process without a merge (docs/benchmarks.md §24).
pub const PREFIX_CLASS_BYTES_PER_ROW: usize = 32;

/// Bytes a base row the prefix table's kept classes may take:
/// `VIDEOFEED_RANK_PREFIX_CLASS_BYTES` when set (read once, by whichever command
/// builds the index: serve, import, init, demo, restore), else
/// [`PREFIX_CLASS_BYTES_PER_ROW`]. 0 keeps no prefix's rows in the file (a smaller
/// file; short prefixes are then merged into each process's memo when walked).
pub fn prefix_class_bytes() -> usize {
    static SET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SET.get_or_init(|| {
        let raw = std::env::var("VIDEOFEED_RANK_PREFIX_CLASS_BYTES").unwrap_or_default();
        match raw.trim() {
            "" => PREFIX_CLASS_BYTES_PER_ROW,
            v => v.parse::<usize>().ok().filter(|n| *n <= 4096).unwrap_or_else(|| {
                log::warn!(
                    "VIDEOFEED_RANK_PREFIX_CLASS_BYTES={raw} is not 0 to 4096 bytes a video: \
                     {PREFIX_CLASS_BYTES_PER_ROW} used"
                );
                PREFIX_CLASS_BYTES_PER_ROW
            }),
        }
    })
}

/// The prefix table of a snapshot whose postings are complete (see [`PrefixTable`]).
pub(super) fn prefix_table(s: &Snapshot) -> PrefixTable {
    let limits = thresholds::get();
    prefix_table_with(
        s,
        prefixes::Limits {
            min_rows: limits.prefix_table_min_rows,
            classes_min_rows: limits.classed_min_rows,
            classes_bytes: usize::try_from(s.n_rows).unwrap_or(0).saturating_mul(prefix_class_bytes()),
        },
    )
}

/// [`prefix_table`] with these limits.
pub(super) fn prefix_table_with(s: &Snapshot, limits: prefixes::Limits) -> PrefixTable {
    let source = prefixes::Source {
        terms: &s.terms,
        rowids_of: |term| s.lists.get(term).map_or(&[][..], |l| l.rowids),
        weight_of: |term, at| {
            let (t, c) = s.counts_int(term, at);
            u32::try_from(TITLE_WEIGHT_INT * u64::from(t) + CHANNEL_WEIGHT_INT * u64::from(c)).unwrap_or(u32::MAX)
        },
        len_of: |rowid| usize::try_from(rowid).ok().and_then(|slot| s.doc_len.get(slot).copied()).unwrap_or(0),
        slots: s.doc_len.len(),
    };
    PrefixTable::build(&source, limits)
}

/// A ranked result: the row id and FTS5's `bm25()` value (lower is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The `videos` row id.
    pub rowid: i64,
    /// Exactly what `bm25(videos_fts, 8.0, 2.0)` returns for this row.
    pub rank: f64,
}

impl Snapshot {
    /// The database generation this snapshot reflects.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// Whether the large arrays are read from a mapped index file (see `persist`).
    pub fn is_mapped(&self) -> bool {
        self.doc_len.is_mapped()
    }

    /// Why the mapped index file this snapshot reads can no longer be trusted (it was
    /// truncated or written in place: see `sys::Mmap::damage`); None for a
    /// snapshot in memory, or a file as it was mapped. Every mapped array of a
    /// snapshot reads the same mapping.
    pub fn damage(&self) -> Option<String> {
        self.doc_len.mapping().and_then(crate::sys::Mmap::damage)
    }

    /// The mapping of the index file this snapshot reads; None when it is in memory.
    pub fn mapping(&self) -> Option<&crate::sys::Mmap> {
        self.doc_len.mapping()
    }

    /// (device, inode) of the index file this snapshot maps; None when it is in memory.
    pub fn file_identity(&self) -> Option<(u64, u64)> {
        self.doc_len.mapping().map(crate::sys::Mmap::identity)
    }

    /// The prefix table (counts and kept classes of the prefixes of many rows).
    pub fn prefix_table(&self) -> &PrefixTable {
        &self.prefixes
    }

    /// Distinct terms.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    /// (term, row) pairs.
    pub fn posting_count(&self) -> usize {
        self.postings
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let lists = self.lists.heap_bytes();
        let terms: usize = self.terms.iter().map(|t| t.len() + 16).sum();
        lists
            + terms
            + self.prefixes.heap_bytes()
            + self.doc_len.heap_bytes()
            + self.title_len.heap_bytes()
            + self.doc_start.heap_bytes()
            + self.forward.bytes()
            + self.region.heap_bytes()
            + self.overflow.capacity() * 12
            + self.cols.bytes()
    }

    pub(super) fn term_range(&self, token: &str, prefix: bool) -> std::ops::Range<usize> {
        terms::term_range(&self.terms, token, prefix)
    }

    /// (title count, channel count) of posting `at` of `term`.
    pub(super) fn counts_int(&self, term: usize, at: usize) -> (u16, u16) {
        let packed = self.lists.get(term).and_then(|l| l.counts.get(at)).copied().unwrap_or(0);
        if packed != 0xFF {
            return (u16::from(packed & 0x0F), u16::from(packed >> 4));
        }
        let rowid = self.lists.get(term).and_then(|l| l.rowids.get(at)).copied().unwrap_or(0);
        let term32 = u32::try_from(term).unwrap_or(u32::MAX);
        match self.overflow.binary_search_by_key(&(term32, rowid), |&(t, r, _, _)| (t, r)) {
            Ok(i) => self.overflow.get(i).map_or((0, 0), |&(_, _, t, c)| (t, c)),
            Err(_) => (0, 0),
        }
    }

    pub(super) fn counts(&self, term: usize, at: usize) -> (f64, f64) {
        let (t, c) = self.counts_int(term, at);
        (f64::from(t), f64::from(c))
    }

    /// Whether `token` is a term of some row (or starts one, when `prefix`).
    pub fn knows(&self, token: &str, prefix: bool) -> bool {
        !self.term_range(token, prefix).is_empty()
    }

    /// The typo correction of `token` in this snapshot's vocabulary: see [`terms::candidates`].
    pub fn correct(&self, token: &str, prefix: bool) -> Option<String> {
        self.candidates(token, prefix, 1).into_iter().next()
    }

    /// The first `n` corrections of `token`, best first: see [`terms::candidates`].
    pub fn candidates(&self, token: &str, prefix: bool, n: usize) -> Vec<String> {
        terms::candidates(&self.terms, |i| self.df(i), token, prefix, n)
    }

    /// Rows holding `token` (summed over the terms it starts, when `prefix`).
    pub fn docs(&self, token: &str, prefix: bool) -> usize {
        terms::docs_of(&self.terms, |i| self.df(i), token, prefix)
    }

    /// The token count of base row `rowid`, when the base holds that row.
    pub fn row_len(&self, rowid: u32) -> Option<u32> {
        let slot = usize::try_from(rowid).ok()?;
        self.region.get(slot).filter(|code| **code != 0)?;
        Some(self.doc_len.get(slot).copied().unwrap_or(0))
    }

    /// The distinct term ids of base row `rowid` (from the forward index).
    pub fn row_terms(&self, rowid: u32) -> Vec<u32> {
        let Some(len) = self.row_len(rowid) else { return Vec::new() };
        let slot = usize::try_from(rowid).unwrap_or(usize::MAX);
        let start = usize::try_from(self.doc_start.get(slot).copied().unwrap_or(0)).unwrap_or(0);
        let mut terms: Vec<u32> = (start..start + usize::try_from(len).unwrap_or(0))
            .map(|i| self.forward.get(i))
            .filter(|t| *t != u32::MAX)
            .collect();
        terms.sort_unstable();
        terms.dedup();
        terms
    }

    /// Rows holding base term `term`.
    pub(super) fn df(&self, term: usize) -> usize {
        self.lists.get(term).map_or(0, |l| l.len())
    }
}
