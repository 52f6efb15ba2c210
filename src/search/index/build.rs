//! Building a [`Snapshot`] from FTS5's own tokens, term by term: the loader
//! (`index::load`) feeds it each row's sizes, region and filter columns, then every term with
//! its instances in row order. Pure data: no SQLite here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use super::arr::Arr;
use super::columns::{BaseCols, Cols, Inexact};
use super::prefixes::PrefixTable;
use super::snapshot::{Forward, Lists, Snapshot};

/// Builder input: one instance of a term in a row.
#[derive(Debug, Clone, Copy)]
pub struct Instance {
    /// The row id.
    pub rowid: i64,
    /// 0 for title, 1 for channel.
    pub column: u8,
    /// The token's position within its column.
    pub offset: u32,
}

/// Why a snapshot could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// A row id is negative or too large for the dense arrays.
    RowidOutOfRange(i64),
    /// Terms were not supplied in strictly ascending order.
    TermsOutOfOrder,
    /// More distinct regions than [`MAX_REGIONS`].
    TooManyRegions,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::RowidOutOfRange(r) => write!(f, "row id {r} is outside the rank index's range"),
            BuildError::TermsOutOfOrder => write!(f, "terms must be added in ascending order"),
            BuildError::TooManyRegions => write!(f, "more than {MAX_REGIONS} distinct regions"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds a [`Snapshot`] term by term (the snapshot's fields, filled in place).
#[derive(Debug)]
pub struct Builder {
    s: Snapshot,
    /// Region name → code, while building.
    codes: std::collections::HashMap<String, u16>,
}

/// Counts above this are kept in the overflow list (they never occur in titles in practice).
const NIBBLE_MAX: u8 = 15;

/// Most distinct regions a snapshot holds (codes are 16-bit; code 0 is "none").
pub const MAX_REGIONS: usize = u16::MAX as usize;

/// Largest row id the dense per-row arrays accept (64M rows).
pub const MAX_ROWID: i64 = 1 << 26;

impl Builder {
    /// A builder for the database state `generation`, which holds `n_rows` rows
    /// (FTS5's row count). The token total is counted from the instances added.
    pub fn new(generation: i64, n_rows: i64) -> Builder {
        Builder {
            s: Snapshot {
                generation,
                terms: Vec::new(),
                lists: Lists::default(),
                overflow: Vec::new(),
                doc_len: Arr::default(),
                title_len: Arr::default(),
                doc_start: Arr::default(),
                forward: Forward::Narrow(Arr::default()),
                region: Arr::default(),
                regions: vec![String::new()],
                cols: BaseCols::default(),
                n_rows,
                n_tokens: 0,
                postings: 0,
                prefixes: PrefixTable::default(),
                memo: super::memo::Memo::with_budget(),
            },
            codes: std::collections::HashMap::new(),
        }
    }

    /// Records a row's token counts per column (FTS5's `%_docsize`); call for
    /// every row before [`Builder::begin_terms`].
    ///
    /// # Errors
    /// [`BuildError::RowidOutOfRange`].
    pub fn set_sizes(&mut self, rowid: i64, title: u32, channel: u32) -> Result<(), BuildError> {
        let slot = Self::slot(rowid)?;
        if self.s.doc_len.len() <= slot {
            self.s.doc_len.vec().resize(slot + 1, 0);
            self.s.title_len.vec().resize(slot + 1, 0);
        }
        if let (Some(d), Some(t)) = (self.s.doc_len.vec().get_mut(slot), self.s.title_len.vec().get_mut(slot)) {
            *d = title.saturating_add(channel);
            *t = title;
        }
        self.s.n_tokens += i64::from(title) + i64::from(channel);
        Ok(())
    }

    /// Lays out the forward index once all sizes are known; `terms` is the
    /// number of distinct terms to come (it picks 16- or 32-bit term ids).
    pub fn begin_terms(&mut self, terms: usize) {
        let mut start = 0u32;
        self.s.doc_start = self
            .s
            .doc_len
            .iter()
            .map(|&len| {
                let here = start;
                start = start.saturating_add(len);
                here
            })
            .collect::<Vec<u32>>()
            .into();
        let total = usize::try_from(start).unwrap_or(0);
        self.s.forward = if terms < usize::from(u16::MAX) {
            Forward::Narrow(vec![u16::MAX; total].into())
        } else {
            Forward::Wide(vec![u32::MAX; total].into())
        };
    }

    fn slot(rowid: i64) -> Result<usize, BuildError> {
        if (0..MAX_ROWID).contains(&rowid) {
            usize::try_from(rowid).map_err(|_| BuildError::RowidOutOfRange(rowid))
        } else {
            Err(BuildError::RowidOutOfRange(rowid))
        }
    }

    /// Records a row's region.
    ///
    /// # Errors
    /// [`BuildError::RowidOutOfRange`].
    pub fn set_region(&mut self, rowid: i64, region: &str) -> Result<(), BuildError> {
        let slot = Self::slot(rowid)?;
        let code = match self.codes.get(region) {
            Some(&c) => c,
            None => {
                let c = u16::try_from(self.s.regions.len()).map_err(|_| BuildError::TooManyRegions)?;
                if usize::from(c) > MAX_REGIONS {
                    return Err(BuildError::TooManyRegions);
                }
                self.s.regions.push(region.to_owned());
                self.codes.insert(region.to_owned(), c);
                c
            }
        };
        if self.s.region.len() <= slot {
            self.s.region.vec().resize(slot + 1, 0);
        }
        if let Some(r) = self.s.region.vec().get_mut(slot) {
            *r = code;
        }
        Ok(())
    }

    /// Records a row's filter and sort columns (`inexact`: what of them SQL compares differently).
    ///
    /// # Errors
    /// [`BuildError::RowidOutOfRange`].
    pub fn set_cols(&mut self, rowid: i64, cols: &Cols, inexact: Inexact) -> Result<(), BuildError> {
        let slot = Self::slot(rowid)?;
        self.s.cols.set(slot, cols, inexact);
        Ok(())
    }

    /// Adds one term with its instances, sorted by row id (as fts5vocab yields them).
    ///
    /// # Errors
    /// [`BuildError`] when terms come out of order or a row id is out of range.
    pub fn add_term(&mut self, term: &str, instances: &[Instance]) -> Result<(), BuildError> {
        if self.s.terms.last().is_some_and(|last| **last >= *term) {
            return Err(BuildError::TermsOutOfOrder);
        }
        let term_index = u32::try_from(self.s.terms.len()).map_err(|_| BuildError::TermsOutOfOrder)?;
        for inst in instances {
            let slot = Self::slot(inst.rowid)?;
            let title = self.s.title_len.get(slot).copied().unwrap_or(0);
            let len = self.s.doc_len.get(slot).copied().unwrap_or(0);
            let pos = if inst.column == 0 { inst.offset } else { title.saturating_add(inst.offset) };
            if pos < len {
                let at = self.s.doc_start.get(slot).copied().unwrap_or(0).saturating_add(pos);
                self.s.forward.set(usize::try_from(at).unwrap_or(usize::MAX), term_index);
            }
        }
        let (rowids, counts) = (self.s.lists.rowids.vec(), self.s.lists.counts.vec());
        let mut i = 0;
        while let Some(first) = instances.get(i) {
            let rowid = first.rowid;
            let slot = Self::slot(rowid)?;
            let (mut title, mut channel) = (0u16, 0u16);
            while let Some(inst) = instances.get(i).filter(|x| x.rowid == rowid) {
                if inst.column == 0 {
                    title = title.saturating_add(1);
                } else {
                    channel = channel.saturating_add(1);
                }
                i += 1;
            }
            let _ = slot;
            let rowid32 = u32::try_from(rowid).map_err(|_| BuildError::RowidOutOfRange(rowid))?;
            let packed = match (u8::try_from(title), u8::try_from(channel)) {
                (Ok(t), Ok(c)) if t <= NIBBLE_MAX && c <= NIBBLE_MAX => t | (c << 4),
                _ => {
                    self.s.overflow.push((term_index, rowid32, title, channel));
                    0xFF
                }
            };
            rowids.push(rowid32);
            counts.push(packed);
        }
        let end = u32::try_from(rowids.len()).map_err(|_| BuildError::TermsOutOfOrder)?;
        self.s.lists.ends.vec().push(end);
        self.s.terms.push(term.into());
        Ok(())
    }

    /// The finished snapshot.
    pub fn finish(mut self) -> Snapshot {
        let s = &mut self.s;
        s.overflow.sort_unstable_by_key(|&(t, r, _, _)| (t, r));
        s.terms.shrink_to_fit();
        s.region.vec().shrink_to_fit();
        s.cols.shrink();
        s.lists.rowids.vec().shrink_to_fit();
        s.lists.counts.vec().shrink_to_fit();
        s.postings = s.lists.rowids.len();
        s.prefixes = super::snapshot::prefix_table(s);
        self.s
    }
}
