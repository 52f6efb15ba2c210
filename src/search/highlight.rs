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

    /// `text` HTML-escaped with matched words in `<mark>`…`</mark>`.
    pub fn mark(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 16);
        let mut at = 0;
        for (range, token) in super::unicode61::spans(text) {
            if !self.marks(&token) {
                continue;
            }
            escape_into(&mut out, text.get(at..range.start).unwrap_or(""));
            out.push_str("<mark>");
            escape_into(&mut out, text.get(range.clone()).unwrap_or(""));
            out.push_str("</mark>");
            at = range.end;
        }
        escape_into(&mut out, text.get(at..).unwrap_or(""));
        out
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
}
