//! The vocabulary and the typo rule over it, once, whatever holds the terms: the
//! rank index snapshot's own terms, or a [`Vocabulary`] read from FTS5 when no
//! current snapshot exists, so both paths make the same corrections. Lookups of
//! a word or a prefix in sorted terms ([`term_range`]), rows per word, and the
//! rule's candidates: a word is corrected only when no row holds it; the
//! replacement is the term within one edit (two from 8 characters) held by the
//! most rows, then the closer, then the first in byte order. Pure data: the
//! glue that applies the rule to a query's phrases is `search::typo`.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// Terms given out of strictly ascending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermsOutOfOrder;

impl std::fmt::Display for TermsOutOfOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "terms must be added in ascending order")
    }
}

impl std::error::Error for TermsOutOfOrder {}

/// The indexes of `terms` (sorted) equal to `token`, or starting with it when `prefix`.
pub fn term_range(terms: &[Box<str>], token: &str, prefix: bool) -> std::ops::Range<usize> {
    let start = terms.partition_point(|t| **t < *token);
    if !prefix {
        let found = terms.get(start).is_some_and(|t| **t == *token);
        return start..if found { start + 1 } else { start };
    }
    let len = terms.get(start..).map_or(0, |rest| rest.partition_point(|t| t.starts_with(token)));
    start..start + len
}

/// Shortest token the typo correction touches, in characters.
pub const MIN_TYPO_CHARS: usize = 4;

/// Longest token the typo correction touches, in characters (longer ones are not words people mistype).
pub const MAX_TYPO_CHARS: usize = 40;

/// The one typo rule's candidates, whatever holds the vocabulary: the first `n` known
/// terms within one typo of `token` (two for tokens of 8+ characters; substitution,
/// insertion, deletion or swapping two neighbours), none when `token` is known (as a
/// whole word, or as a prefix when `prefix`), shorter than [`MIN_TYPO_CHARS`] or
/// longer than [`MAX_TYPO_CHARS`]. Ordered by rows holding them (`docs`, most first),
/// then the closer, then byte order; `correct_phrases` tries them against the rest of
/// the query. `terms` are sorted; scans them once.
pub fn candidates(
    terms: &[Box<str>],
    docs: impl Fn(usize) -> usize,
    token: &str,
    prefix: bool,
    n: usize,
) -> Vec<String> {
    if !term_range(terms, token, prefix).is_empty() {
        return Vec::new();
    }
    candidates_among(terms.iter().enumerate().map(|(i, t)| (&**t, docs(i))), token, n)
}

/// [`candidates`] over `candidates`, (term, rows holding it) in byte order, once
/// `token` is known to be unknown; terms held by no row are skipped.
pub fn candidates_among<'t>(candidates: impl Iterator<Item = (&'t str, usize)>, token: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = token.chars().collect();
    if n == 0 || !(MIN_TYPO_CHARS..=MAX_TYPO_CHARS).contains(&chars.len()) {
        return Vec::new();
    }
    let max = if chars.len() >= 8 { 2 } else { 1 };
    let mask = char_mask(token);
    let mut found: Vec<(usize, usize, &str)> = Vec::new(); // (rows, distance, term), terms in byte order
    for (term, freq) in candidates {
        // A char count is never above the byte length nor below a quarter of it.
        if freq == 0 || term.len() + max < chars.len() || term.len() > (chars.len() + max) * 4 {
            continue;
        }
        // Each edit changes at most two bits of the mask (see `char_mask`): a term
        // whose characters differ in more cannot be within `max` edits.
        if (char_mask(term) ^ mask).count_ones() as usize > 2 * max {
            continue;
        }
        let len = term.chars().count();
        if len.abs_diff(chars.len()) > max {
            continue;
        }
        let Some(d) = bounded_distance(&chars, term, max) else { continue };
        found.push((freq, d, term));
    }
    // Stable: equal (rows, distance) keep byte order.
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    found.into_iter().take(n).map(|(_, _, t)| t.to_owned()).collect()
}

/// The set of characters in `s`, each hashed to one of 64 bits: an exact filter
/// for [`bounded_distance`]. A substitution removes one character and adds one, an
/// insertion adds one, a deletion removes one, a swap of neighbours changes none, so
/// one edit changes at most two bits (a removed character's bit stays set if another
/// character shares it), and `d` edits at most `2d`: strings whose masks differ in
/// more than `2 * max` bits are more than `max` edits apart. Hash collisions only
/// make the filter let more through, never fewer.
pub fn char_mask(s: &str) -> u64 {
    s.chars().fold(0u64, |m, c| m | 1u64 << (u32::from(c).wrapping_mul(0x9E37_79B1) >> 26))
}

/// Rows holding `token` (every term starting with it, summed, when `prefix`) in a
/// sorted vocabulary; what word dropping weighs words by.
pub fn docs_of(terms: &[Box<str>], docs: impl Fn(usize) -> usize, token: &str, prefix: bool) -> usize {
    term_range(terms, token, prefix).map(docs).fold(0usize, usize::saturating_add)
}

/// The index's terms and the number of rows holding each, without postings: what the
/// typo correction needs when no current [`super::Snapshot`] is at hand (read from FTS5's
/// `fts5vocab` row table by `search`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    terms: Vec<Box<str>>,
    docs: Vec<u32>,
}

impl Vocabulary {
    /// A vocabulary from (term, rows) pairs in strictly ascending term order; terms in no row are skipped.
    ///
    /// # Errors
    /// [`TermsOutOfOrder`] when the terms are not strictly ascending.
    pub fn from_sorted(pairs: impl IntoIterator<Item = (String, u32)>) -> Result<Vocabulary, TermsOutOfOrder> {
        let mut v = Vocabulary::default();
        for (term, docs) in pairs {
            if v.terms.last().is_some_and(|last| **last >= *term) {
                return Err(TermsOutOfOrder);
            }
            if docs > 0 {
                v.terms.push(term.into());
                v.docs.push(docs);
            }
        }
        v.terms.shrink_to_fit();
        v.docs.shrink_to_fit();
        Ok(v)
    }

    /// Distinct terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether no term is known.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The best typo correction of `token` by rows alone: see [`candidates`].
    pub fn correct(&self, token: &str, prefix: bool) -> Option<String> {
        self.candidates(token, prefix, 1).into_iter().next()
    }

    /// The first `n` corrections of `token`, best first: see [`candidates`].
    pub fn candidates(&self, token: &str, prefix: bool, n: usize) -> Vec<String> {
        candidates(&self.terms, |i| self.doc_count(i), token, prefix, n)
    }

    /// Rows holding `token` (or a term starting with it, summed, when `prefix`).
    pub fn docs(&self, token: &str, prefix: bool) -> usize {
        docs_of(&self.terms, |i| self.doc_count(i), token, prefix)
    }

    fn doc_count(&self, i: usize) -> usize {
        self.docs.get(i).map_or(0, |&d| usize::try_from(d).unwrap_or(usize::MAX))
    }
}

/// Optimal-string-alignment distance between `a` and `b` if it is at most `max`.
pub fn bounded_distance(a: &[char], b: &str, max: usize) -> Option<usize> {
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    // Three rolling rows: i-2, i-1, i.
    let mut prev2: Vec<usize> = vec![0; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur: Vec<usize> = vec![0; m + 1];
    for i in 1..=n {
        if let Some(c) = cur.first_mut() {
            *c = i;
        }
        let mut row_min = i;
        for j in 1..=m {
            let (ai, bj) = (a.get(i - 1), b.get(j - 1));
            let cost = usize::from(ai != bj);
            let del = prev.get(j).copied().unwrap_or(usize::MAX - 1) + 1;
            let ins = cur.get(j - 1).copied().unwrap_or(usize::MAX - 1) + 1;
            let sub = prev.get(j - 1).copied().unwrap_or(usize::MAX - 1) + cost;
            let mut v = del.min(ins).min(sub);
            if i > 1 && j > 1 && ai == b.get(j - 2) && a.get(i - 2) == bj {
                v = v.min(prev2.get(j - 2).copied().unwrap_or(usize::MAX - 1) + 1);
            }
            if let Some(c) = cur.get_mut(j) {
                *c = v;
            }
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.get(m).copied().filter(|d| *d <= max)
}
