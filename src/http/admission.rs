//! Which feed answers LiteSpeed's cache (LSCache) may store: by default only a
//! query asked a second time within a window (`VIDEOFEED_LSCACHE=repeat`).
//!
//! Measured against OpenLiteSpeed 1.9.1: every stored answer keeps a file
//! descriptor open, and a stream of distinct `q` values took each httpd worker
//! to its 20,000-fd limit in ~3 s, after which `accept()` failed. Marking only
//! repeated queries cacheable keeps one-off queries (typos, cache-busters,
//! crawlers) out of LSCache while every popular query still gets stored on its
//! second request. `Cache-Control` for browsers and CDNs is unchanged.
//!
//! The memory of recent queries is a fixed table of [`SLOTS`] atomic words
//! (512 KiB, allocated once): a query's 64-bit hash picks a slot, which keeps
//! the hash's top 48 bits and the window it was last seen in. No lock, no
//! growth: a flood of distinct queries overwrites slots (a popular query may
//! then need a third request), and a false "seen" needs a 48-bit collision in
//! the same slot (about one in 2^48 per query).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::search::FeedQuery;

/// Slots in the table of recently asked queries (8 bytes each).
pub const SLOTS: usize = 1 << 16;

/// How long a first request makes the query "recent".
pub const WINDOW: Duration = Duration::from_secs(300);

pub use crate::config::LsCache as Mode;

/// The admission rule and its table of recent queries.
pub struct Admission {
    mode: Mode,
    slots: Box<[AtomicU64]>,
    started: Instant,
}

impl Admission {
    /// An admission rule; the table is allocated only for [`Mode::Repeat`].
    pub fn new(mode: Mode) -> Admission {
        let n = if mode == Mode::Repeat { SLOTS } else { 0 };
        Admission { mode, slots: (0..n).map(|_| AtomicU64::new(0)).collect(), started: Instant::now() }
    }

    /// Bytes the table holds.
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<AtomicU64>()
    }

    /// Records that `query` was asked now; whether LSCache may store this answer.
    pub fn admit(&self, query: &FeedQuery) -> bool {
        match self.mode {
            Mode::Always => true,
            Mode::Off => false,
            Mode::Repeat => self.seen_recently(query),
        }
    }

    fn seen_recently(&self, query: &FeedQuery) -> bool {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        query.hash(&mut hasher);
        let hash = hasher.finish();
        let window = self.started.elapsed().as_secs() / WINDOW.as_secs().max(1);
        let stamp = window & 0xFFFF;
        let tag = (hash & !0xFFFF) | stamp;
        let Some(slot) = usize::try_from(hash % SLOTS as u64).ok().and_then(|i| self.slots.get(i)) else {
            return false;
        };
        let before = slot.swap(tag, Ordering::Relaxed);
        // The same query, seen in this window or the one before (so the window slides).
        before & !0xFFFF == hash & !0xFFFF && before != 0 && (stamp.wrapping_sub(before & 0xFFFF) & 0xFFFF) <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Sort;

    fn query(q: &str) -> FeedQuery {
        FeedQuery {
            q: q.into(),
            match_expr: String::new(),
            region: "US".into(),
            limit: 24,
            offset: 0,
            channel: None,
            min_duration: None,
            max_duration: None,
            sort: Sort::Relevance,
            highlight: false,
        }
    }

    #[test]
    fn a_repeated_query_is_admitted_on_its_second_answer() {
        let a = Admission::new(Mode::Repeat);
        assert!(!a.admit(&query("lofi")));
        assert!(a.admit(&query("lofi")));
        assert!(a.admit(&query("lofi")));
        assert!(!a.admit(&FeedQuery { region: "DE".into(), ..query("lofi") }), "another key");
        assert_eq!(a.bytes(), 512 * 1024);
    }

    #[test]
    fn a_flood_of_distinct_queries_is_not_admitted() {
        let a = Admission::new(Mode::Repeat);
        let admitted = (0..10_000).filter(|i| a.admit(&query(&format!("buster{i}")))).count();
        assert!(admitted <= 100, "{admitted} of 10,000 distinct queries admitted");
    }

    #[test]
    fn modes() {
        assert!(Admission::new(Mode::Always).admit(&query("x")));
        assert!(!Admission::new(Mode::Off).admit(&query("x")));
        assert_eq!(Admission::new(Mode::Off).bytes(), 0);
        assert_eq!(Mode::parse(" Repeat "), Some(Mode::Repeat));
        assert_eq!(Mode::parse("sometimes"), None);
    }
}
