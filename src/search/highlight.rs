//! Highlights (`highlight=1`): a title or channel with the words the query matched
//! wrapped in `<mark>`…`</mark>` and every other character HTML-escaped, so a
//! template can print it as is. A word is marked when its folded form (the
//! tokenizer's: case and accents folded, see [`super::unicode61`]) is one of the
//! searched tokens, typo corrections included, or starts with the word being
//! typed (the prefix token). Pure string code.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use super::tokenize::Phrase;

/// The tokens a highlight marks: whole ones and prefixes.
#[derive(Debug, Default, Clone)]
pub struct Marker {
    whole: Vec<String>,
    prefixes: Vec<String>,
}

impl Marker {
    /// What `phrases` (as searched) mark.
    pub fn new(phrases: &[Phrase]) -> Marker {
        let mut m = Marker::default();
        for phrase in phrases {
            let last = phrase.tokens.len().saturating_sub(1);
            for (i, token) in phrase.tokens.iter().enumerate() {
                if phrase.prefix && i == last { &mut m.prefixes } else { &mut m.whole }.push(token.clone());
            }
        }
        m
    }

    fn marks(&self, token: &str) -> bool {
        self.whole.iter().any(|w| w == token) || self.prefixes.iter().any(|p| token.starts_with(p.as_str()))
    }

    /// `text` HTML-escaped with matched words in `<mark>`…`</mark>`. The words are
    /// the tokens of the text's search text ([`crate::text`]) mapped back to the
    /// grapheme clusters they came from, so a mark never splits a cluster (an
    /// Arabic letter and its harakat, an emoji and its modifiers) or a word;
    /// adjacent marked pieces (the bigrams of a CJK word) are one mark.
    pub fn mark(&self, text: &str) -> String {
        let ranges = self.marked(text);
        let mut out = String::with_capacity(text.len() + 16);
        let mut at = 0;
        for range in ranges {
            escape_into(&mut out, text.get(at..range.start).unwrap_or(""));
            out.push_str("<mark>");
            escape_into(&mut out, text.get(range.clone()).unwrap_or(""));
            out.push_str("</mark>");
            at = range.end;
        }
        escape_into(&mut out, text.get(at..).unwrap_or(""));
        out
    }

    /// The byte ranges of `text` to mark: ascending, disjoint, not touching.
    fn marked(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
        let mut add = |r: std::ops::Range<usize>| match ranges.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => ranges.push(r),
        };
        if text.is_ascii() {
            for (range, token) in super::unicode61::spans(text) {
                if self.marks(&token) {
                    add(range);
                }
            }
            return ranges;
        }
        let analyzed = crate::text::analyze(text, crate::text::Side::Index);
        for (range, token) in super::unicode61::spans(&analyzed.text) {
            if !self.marks(&token) {
                continue;
            }
            // A lone CJK (or Thai, ...) character typed matches the bigrams it starts: mark it alone.
            let range = match self.lone_cjk_prefix(&token) {
                Some(len) => range.start..(range.start + len).min(range.end),
                None => range,
            };
            let pieces = analyzed.map.iter().filter(|(out, _)| out.start < range.end && range.start < out.end);
            let (mut start, mut end) = (usize::MAX, 0);
            for (_, source) in pieces {
                start = start.min(source.start);
                end = end.max(source.end);
            }
            if start < end {
                add(start..end);
            }
        }
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<std::ops::Range<usize>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// When `token` is matched only as the prefix of a lone CJK character (a
    /// bigram starting with it), that character's length in bytes.
    fn lone_cjk_prefix(&self, token: &str) -> Option<usize> {
        if self.whole.iter().any(|w| w == token) {
            return None;
        }
        let p = self.prefixes.iter().find(|p| token.starts_with(p.as_str()) && p.chars().count() == 1)?;
        (token.chars().count() == 2 && crate::text::is_unspaced(token.chars().next()?)).then_some(p.len())
    }
}

/// Appends `text` with `&`, `<`, `>`, `"` and `'` escaped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(tokens: &[&str], prefix: bool) -> Phrase {
        Phrase { tokens: tokens.iter().map(|t| (*t).to_owned()).collect(), prefix }
    }

    #[test]
    fn matched_words_are_marked_and_the_rest_escaped() {
        let m = Marker::new(&[phrase(&["cafe"], false), phrase(&["jaz"], true)]);
        assert_eq!(
            m.mark("Café <Jazz> & \"Rain\""),
            "<mark>Café</mark> &lt;<mark>Jazz</mark>&gt; &amp; &quot;Rain&quot;"
        );
        assert_eq!(m.mark("no match's here"), "no match&#39;s here");
        assert_eq!(m.mark(""), "");
    }

    #[test]
    fn whole_words_only_unless_a_prefix() {
        let m = Marker::new(&[phrase(&["rain"], false)]);
        assert_eq!(m.mark("Rain rainy RAIN"), "<mark>Rain</mark> rainy <mark>RAIN</mark>");
    }

    /// `text` marked for the query `q`, its phrases made as the reader makes them.
    fn marked(q: &str, text: &str) -> String {
        let phrases: Vec<Phrase> = crate::search::tokenize::search_chunks(q)
            .into_iter()
            .map(|(chunk, prefix)| Phrase { tokens: crate::search::unicode61::tokens(&chunk).unwrap(), prefix })
            .collect();
        Marker::new(&phrases).mark(text)
    }

    #[test]
    fn arabic_words_are_marked_whole_with_their_harakat() {
        assert_eq!(marked("موسيقى", "مُوسِيقَى هادئة"), "<mark>مُوسِيقَى</mark> هادئة");
        assert_eq!(marked("مُوسِيقَى x", "موسيقى عربية"), "<mark>موسيقى</mark> عربية");
        // A leading tatweel is a cluster of its own that folds to nothing: left outside.
        assert_eq!(marked("عربي", "ـعـربـي"), "ـ<mark>عـربـي</mark>");
    }

    #[test]
    fn combining_marks_and_emoji_stay_whole() {
        // e + U+0301: the mark belongs to the word's last cluster.
        assert_eq!(marked("cafe x", "Cafe\u{301} noir"), "<mark>Cafe\u{301}</mark> noir");
        assert_eq!(marked("lofi x", "lofi👍🏽 beats"), "<mark>lofi</mark>👍🏽 beats");
        assert_eq!(marked("lofi x", "👨‍👩‍👧 lofi"), "👨‍👩‍👧 <mark>lofi</mark>");
        assert_eq!(marked("हिन्दी", "हिन्दी गाने"), "<mark>हिन्दी</mark> गाने");
    }

    #[test]
    fn cjk_and_thai_words_are_marked_where_they_stand() {
        assert_eq!(marked("ヒップホップ", "ローファイヒップホップ"), "ローファイ<mark>ヒップホップ</mark>");
        assert_eq!(marked("猫", "猫の動画"), "<mark>猫</mark>の動画");
        assert_eq!(marked("動画", "猫の動画 かわいい"), "猫の<mark>動画</mark> かわいい");
        assert_eq!(marked("BGM", "【作業用BGM】"), "【作業用<mark>BGM</mark>】");
        assert_eq!(marked("ฟัง", "เพลงฟังสบายๆ"), "เพลง<mark>ฟัง</mark>สบายๆ");
        assert_eq!(marked("strasse", "Die Straße"), "Die <mark>Straße</mark>");
    }
}
