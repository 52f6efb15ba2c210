//! The prefix table: for every prefix of the vocabulary whose terms together hold
//! many rows, how many distinct rows hold at least one of them. bm25 needs that
//! number (the IDF of a prefix is computed from the rows it matches) before any
//! row is scored, and without it the only way to know it is to merge the terms'
//! postings, which for a short prefix at 10M videos (`th`: over a million rows)
//! took hundreds of milliseconds and up to a gigabyte of memo per process.
//!
//! With the count known, a prefix that is not the rarest phrase of its query is
//! never merged: the ranking walks the rarest phrase's rows and reads the prefix's
//! weighted count in each candidate row from the row's own tokens (the forward
//! index), which FTS5 counts the same way. The table is built with the index
//! (one pass over the qualifying terms' postings) and written into the index file,
//! so every process maps the same copy and no process pays a first merge for it.
//!
//! Keyed by the range of term ids a prefix covers, not by its letters: `qu` and
//! `q` cover the same terms in a vocabulary where every `q` word goes on with `u`,
//! and their counts are the same. Pure data: no SQLite here, and nothing from the
//! snapshot that holds it (its postings come in through a closure).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::ops::Range;

use super::arr::Arr;
use super::codec;

/// Per prefix (a range of term ids, ascending by first then end), the distinct rows
/// its terms hold, and for the largest ones their rows by score class. Read in
/// place from the index file.
#[derive(Debug, Default)]
pub struct PrefixTable {
    pub(super) first: Arr<u32>,
    pub(super) end: Arr<u32>,
    pub(super) rows: Arr<u32>,
    /// Per prefix, the end of its classes in the `class_*` arrays (none: no classes kept).
    pub(super) class_end: Arr<u32>,
    /// Per class: FTS5's weighted frequency of the prefix in its rows (title × 8 +
    /// channel × 2, an integer), the rows' token count, and the end of its rows in
    /// `class_bytes` (row ids ascending, [`codec`]-coded).
    pub(super) class_freq: Arr<u32>,
    pub(super) class_len: Arr<u32>,
    pub(super) class_byte_end: Arr<u32>,
    pub(super) class_bytes: Arr<u8>,
}

/// What the build is told about the postings (closures over the snapshot being built).
pub struct Source<'a, R, W, L>
where
    R: Fn(usize) -> &'a [u32],
    W: Fn(usize, usize) -> u32,
    L: Fn(u32) -> u32,
{
    /// The terms, ascending.
    pub terms: &'a [Box<str>],
    /// A term's row ids, ascending.
    pub rowids_of: R,
    /// The weighted count (title × 8 + channel × 2) of posting `at` of a term.
    pub weight_of: W,
    /// A row's token count.
    pub len_of: L,
    /// One more than the largest row id.
    pub slots: usize,
}

/// Which prefixes the build counts and which it keeps classes of.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Count a prefix whose terms (two or more) hold this many postings together.
    pub min_rows: usize,
    /// Keep the classes of a counted prefix of at least this many distinct rows…
    pub classes_min_rows: usize,
    /// …while all the classes' coded rows take at most this many bytes (largest
    /// prefixes first).
    pub classes_bytes: usize,
}

/// One prefix's classes as (frequency, token count, end of its coded rows), and the rows.
type Coded = (Vec<(u32, u32, u32)>, Vec<u8>);

/// The longest prefix looked at, in characters: past it every group of terms is
/// small (the walk stops earlier, as soon as no group of a length qualifies).
const LONGEST: usize = 64;
/// Classes of one prefix kept at most (past it the rows are left to the memo).
const MAX_CLASSES: usize = 4096;

/// One prefix of the table.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Distinct rows holding one of its terms.
    pub rows: usize,
    /// Its rows by score class, when kept.
    pub classes: Option<Classes<'a>>,
}

/// A prefix's rows grouped by what their bm25 score depends on (the weighted
/// frequency and the row's token count): every row of a class scores the same.
#[derive(Debug, Clone, Copy)]
pub struct Classes<'a> {
    freq: &'a [u32],
    len: &'a [u32],
    byte_end: &'a [u32],
    bytes: &'a [u8],
    /// Where the first class's rows start in `bytes`.
    byte_start: usize,
}

impl<'a> Classes<'a> {
    /// Classes.
    pub fn count(&self) -> usize {
        self.freq.len()
    }

    /// (weighted frequency, token count) of class `class`.
    pub fn class(&self, class: usize) -> (f64, u32) {
        (self.freq.get(class).map_or(0.0, |&f| f64::from(f)), self.len.get(class).copied().unwrap_or(0))
    }

    /// The rows of class `class`, ascending.
    pub fn rows(&self, class: usize) -> codec::Rows<'a> {
        let start = match class.checked_sub(1) {
            Some(before) => self.byte_end.get(before).map_or(usize::MAX, |&e| e as usize),
            None => self.byte_start,
        };
        let end = self.byte_end.get(class).map_or(0, |&e| e as usize);
        codec::Rows::new(self.bytes.get(start..end).unwrap_or_default())
    }
}

impl PrefixTable {
    /// The table for `source`: every prefix that covers two terms or more holding
    /// `limits.min_rows` postings or more together, counted, and every term of
    /// `limits.classes_min_rows` rows; the largest of all these keep their rows by
    /// class within `limits.classes_bytes`.
    pub fn build<'a, R, W, L>(source: &Source<'a, R, W, L>, limits: Limits) -> Self
    where
        R: Fn(usize) -> &'a [u32],
        W: Fn(usize, usize) -> u32,
        L: Fn(u32) -> u32,
    {
        let terms = source.terms;
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for chars in 1..=LONGEST {
            let mut any = false;
            let mut i = 0;
            while let Some(term) = terms.get(i) {
                let Some(prefix) = char_prefix(term, chars) else {
                    i += 1;
                    continue;
                };
                let mut j = i + 1;
                let mut postings = (source.rowids_of)(i).len();
                while terms.get(j).is_some_and(|t| t.starts_with(prefix)) {
                    postings += (source.rowids_of)(j).len();
                    j += 1;
                }
                if j - i >= 2 && postings >= limits.min_rows.max(1) {
                    any = true;
                    if let (Ok(a), Ok(b)) = (u32::try_from(i), u32::try_from(j)) {
                        ranges.push((a, b));
                    }
                }
                i = j;
            }
            // A longer prefix's terms are some of a shorter one's: none qualifies past here.
            if !any {
                break;
            }
        }
        // Whole terms of many rows too (a range of one term): a common word's rows by
        // class, for the walks that rank it alone or drive with it (its count is its
        // list's length; the table holds it for the classes).
        for (i, _) in terms.iter().enumerate() {
            if (source.rowids_of)(i).len() >= limits.classes_min_rows.max(1) {
                if let (Ok(a), Ok(b)) = (u32::try_from(i), u32::try_from(i + 1)) {
                    ranges.push((a, b));
                }
            }
        }
        ranges.sort_unstable();
        ranges.dedup();
        // Pass 1: each range's distinct rows (each row stamped with the range it was
        // last counted for): one pass over the ranges' postings, no row list kept.
        let mut stamp = vec![u32::MAX; source.slots];
        let mut rows = Vec::with_capacity(ranges.len());
        for (k, &(a, b)) in ranges.iter().enumerate() {
            let id = u32::try_from(k).unwrap_or(u32::MAX - 1);
            let mut distinct = 0u32;
            for term in a..b {
                for &r in (source.rowids_of)(usize::try_from(term).unwrap_or(usize::MAX)) {
                    if let Some(s) = stamp.get_mut(usize::try_from(r).unwrap_or(usize::MAX)) {
                        if *s != id {
                            *s = id;
                            distinct += 1;
                        }
                    }
                }
            }
            rows.push(distinct);
        }
        drop(stamp);
        // Pass 2: classes of the largest prefixes first, one at a time, while the byte
        // budget lasts (a coded row takes at least a byte: larger ones are not tried).
        let mut sizes: Vec<(u32, usize)> = rows
            .iter()
            .enumerate()
            .filter(|(_, n)| usize::try_from(**n).is_ok_and(|n| n >= limits.classes_min_rows.max(1)))
            .map(|(k, &n)| (n, k))
            .collect();
        sizes.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        let mut coded: Vec<Option<Coded>> = vec![None; ranges.len()];
        let mut spent = 0usize;
        let mut freq = if sizes.is_empty() { Vec::new() } else { vec![0u32; source.slots] };
        for (n, k) in sizes {
            if spent.saturating_add(n as usize) > limits.classes_bytes {
                continue;
            }
            let Some(&(a, b)) = ranges.get(k) else { continue };
            let mut touched: Vec<u32> = Vec::with_capacity(n as usize);
            for term in a..b {
                let term = usize::try_from(term).unwrap_or(usize::MAX);
                for (at, &r) in (source.rowids_of)(term).iter().enumerate() {
                    if let Some(f) = freq.get_mut(usize::try_from(r).unwrap_or(usize::MAX)) {
                        if *f == 0 {
                            touched.push(r);
                        }
                        *f = f.saturating_add((source.weight_of)(term, at).max(1));
                    }
                }
            }
            let pairs: Vec<(u32, u32)> = touched
                .iter()
                .map(|&r| (r, freq.get_mut(usize::try_from(r).unwrap_or(usize::MAX)).map_or(0, std::mem::take)))
                .collect();
            drop(touched);
            let Some(classes) = classify(&pairs, &source.len_of) else { continue };
            if spent + classes.1.len() <= limits.classes_bytes {
                spent += classes.1.len();
                if let Some(slot) = coded.get_mut(k) {
                    *slot = Some(classes);
                }
            }
        }
        drop(freq);
        let mut table = PrefixTable {
            first: ranges.iter().map(|r| r.0).collect::<Vec<u32>>().into(),
            end: ranges.iter().map(|r| r.1).collect::<Vec<u32>>().into(),
            rows: rows.into(),
            ..PrefixTable::default()
        };
        let (mut class_end, mut cf, mut cl, mut cb, mut bytes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for entry in coded {
            if let Some((classes, coded_rows)) = entry {
                let base = bytes.len();
                bytes.extend_from_slice(&coded_rows);
                for (f, l, end) in classes {
                    cf.push(f);
                    cl.push(l);
                    cb.push(u32::try_from(base + end as usize).unwrap_or(u32::MAX));
                }
            }
            class_end.push(u32::try_from(cf.len()).unwrap_or(u32::MAX));
        }
        table.class_end = class_end.into();
        table.class_freq = cf.into();
        table.class_len = cl.into();
        table.class_byte_end = cb.into();
        table.class_bytes = bytes.into();
        table
    }

    /// The prefix of the terms `terms`, when the table holds that range.
    pub fn find(&self, terms: &Range<usize>) -> Option<Entry<'_>> {
        let key = (u32::try_from(terms.start).ok()?, u32::try_from(terms.end).ok()?);
        let lo = self.first.partition_point(|&f| f < key.0);
        let hi = lo + self.first.get(lo..)?.partition_point(|&f| f == key.0);
        let at = lo + self.end.get(lo..hi)?.binary_search(&key.1).ok()?;
        let rows = usize::try_from(*self.rows.get(at)?).ok()?;
        let end = *self.class_end.get(at)? as usize;
        let start = match at.checked_sub(1) {
            Some(before) => *self.class_end.get(before)? as usize,
            None => 0,
        };
        let classes = (end > start)
            .then(|| {
                Some(Classes {
                    freq: self.class_freq.get(start..end)?,
                    len: self.class_len.get(start..end)?,
                    byte_end: self.class_byte_end.get(start..end)?,
                    bytes: &self.class_bytes,
                    byte_start: match start.checked_sub(1) {
                        Some(before) => *self.class_byte_end.get(before)? as usize,
                        None => 0,
                    },
                })
            })
            .flatten();
        Some(Entry { rows, classes })
    }

    /// The distinct rows of the terms `terms`, when the table holds that range.
    pub fn rows(&self, terms: &Range<usize>) -> Option<usize> {
        self.find(terms).map(|e| e.rows)
    }

    /// Prefixes held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no prefix is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Prefixes whose classes are kept, and the bytes of their coded rows.
    pub fn classes_kept(&self) -> (usize, usize) {
        let mut before = 0;
        let kept = self
            .class_end
            .iter()
            .filter(|&&end| {
                let some = end > before;
                before = end;
                some
            })
            .count();
        (kept, self.class_bytes.len())
    }

    /// Heap bytes (none when mapped).
    pub fn heap_bytes(&self) -> usize {
        self.first.heap_bytes()
            + self.end.heap_bytes()
            + self.rows.heap_bytes()
            + self.class_end.heap_bytes()
            + self.class_freq.heap_bytes()
            + self.class_len.heap_bytes()
            + self.class_byte_end.heap_bytes()
            + self.class_bytes.heap_bytes()
    }

    /// Checks a table read from a file against the vocabulary it serves.
    ///
    /// # Errors
    /// What is inconsistent, in words.
    pub fn check(&self, terms: usize) -> Result<(), String> {
        let n = self.rows.len();
        if self.first.len() != n || self.end.len() != n || self.class_end.len() != n {
            return Err("the prefix table's columns disagree".into());
        }
        let mut last = None;
        for (&a, &b) in self.first.iter().zip(self.end.iter()) {
            if a >= b || usize::try_from(b).map_or(true, |b| b > terms) || last.is_some_and(|l| l >= (a, b)) {
                return Err("the prefix table is out of order or past the terms".into());
            }
            last = Some((a, b));
        }
        let classes = self.class_freq.len();
        if self.class_len.len() != classes || self.class_byte_end.len() != classes {
            return Err("the prefix classes' columns disagree".into());
        }
        if self.class_end.windows(2).any(|w| w.first() > w.last())
            || self.class_end.last().is_some_and(|&e| e as usize != classes)
        {
            return Err("the prefix classes run past their table".into());
        }
        if self.class_byte_end.windows(2).any(|w| w.first() > w.last())
            || self.class_byte_end.last().is_some_and(|&e| e as usize != self.class_bytes.len())
        {
            return Err("the prefix classes' rows run past their bytes".into());
        }
        Ok(())
    }
}

/// (classes as (frequency, token count, end of its bytes), the coded rows) of one
/// prefix's (row, weighted frequency) pairs; None when they fall into too many classes.
fn classify(pairs: &[(u32, u32)], len_of: &impl Fn(u32) -> u32) -> Option<Coded> {
    // (frequency, length, row) packed so one integer sort orders them.
    let mut keys: Vec<u64> = Vec::with_capacity(pairs.len());
    for &(r, f) in pairs {
        let len = len_of(r);
        if f >= 1 << 20 || len >= 1 << 12 {
            return None;
        }
        keys.push((u64::from(f) << 44) | (u64::from(len) << 32) | u64::from(r));
    }
    keys.sort_unstable();
    let mut classes: Vec<(u32, u32, u32)> = Vec::new();
    let mut bytes = Vec::new();
    let mut rows: Vec<u32> = Vec::new();
    let mut current: Option<u64> = None;
    let flush = |rows: &mut Vec<u32>, bytes: &mut Vec<u8>, classes: &mut Vec<(u32, u32, u32)>, class: u64| {
        codec::encode(rows, bytes);
        rows.clear();
        let (f, l) = (u32::try_from(class >> 12).unwrap_or(u32::MAX), u32::try_from(class & 0xFFF).unwrap_or(0));
        classes.push((f, l, u32::try_from(bytes.len()).unwrap_or(u32::MAX)));
    };
    for key in keys {
        let class = key >> 32;
        if current.is_some_and(|c| c != class) {
            if let Some(c) = current {
                flush(&mut rows, &mut bytes, &mut classes, c);
            }
            if classes.len() >= MAX_CLASSES {
                return None;
            }
        }
        current = Some(class);
        rows.push(u32::try_from(key & u64::from(u32::MAX)).unwrap_or(u32::MAX));
    }
    if let Some(c) = current {
        flush(&mut rows, &mut bytes, &mut classes, c);
    }
    if u32::try_from(bytes.len()).is_err() {
        return None;
    }
    Some((classes, bytes))
}

/// The first `chars` characters of `term`, when it has that many.
fn char_prefix(term: &str, chars: usize) -> Option<&str> {
    match term.char_indices().nth(chars) {
        Some((at, _)) => term.get(..at),
        None if term.chars().count() == chars => Some(term),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(terms: &[&str], lists: &[Vec<u32>], min_rows: usize, classes_min_rows: usize) -> PrefixTable {
        let terms: Vec<Box<str>> = terms.iter().map(|t| (*t).into()).collect();
        let source = Source {
            terms: &terms,
            rowids_of: |i| lists.get(i).map_or(&[][..], Vec::as_slice),
            weight_of: |_, _| 8,
            len_of: |r| r % 3,
            slots: 100,
        };
        PrefixTable::build(&source, Limits { min_rows, classes_min_rows, classes_bytes: usize::MAX })
    }

    #[test]
    fn counts_distinct_rows_of_every_prefix_with_several_terms() {
        let terms = ["sea", "search", "season", "seat", "zoo"];
        let lists = vec![vec![1, 2], vec![2, 3], vec![3, 4, 5], vec![9], vec![1]];
        let t = table(&terms, &lists, 1, 4);
        assert_eq!(t.rows(&(0..4)), Some(6), "s, se, sea: rows 1 2 3 4 5 9");
        assert_eq!(t.rows(&(1..3)), None, "no prefix covers exactly `search` and `season`");
        assert_eq!(t.rows(&(4..5)), None, "one term: its own list says it");
        assert_eq!(t.rows(&(0..5)), None, "no prefix covers these");
        assert_eq!(t.len(), 1, "s, se and sea are one range");
        assert_eq!(t.check(terms.len()), Ok(()));
        assert!(t.check(3).is_err(), "a range past the terms");
        // Its rows by class: (frequency, length) → rows ascending.
        let classes = t
            .find(&(0..4))
            .and_then(|e| e.classes)
            .map(|c| (0..c.count()).map(|k| (c.class(k), c.rows(k).collect::<Vec<_>>())).collect::<Vec<_>>());
        assert_eq!(
            classes,
            Some(vec![
                ((8.0, 0), vec![9]),
                ((8.0, 1), vec![1, 4]),
                ((8.0, 2), vec![5]),
                ((16.0, 0), vec![3]),
                ((16.0, 2), vec![2]),
            ]),
            "rows 2 and 3 hold two of the terms"
        );
    }

    #[test]
    fn the_row_threshold_leaves_small_prefixes_out() {
        let terms = ["ab", "abc", "xy", "xyz"];
        let lists = vec![vec![1, 2, 3], vec![1, 4], vec![5], vec![6]];
        let t = table(&terms, &lists, 3, usize::MAX);
        assert_eq!(t.rows(&(0..2)), Some(4));
        assert_eq!(t.rows(&(2..4)), None, "2 postings < 3");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn prefixes_are_cut_at_characters_not_bytes() {
        assert_eq!(char_prefix("über", 1), Some("ü"));
        assert_eq!(char_prefix("猫咪", 1), Some("猫"));
        assert_eq!(char_prefix("ab", 2), Some("ab"));
        assert_eq!(char_prefix("ab", 3), None);
        let t = table(&["猫", "猫咪", "猫狗"], &[vec![1], vec![1, 2], vec![3]], 1, usize::MAX);
        assert_eq!(t.rows(&(0..3)), Some(3));
    }

    #[test]
    fn common_terms_keep_their_classes_too() {
        let t = table(&["ab", "cd", "ef"], &[vec![1, 2, 3], vec![4], vec![5, 6, 7, 8]], 1_000, 3);
        assert_eq!(t.len(), 2, "ab and ef: three rows or more; cd is left out");
        let ef = t.find(&(2..3)).and_then(|e| e.classes).map(|c| (0..c.count()).flat_map(|k| c.rows(k)).count());
        assert_eq!(ef, Some(4));
        assert_eq!(t.rows(&(1..2)), None);
    }
}
