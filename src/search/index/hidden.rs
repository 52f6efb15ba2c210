//! The set of row ids to leave out of answers (videos the thumbnail policy
//! hides, base rows the delta replaced): a bitmap for the dense low row ids and
//! an ordered set for the rest. Pure data.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// A set of row ids, for rows to leave out: a bitmap below [`Hidden::BITMAP_ROWS`]
/// (16 KB per million rows, at most 8 MB), an ordered set for the rest (negative
/// or larger row ids: a hidden video with a row id near 2^32 must not cost 512 MB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hidden {
    words: Vec<u64>,
    len: usize,
    far: std::collections::BTreeSet<i64>,
}

impl Hidden {
    /// The empty set (for a `static`).
    pub const EMPTY: Hidden = Hidden { words: Vec::new(), len: 0, far: std::collections::BTreeSet::new() };

    /// Row ids below this are held in the bitmap (2^26, the rank index's own limit).
    pub const BITMAP_ROWS: i64 = 1 << 26;

    /// The set of these row ids.
    pub fn from_rowids(rowids: impl IntoIterator<Item = i64>) -> Hidden {
        let mut set = Hidden::default();
        for rowid in rowids {
            set.insert_row(rowid);
        }
        set
    }

    /// Adds `rowid` (any row id SQLite has) to the set.
    pub fn insert_row(&mut self, rowid: i64) {
        match u32::try_from(rowid) {
            Ok(r) if rowid < Self::BITMAP_ROWS => self.insert(r),
            _ => {
                if self.far.insert(rowid) {
                    self.len += 1;
                }
            }
        }
    }

    /// Whether `rowid` (any row id SQLite has) is in the set.
    pub fn contains_row(&self, rowid: i64) -> bool {
        match u32::try_from(rowid) {
            Ok(r) if rowid < Self::BITMAP_ROWS => self.contains(r),
            _ => self.far.contains(&rowid),
        }
    }

    /// Adds `rowid` to the set.
    pub fn insert(&mut self, rowid: u32) {
        if i64::from(rowid) >= Self::BITMAP_ROWS {
            self.insert_row(i64::from(rowid));
            return;
        }
        let r = rowid as usize;
        let (word, bit) = (r / 64, r % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        if let Some(w) = self.words.get_mut(word) {
            if *w & (1 << bit) == 0 {
                self.len += 1;
            }
            *w |= 1 << bit;
        }
    }

    /// Whether `rowid` is in the set.
    pub fn contains(&self, rowid: u32) -> bool {
        if i64::from(rowid) >= Self::BITMAP_ROWS {
            return self.far.contains(&i64::from(rowid));
        }
        let r = rowid as usize;
        self.words.get(r / 64).is_some_and(|w| w & (1 << (r % 64)) != 0)
    }

    /// Row ids in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_holds_any_row_id_without_a_bitmap_to_match() {
        let far = [-5_i64, 1 << 26, 4_294_967_290, 1 << 40, i64::MAX];
        let set = Hidden::from_rowids(far.iter().copied().chain([0, 63, 64, 1_000_000]));
        assert_eq!(set.len(), far.len() + 4);
        for r in far.iter().copied().chain([0, 63, 64, 1_000_000]) {
            assert!(set.contains_row(r), "{r}");
        }
        for r in [1_i64, 65, (1 << 26) - 1, 4_294_967_291, -6] {
            assert!(!set.contains_row(r), "{r}");
        }
        assert!(set.contains(4_294_967_290) && !set.contains(4_294_967_291));
        // The bitmap covers the low row ids only: 1M rows of it, not 2^32 bits.
        assert!(set.words.len() <= 1_000_000 / 64 + 1, "{}", set.words.len());
        let mut again = Hidden::default();
        again.insert(1 << 30);
        again.insert(1 << 30);
        assert_eq!((again.len(), again.words.len()), (1, 0));
    }
}
