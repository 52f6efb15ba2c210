//! The columns filtered and re-ordered queries read, per row: duration,
//! `published_at`, view count and channel, so the rank index answers
//! `channel`, `min_duration`, `max_duration` and `sort=recent|popular` with
//! the same rows, in the same order, as the SQL statement (`sql::filtered`).
//!
//! Exactness: SQL compares the stored values. The index keeps a value only
//! when it compares the same way in memory: an integer duration or view
//! count, a `published_at` that is NULL or canonical UTC text
//! (`YYYY-MM-DDTHH:MM:SSZ`, where text order is time order), channel text.
//! A row holding anything else marks its column [`Inexact`], and queries
//! that read that column go to SQL. Pure data: no SQLite here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::cmp::Ordering;
use std::collections::HashMap;

use super::arr::Arr;
use crate::search::query::Sort;

/// One row's filter and sort columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cols {
    /// `duration_seconds`.
    pub duration: i64,
    /// `published_at` as Unix seconds; None for NULL.
    pub published: Option<i64>,
    /// `view_count`.
    pub views: i64,
    /// `channel`, exactly as stored.
    pub channel: String,
}

/// Which columns hold, in some row, a value the index cannot compare as SQL does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inexact {
    /// A duration that is not an integer (or out of range).
    pub duration: bool,
    /// A `published_at` that is neither NULL nor canonical UTC text.
    pub published: bool,
    /// A view count that is not an integer.
    pub views: bool,
    /// A channel that is not text.
    pub channel: bool,
}

impl Inexact {
    /// Both sets of marks.
    pub fn merge(&mut self, other: Inexact) {
        self.duration |= other.duration;
        self.published |= other.published;
        self.views |= other.views;
        self.channel |= other.channel;
    }

    /// Whether `filter` reads a column marked here.
    pub fn blocks(&self, filter: &Filter<'_>) -> bool {
        (self.duration && (filter.min_duration.is_some() || filter.max_duration.is_some()))
            || (self.published && filter.sort == Sort::Recent)
            || (self.views && filter.sort == Sort::Popular)
            || (self.channel && filter.channel.is_some())
    }
}

/// A query's filters and order, as the index applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Only these channels (exact stored names).
    pub channel: Option<&'a [String]>,
    /// Only rows at least this long.
    pub min_duration: Option<i64>,
    /// Only rows at most this long.
    pub max_duration: Option<i64>,
    /// The result order.
    pub sort: Sort,
}

impl Filter<'_> {
    /// Whether a row with these columns passes (`channel_is` says whether its channel is one of those asked for).
    pub fn admits(&self, duration: i64, channel_is: impl FnOnce(&[String]) -> bool) -> bool {
        self.min_duration.is_none_or(|m| duration >= m)
            && self.max_duration.is_none_or(|m| duration <= m)
            && self.channel.is_none_or(channel_is)
    }

    /// The row's place in the order before its rank and row id: lower comes first
    /// (`published_at IS NULL, published_at DESC` or `view_count DESC`; nothing for relevance).
    pub fn key(&self, published: Option<i64>, views: i64) -> (i64, i64) {
        match self.sort {
            Sort::Relevance => (0, 0),
            Sort::Recent => published.map_or((1, 0), |p| (0, p.saturating_neg())),
            Sort::Popular => (0, views.saturating_neg()),
        }
    }
}

/// A candidate's full sort key: the filter's key, then (for relevance) the rank, then the row id.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// [`Filter::key`].
    pub major: (i64, i64),
    /// bm25 for relevance, 0 otherwise (the SQL order does not read it).
    pub rank: f64,
    /// The row id.
    pub rowid: i64,
    /// The row's bm25 value (what the answer shows; not part of the order).
    pub score: f64,
}

impl Key {
    /// The order of `ORDER BY` in `sql::filtered`.
    pub fn order(&self, other: &Key) -> Ordering {
        self.major.cmp(&other.major).then(self.rank.total_cmp(&other.rank)).then(self.rowid.cmp(&other.rowid))
    }
}

/// A value that means NULL in [`BaseCols::published`].
const NO_DATE: i64 = i64::MIN;

/// The columns of every base row, by row id (dense, like the snapshot's other per-row arrays).
#[derive(Debug, Default)]
pub struct BaseCols {
    pub(super) duration: Arr<u32>,
    pub(super) published: Arr<i64>,
    pub(super) views: Arr<i64>,
    pub(super) channel: Arr<u32>,
    pub(super) channel_names: Vec<Box<str>>,
    pub(super) channel_ids: HashMap<Box<str>, u32>,
    /// Columns some base row holds an inexact value in.
    pub inexact: Inexact,
}

impl BaseCols {
    /// Records row `slot`'s columns (`inexact`: what of them could not be kept exactly).
    pub fn set(&mut self, slot: usize, cols: &Cols, inexact: Inexact) {
        let mut inexact = inexact;
        if self.duration.len() <= slot {
            self.duration.vec().resize(slot + 1, 0);
            self.published.vec().resize(slot + 1, NO_DATE);
            self.views.vec().resize(slot + 1, 0);
            self.channel.vec().resize(slot + 1, 0);
        }
        let duration = u32::try_from(cols.duration).unwrap_or_else(|_| {
            inexact.duration = true;
            0
        });
        let channel = match self.channel_ids.get(cols.channel.as_str()) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.channel_names.len()).unwrap_or(u32::MAX);
                self.channel_names.push(cols.channel.as_str().into());
                self.channel_ids.insert(cols.channel.as_str().into(), id);
                id
            }
        };
        if cols.published == Some(NO_DATE) {
            inexact.published = true;
        }
        if let (Some(d), Some(p), Some(v), Some(c)) = (
            self.duration.vec().get_mut(slot),
            self.published.vec().get_mut(slot),
            self.views.vec().get_mut(slot),
            self.channel.vec().get_mut(slot),
        ) {
            *d = duration;
            *p = cols.published.unwrap_or(NO_DATE);
            *v = cols.views;
            *c = channel;
        }
        self.inexact.merge(inexact);
    }

    /// Row `slot`'s duration, published_at, views and channel id.
    pub fn get(&self, slot: usize) -> (i64, Option<i64>, i64, u32) {
        let published = self.published.get(slot).copied().unwrap_or(NO_DATE);
        (
            i64::from(self.duration.get(slot).copied().unwrap_or(0)),
            (published != NO_DATE).then_some(published),
            self.views.get(slot).copied().unwrap_or(0),
            self.channel.get(slot).copied().unwrap_or(u32::MAX),
        )
    }

    /// The id of channel `name` among base rows, if any base row has it.
    pub fn channel_id(&self, name: &str) -> Option<u32> {
        self.channel_ids.get(name).copied()
    }

    /// Frees spare capacity once every row is set.
    pub fn shrink(&mut self) {
        self.duration.vec().shrink_to_fit();
        self.published.vec().shrink_to_fit();
        self.views.vec().shrink_to_fit();
        self.channel.vec().shrink_to_fit();
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> usize {
        self.duration.heap_bytes()
            + self.published.heap_bytes()
            + self.views.heap_bytes()
            + self.channel.heap_bytes()
            + self.channel_names.iter().map(|n| n.len() * 2 + 40).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_as_the_sql_statement_does() {
        let recent = Filter { channel: None, min_duration: None, max_duration: None, sort: Sort::Recent };
        let newer = recent.key(Some(200), 0);
        let older = recent.key(Some(100), 0);
        let undated = recent.key(None, 0);
        assert!(newer < older && older < undated, "newest first, no date last");
        let popular = Filter { sort: Sort::Popular, ..recent };
        assert!(popular.key(None, 10) < popular.key(None, 9));
        let a = Key { major: (0, 0), rank: -2.0, rowid: 9, score: -2.0 };
        let b = Key { major: (0, 0), rank: -1.0, rowid: 1, score: -1.0 };
        assert_eq!(a.order(&b), Ordering::Less, "relevance: rank before row id");
    }

    #[test]
    fn filters_and_inexact_columns() {
        let ch = ["Ch".to_owned()];
        let f = Filter { channel: Some(&ch), min_duration: Some(10), max_duration: Some(20), sort: Sort::Popular };
        let is = |name: &'static str| move |c: &[String]| c.iter().any(|c| c == name);
        assert!(f.admits(15, is("Ch")));
        assert!(!f.admits(21, is("Ch")) && !f.admits(9, is("Ch")) && !f.admits(15, is("Other")));
        let inexact = Inexact { views: true, ..Inexact::default() };
        assert!(inexact.blocks(&f));
        assert!(!inexact.blocks(&Filter { sort: Sort::Recent, ..f }));
    }
}
