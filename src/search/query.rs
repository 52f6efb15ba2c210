//! What a search is asked: the validated [`FeedQuery`] (built from a query
//! string by `http::request::parse`, or by the `query` command), and its
//! [`Sort`]. Plain data, so `search` needs nothing of `http`. Equal queries get
//! equal answers from equal data: the response cache keys on it.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sort {
    /// bm25 (the default).
    #[default]
    Relevance,
    /// Newest `published_at` first (videos without a date last).
    Recent,
    /// Most viewed first.
    Popular,
}

impl Sort {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Recent => "recent",
            Sort::Popular => "popular",
        }
    }
}

/// A validated feed query. Equal queries get equal answers from equal data: it
/// is the response cache's key (`http::cache`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedQuery {
    /// The trimmed search text, as answered in `"query"`.
    pub q: String,
    /// The FTS5 MATCH expression built from `q` (see [`crate::search::tokenize`]).
    pub match_expr: String,
    /// Two upper-case ASCII letters.
    pub region: String,
    /// 1..=100.
    pub limit: u32,
    /// 0..=1000: results to skip (pagination).
    pub offset: u32,
    /// Only this channel, as asked: matched by its key (`text::channel_key`: case,
    /// accents, spacing and punctuation folded).
    pub channel: Option<String>,
    /// The stored channel names whose key is `channel`'s: filled by the reader inside
    /// its read transaction (None from the parser); what the filters compare.
    pub channel_names: Option<Vec<String>>,
    /// Only videos at least this long, in seconds.
    pub min_duration: Option<i64>,
    /// Only videos at most this long, in seconds.
    pub max_duration: Option<i64>,
    /// Result order.
    pub sort: Sort,
    /// Add `title_highlighted`/`channel_highlighted` (matched words in `<mark>`).
    pub highlight: bool,
}

impl FeedQuery {
    /// Whether this is browsing (no `q`: `sort=recent|popular` or `channel` alone).
    pub fn is_browse(&self) -> bool {
        self.match_expr.is_empty()
    }

    /// Whether any filter or a non-default order applies.
    pub fn is_filtered(&self) -> bool {
        self.channel.is_some()
            || self.min_duration.is_some()
            || self.max_duration.is_some()
            || self.sort != Sort::Relevance
    }

    /// A canonical string of the filters, for cache keys ("" when unfiltered).
    pub fn filter_key(&self) -> String {
        if !self.is_filtered() {
            return String::new();
        }
        format!(
            "c={}|min={:?}|max={:?}|s={}",
            self.channel.as_deref().unwrap_or(""),
            self.min_duration,
            self.max_duration,
            self.sort.as_str()
        )
    }
}
