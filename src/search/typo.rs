//! The typo rule, once, over any sorted vocabulary: the rank index snapshot's
//! own terms, or a [`Vocabulary`] read from FTS5 when no current snapshot
//! exists, so both paths make the same corrections (see `docs/decisions/`).
//! A word is corrected only when no row holds it; the replacement is the term
//! within one edit (two from 8 characters) held by the most rows, then the
//! closer, then the first in byte order. Pure data here, plus the glue that
//! applies the rule to a query's phrases (`correct_phrases`).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use rusqlite::Connection;

use super::index::{BuildError, RankIndex, View};
use super::tokenize::{Phrase, expression};
use super::{Error, sql};

/// The indexes of `terms` (sorted) equal to `token`, or starting with it when `prefix`.
pub(crate) fn term_range(terms: &[Box<str>], token: &str, prefix: bool) -> std::ops::Range<usize> {
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
fn char_mask(s: &str) -> u64 {
    s.chars().fold(0u64, |m, c| m | 1u64 << (u32::from(c).wrapping_mul(0x9E37_79B1) >> 26))
}

/// Rows holding `token` (every term starting with it, summed, when `prefix`) in a
/// sorted vocabulary; what word dropping weighs words by.
pub fn docs_of(terms: &[Box<str>], docs: impl Fn(usize) -> usize, token: &str, prefix: bool) -> usize {
    term_range(terms, token, prefix).map(docs).fold(0usize, usize::saturating_add)
}

/// The index's terms and the number of rows holding each, without postings: what the
/// typo correction needs when no current [`super::index::Snapshot`] is at hand (read from FTS5's
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
    /// [`BuildError::TermsOutOfOrder`] when the terms are not strictly ascending.
    pub fn from_sorted(pairs: impl IntoIterator<Item = (String, u32)>) -> Result<Vocabulary, BuildError> {
        let mut v = Vocabulary::default();
        for (term, docs) in pairs {
            if v.terms.last().is_some_and(|last| **last >= *term) {
                return Err(BuildError::TermsOutOfOrder);
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

/// Words the typo correction replaced: (typed token, known word).
pub type Corrections = Vec<(String, String)>;

/// At most this many unknown words of one query are looked up for a correction
/// (each lookup scans the vocabulary once); later ones stay as typed. A fixed count,
/// not a time budget, so the answer never depends on how busy the machine is.
pub const MAX_CORRECTIONS: usize = 4;

/// At most this many candidates of one unknown word are tried against the rest of
/// the query (see `correct_phrases`).
pub const MAX_CANDIDATES: usize = 8;

/// Where the typo correction reads the vocabulary: the current snapshot, or FTS5's.
pub(super) enum Lexicon<'a> {
    Index(&'a View<'a>),
    Sql { tx: &'a Connection, index: &'a RankIndex, file: u64, generation: i64 },
}

impl Lexicon<'_> {
    /// Whether `token` is a term of some row (or the start of one, when `prefix`).
    pub(super) fn knows(&self, token: &str, prefix: bool) -> Result<bool, Error> {
        match self {
            Lexicon::Index(v) => Ok(v.knows(token, prefix)),
            Lexicon::Sql { tx, .. } => {
                let phrase = Phrase { tokens: vec![token.to_owned()], prefix };
                Ok(tx.prepare_cached(sql::KNOWN_SQL)?.exists([expression(std::slice::from_ref(&phrase))])?)
            }
        }
    }

    /// The first `n` corrections of `token`, best first ([`candidates`]).
    pub(super) fn candidates(&self, token: &str, prefix: bool, n: usize) -> Result<Vec<String>, Error> {
        match self {
            Lexicon::Index(v) => Ok(v.candidates(token, prefix, n)),
            Lexicon::Sql { tx, index, file, generation } => {
                Ok(index.vocabulary(tx, *file, *generation)?.candidates(token, prefix, n))
            }
        }
    }

    /// Rows holding `token` (summed over the terms it starts, when `prefix`).
    pub(super) fn docs(&self, token: &str, prefix: bool) -> Result<usize, Error> {
        match self {
            Lexicon::Index(v) => Ok(v.docs(token, prefix)),
            Lexicon::Sql { tx, index, file, generation } => {
                Ok(index.vocabulary(tx, *file, *generation)?.docs(token, prefix))
            }
        }
    }

    /// Rows a phrase can match at most: the fewest rows of any of its tokens.
    pub(super) fn phrase_docs(&self, phrase: &Phrase) -> Result<usize, Error> {
        let last = phrase.tokens.len().saturating_sub(1);
        let mut fewest = usize::MAX;
        for (i, token) in phrase.tokens.iter().enumerate() {
            fewest = fewest.min(self.docs(token, phrase.prefix && i == last)?);
        }
        Ok(if phrase.tokens.is_empty() { 0 } else { fewest })
    }
}

/// Replaces unknown one-token phrases by corrections (at most [`MAX_CORRECTIONS`]
/// looked up, in query order); returns (typed, known) pairs.
///
/// For each unknown word the vocabulary's best [`MAX_CANDIDATES`] ([`candidates`]:
/// most rows first) are tried in that order against the rest of the query: the first
/// one with which the query (its other words as they stand, corrected ones
/// corrected, words still unknown left out) matches a row of the answer's region
/// and filters (`matches`) wins; when none does, the first candidate. So the other
/// words decide between neighbours (`brxad bread` → `bread`, not the more frequent
/// `broad`), and a one-word query takes the most frequent neighbour.
pub(super) fn correct_phrases(
    lexicon: &Lexicon<'_>,
    phrases: &mut [Phrase],
    mut matches: impl FnMut(&[Phrase]) -> Result<bool, Error>,
) -> Result<Corrections, Error> {
    let mut unknown: Vec<usize> = Vec::new();
    for (i, phrase) in phrases.iter().enumerate() {
        if unknown.len() >= MAX_CORRECTIONS {
            break;
        }
        let [token] = phrase.tokens.as_slice() else { continue };
        let chars = token.chars().count();
        if (MIN_TYPO_CHARS..=MAX_TYPO_CHARS).contains(&chars) && !lexicon.knows(token, phrase.prefix)? {
            unknown.push(i);
        }
    }
    let mut corrected = Vec::new();
    // Phrases left out of the context: unknown ones not yet corrected, or without a correction.
    let mut left_out: Vec<usize> = unknown.clone();
    for &i in &unknown {
        let Some(phrase) = phrases.get(i) else { continue };
        let Some(token) = phrase.tokens.first().cloned() else { continue };
        let found = lexicon.candidates(&token, phrase.prefix, MAX_CANDIDATES)?;
        let mut chosen = None;
        if found.len() > 1 {
            for candidate in &found {
                let probe: Vec<Phrase> = phrases
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j == i || !left_out.contains(j))
                    .map(
                        |(j, p)| {
                            if j == i { Phrase { tokens: vec![candidate.clone()], prefix: false } } else { p.clone() }
                        },
                    )
                    .collect();
                if matches(&probe)? {
                    chosen = Some(candidate.clone());
                    break;
                }
            }
        }
        let Some(known) = chosen.or_else(|| found.into_iter().next()) else { continue };
        corrected.push((token, known.clone()));
        if let Some(p) = phrases.get_mut(i) {
            *p = Phrase { tokens: vec![known], prefix: false };
        }
        left_out.retain(|j| *j != i);
    }
    Ok(corrected)
}

/// Optimal-string-alignment distance between `a` and `b` if it is at most `max`.
fn bounded_distance(a: &[char], b: &str, max: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_one_typo_of_each_kind() {
        let d = |a: &str, b: &str| bounded_distance(&a.chars().collect::<Vec<_>>(), b, 2);
        assert_eq!(d("music", "music"), Some(0));
        assert_eq!(d("muisc", "music"), Some(1), "swapped neighbours");
        assert_eq!(d("musik", "music"), Some(1), "substitution");
        assert_eq!(d("musc", "music"), Some(1), "deletion");
        assert_eq!(d("musiic", "music"), Some(1), "insertion");
        assert_eq!(d("mxsxc", "music"), Some(2));
        assert_eq!(d("zzzzz", "music"), None);
    }

    proptest::proptest! {
        /// The mask filter never drops a term within reach: whenever the distance
        /// is at most 2, the masks differ in at most twice that many bits.
        #[test]
        fn the_character_mask_never_rejects_a_close_term(
            a in "[a-eé0-2\u{4e00}\u{ff41}]{0,10}",
            edits in proptest::collection::vec((0usize..4, 0usize..12, "[a-fé3\u{4e01}]"), 0..3),
        ) {
            let mut b: Vec<char> = a.chars().collect();
            for (kind, at, c) in edits {
                let c = c.chars().next().unwrap_or('a');
                let at = at % (b.len() + 1);
                match kind {
                    0 if at < b.len() => b[at] = c,
                    1 => b.insert(at, c),
                    2 if at < b.len() => { b.remove(at); }
                    3 if at + 1 < b.len() => b.swap(at, at + 1),
                    _ => {}
                }
            }
            let b: String = b.into_iter().collect();
            let chars: Vec<char> = a.chars().collect();
            if let Some(d) = bounded_distance(&chars, &b, 2) {
                proptest::prop_assert!((char_mask(&a) ^ char_mask(&b)).count_ones() as usize <= 2 * d, "{a} {b} {d}");
            }
        }
    }

    #[test]
    fn a_vocabulary_corrects_like_the_rule_says() -> Result<(), BuildError> {
        let v = Vocabulary::from_sorted([("movie".to_owned(), 1), ("music".to_owned(), 5), ("mystic".to_owned(), 9)])?;
        assert_eq!(v.correct("musci", false).as_deref(), Some("music"));
        assert_eq!(v.correct("music", false), None, "known");
        assert_eq!(v.correct("mus", true), None, "too short");
        assert!(Vocabulary::from_sorted([("b".to_owned(), 1), ("a".to_owned(), 1)]).is_err());
        Ok(())
    }
}
