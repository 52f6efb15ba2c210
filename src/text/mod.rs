//! The search text: what a title, a channel or a query word becomes before FTS5's
//! `unicode61` tokenizer (and the rank index's copy of it, `search::unicode61`)
//! splits it into tokens. Both paths index and search this text, so they see the
//! same tokens and bm25 stays exact on both (issue 34, decision 0028).
//!
//! Per grapheme cluster (so nothing below ever splits one): NFKC (full-width and
//! compatibility forms, Arabic presentation forms); `ß`/`ẞ` → `ss`; Arabic
//! harakat, Quranic marks and tatweel dropped, alef forms → `ا`, `ى`/`ی` → `ي`,
//! `ک` → `ك`, `ة` → `ه` (Lucene's Arabic and Persian normalisers); Hebrew niqqud
//! and cantillation dropped; Greek accents and Cyrillic `ё` folded; stray
//! combining diacritics dropped. Latin accents and case are left to `unicode61
//! remove_diacritics 2`.
//!
//! Then words inside unspaced scripts become findable: runs of Han, kana and
//! Hangul, and of Thai, Lao, Khmer and Myanmar, are written as overlapping bigrams
//! of their grapheme clusters (ICU4X's `icu_segmenter` finds the clusters), as
//! Lucene's CJK analyzer does for CJK, plus, on the index side, the run's last
//! cluster alone, so every cluster of a run starts some token and a one-character
//! query (`猫`) is a prefix search. A query word is then the phrase of its
//! bigrams, found wherever it stands. (A dictionary segmenter, ICU4X's, was
//! measured first for Thai: words outside its dictionary are split differently
//! inside a title than alone, and 10-12% of such queries missed; decision 0028.)
//! Everything else passes through.
//!
//! ASCII passes through untouched and unallocated (the common case). Pure string
//! code: no SQLite here. [`VERSION`] changes when the output of any input does
//! (a migration then re-indexes).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::borrow::Cow;
use std::ops::Range;

/// The version of these rules: a database indexed with another one is re-indexed.
pub const VERSION: i64 = 1;

/// Which side the text is for: titles and channels are indexed with each CJK run's
/// last character as a token of its own; a query's CJK runs are searched as bigrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A title or a channel, as indexed.
    Index,
    /// A query chunk (one white-space-separated word of what a user typed).
    Query,
}

/// The search text of `text` and what came out of it.
#[derive(Debug, Clone, Default)]
pub struct Analyzed {
    /// The text the tokenizer splits.
    pub text: String,
    /// For each piece of `text` (ascending, non-overlapping): its byte range in
    /// `text` and the grapheme clusters of the source it came from.
    pub map: Vec<(Range<usize>, Range<usize>)>,
    /// The last token is one character (grapheme cluster) of an unspaced script alone
    /// (query side): it is searched as a prefix, since in titles it starts a bigram.
    pub ends_with_cjk_char: bool,
}

/// The search text of a title or channel (what the index holds).
pub fn index_text(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(analyze(text, Side::Index).text)
}

/// The key a channel is matched by (`channel=` in the feed): its search text
/// (NFKC and the folds above), decomposed with the combining marks dropped,
/// lower-cased, every run of characters that are not letters or digits made one
/// space, trimmed. `Lofi Girl`, `lofi girl`, `LOFI  GIRL` and `Lofi-Girl` have one
/// key; so do `Beyoncé` and `beyonce`.
pub fn channel_key(channel: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let text = index_text(channel);
    let mut key = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if gap && !key.is_empty() {
                key.push(' ');
            }
            gap = false;
            key.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    key
}

/// The search text of one query chunk, and whether it ends with a lone character of
/// an unspaced script (CJK, Thai, ...).
pub fn query_text(chunk: &str) -> (Cow<'_, str>, bool) {
    if chunk.is_ascii() {
        return (Cow::Borrowed(chunk), false);
    }
    let a = analyze(chunk, Side::Query);
    (Cow::Owned(a.text), a.ends_with_cjk_char)
}

/// The kind of a grapheme cluster, by its first character after folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Other,
    Cjk,
    /// A script written without spaces between words, segmented by a dictionary.
    Unspaced(Script),
}

/// The other scripts written without spaces between words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Thai,
    Lao,
    Khmer,
    Myanmar,
}

/// Whether `c` is of a script whose runs are indexed as bigrams: CJK (Han, kana,
/// Hangul, Bopomofo), Thai, Lao, Khmer, Myanmar.
pub fn is_unspaced(c: char) -> bool {
    kind(c) != Kind::Other
}

fn kind(c: char) -> Kind {
    match u32::from(c) {
        // Han (radicals, iteration and closing marks, ideographs, compatibility, planes 2-3).
        0x2E80..=0x2FDF
        | 0x3005..=0x3007
        | 0x3021..=0x3029
        | 0x3038..=0x303B
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x2_0000..=0x3_FFFF => Kind::Cjk,
        // Hiragana, Katakana (not the middle dot ・), phonetic extensions, Bopomofo.
        0x3040..=0x309F | 0x30A0..=0x30FA | 0x30FC..=0x30FF | 0x31F0..=0x31FF | 0x3100..=0x312F | 0x31A0..=0x31BF => {
            Kind::Cjk
        }
        // Hangul jamo, compatibility jamo, syllables.
        0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7AF | 0xD7B0..=0xD7FF => Kind::Cjk,
        0x0E01..=0x0E7F => Kind::Unspaced(Script::Thai),
        0x0E80..=0x0EFF => Kind::Unspaced(Script::Lao),
        0x1780..=0x17FF | 0x19E0..=0x19FF => Kind::Unspaced(Script::Khmer),
        0x1000..=0x109F | 0xA9E0..=0xA9FF | 0xAA60..=0xAA7F => Kind::Unspaced(Script::Myanmar),
        _ => Kind::Other,
    }
}

/// Appends the folded form of `c` (see the module docs) to `out`.
fn fold_into(c: char, out: &mut String) {
    match c {
        'ß' | 'ẞ' => out.push_str("ss"),
        // Arabic: tatweel, harakat (and the other marks above and below), Quranic marks.
        '\u{0640}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0670}'
        | '\u{06D6}'..='\u{06DC}'
        | '\u{06DF}'..='\u{06E8}'
        | '\u{06EA}'..='\u{06ED}' => {}
        // Hebrew points and cantillation (not the maqaf or the punctuation).
        '\u{0591}'..='\u{05BD}' | '\u{05BF}' | '\u{05C1}' | '\u{05C2}' | '\u{05C4}' | '\u{05C5}' | '\u{05C7}' => {}
        // Arabic letter variants.
        '\u{0622}' | '\u{0623}' | '\u{0625}' | '\u{0671}'..='\u{0673}' => out.push('\u{0627}'),
        '\u{0649}' | '\u{06CC}' => out.push('\u{064A}'),
        '\u{06A9}' => out.push('\u{0643}'),
        '\u{0629}' => out.push('\u{0647}'),
        // Cyrillic yo as ye (й, ї and ў are letters of their own and stay).
        'ё' => out.push('е'),
        'Ё' => out.push('Е'),
        // Combining diacritics that did not compose.
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}' => {}
        // Greek with accents or breathings: the base letter.
        '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => {
            unicode_normalization::char::decompose_canonical(c, |d| {
                if !('\u{0300}'..='\u{036F}').contains(&d) {
                    out.push(d);
                }
            });
        }
        _ => out.push(c),
    }
}

/// One folded grapheme cluster: its text and its byte range in the source.
struct Cluster {
    text: String,
    source: Range<usize>,
}

/// The search text of `text` for `side`, with its map back to the source.
pub fn analyze(text: &str, side: Side) -> Analyzed {
    use unicode_normalization::UnicodeNormalization;
    let mut out = Out { a: Analyzed { text: String::with_capacity(text.len() + 8), ..Analyzed::default() } };
    let mut run: Vec<Cluster> = Vec::new();
    let mut run_kind = Kind::Other;
    let breaks: Vec<usize> = icu_segmenter::GraphemeClusterSegmenter::new().segment_str(text).collect();
    for pair in breaks.windows(2) {
        let (Some(&start), Some(&end)) = (pair.first(), pair.get(1)) else { continue };
        let Some(cluster) = text.get(start..end) else { continue };
        let mut folded = String::with_capacity(cluster.len());
        if cluster.is_ascii() {
            folded.push_str(cluster);
        } else {
            for c in cluster.nfkc() {
                fold_into(c, &mut folded);
            }
        }
        let Some(first) = folded.chars().next() else { continue };
        let k = kind(first);
        if k != run_kind {
            out.flush(&mut run, run_kind, side);
            run_kind = k;
        }
        run.push(Cluster { text: folded, source: start..end });
    }
    out.flush(&mut run, run_kind, side);
    out.a
}

/// The search text being written.
struct Out {
    a: Analyzed,
}

impl Out {
    /// Appends `piece` (from `source`) as it is.
    fn push(&mut self, piece: &str, source: Range<usize>) {
        let start = self.a.text.len();
        self.a.text.push_str(piece);
        self.a.map.push((start..self.a.text.len(), source));
    }

    /// A token boundary (a space unless there is one already).
    fn space(&mut self) {
        if !self.a.text.is_empty() && !self.a.text.ends_with(' ') {
            self.a.text.push(' ');
        }
    }

    /// Writes the clusters of `run` (all of `kind`) and empties it.
    fn flush(&mut self, run: &mut Vec<Cluster>, kind: Kind, side: Side) {
        match kind {
            Kind::Other => {
                for c in run.iter() {
                    self.push(&c.text, c.source.clone());
                }
                if !run.is_empty() {
                    self.a.ends_with_cjk_char = false;
                }
            }
            Kind::Cjk | Kind::Unspaced(_) => self.bigrams(run, side),
        }
        run.clear();
    }

    /// A run of an unspaced script: overlapping bigrams of its grapheme clusters (one
    /// cluster alone when the run is one), and on the index side the last cluster
    /// alone after them.
    fn bigrams(&mut self, run: &[Cluster], side: Side) {
        match run {
            [] => {}
            [one] => {
                self.space();
                self.push(&one.text, one.source.clone());
                self.a.ends_with_cjk_char = side == Side::Query;
            }
            _ => {
                for pair in run.windows(2) {
                    if let [a, b] = pair {
                        self.space();
                        self.push(&a.text, a.source.clone());
                        self.push(&b.text, b.source.clone());
                    }
                }
                if let (Side::Index, Some(last)) = (side, run.last()) {
                    self.space();
                    self.push(&last.text, last.source.clone());
                }
                self.a.ends_with_cjk_char = false;
            }
        }
        self.space();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
mod tests {
    use super::*;

    fn index(s: &str) -> String {
        index_text(s).split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn ascii_is_untouched() {
        assert!(matches!(index_text("Lofi hip hop, 2 hours!"), Cow::Borrowed(_)));
    }

    #[test]
    fn cjk_runs_become_bigrams_and_their_last_character() {
        assert_eq!(index("猫の動画 かわいい"), "猫の の動 動画 画 かわ わい いい い");
        assert_eq!(index("【作業用BGM】ローファイ"), "【 作業 業用 用 BGM】 ロー ーフ ファ ァイ イ");
        assert_eq!(
            query_text("ヒップホップ").0.split_whitespace().collect::<Vec<_>>(),
            ["ヒッ", "ップ", "プホ", "ホッ", "ップ"]
        );
        assert_eq!(query_text("猫"), (Cow::Owned::<str>("猫 ".to_owned()), true));
        assert_eq!(index("2時間"), "2 時間 間");
    }

    #[test]
    fn thai_words_are_found_inside_a_title() {
        let title = index("เพลงฟังสบายๆ ก่อนนอน");
        for word in ["ฟัง", "สบาย", "ก่อน", "นอน"] {
            let (q, _) = query_text(word);
            assert!(title.contains(q.trim()), "{word}: {q:?} in {title:?}");
        }
        // Clusters stay whole: a vowel sign is never a bigram of its own.
        assert!(!title.split(' ').any(|t| t.starts_with('\u{e31}')), "{title}");
    }

    #[test]
    fn arabic_hebrew_german_and_greek_fold() {
        assert_eq!(index("مُوسِيقَى"), index("موسيقى"));
        assert_eq!(index("أحمد"), "احمد");
        assert_eq!(index("مدرسة"), "مدرسه");
        assert_eq!(index("ـعـربـي"), "عربي");
        assert_eq!(index("שָׁלוֹם"), "שלום");
        assert_eq!(index("Straße"), "Strasse");
        assert_eq!(index("Ελληνικά"), "Ελληνικα");
        assert_eq!(index("ёлка"), "елка");
        assert_eq!(index("ｍｕｓｉｃ"), "music");
    }

    #[test]
    fn the_map_covers_whole_clusters() {
        let a = analyze("مُوسِيقَى", Side::Index);
        let covered: Vec<_> = a.map.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(covered.first().unwrap().start, 0);
        assert_eq!(covered.last().unwrap().end, "مُوسِيقَى".len());
    }
}
