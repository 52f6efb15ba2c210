//! The typo correction of a query: the rule (in `index::terms`, over any sorted
//! vocabulary: the rank index snapshot's own terms, or a [`Vocabulary`] read from
//! FTS5 when no current snapshot exists, so both paths make the same
//! corrections) applied to a query's phrases (`correct_phrases`), reading the
//! vocabulary through a `Lexicon`: the current index view, or SQL.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use rusqlite::Connection;

pub use super::index::terms::{
    MAX_TYPO_CHARS, MIN_TYPO_CHARS, TermsOutOfOrder, Vocabulary, candidates, candidates_among, docs_of,
};
#[cfg(test)]
use super::index::terms::{bounded_distance, char_mask};
use super::index::{RankIndex, View};
use super::tokenize::{Phrase, expression};
use super::{Error, sql};

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
    fn a_vocabulary_corrects_like_the_rule_says() -> Result<(), TermsOutOfOrder> {
        let v = Vocabulary::from_sorted([("movie".to_owned(), 1), ("music".to_owned(), 5), ("mystic".to_owned(), 9)])?;
        assert_eq!(v.correct("musci", false).as_deref(), Some("music"));
        assert_eq!(v.correct("music", false), None, "known");
        assert_eq!(v.correct("mus", true), None, "too short");
        assert!(Vocabulary::from_sorted([("b".to_owned(), 1), ("a".to_owned(), 1)]).is_err());
        Ok(())
    }
}
