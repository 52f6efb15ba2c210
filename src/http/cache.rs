//! The in-process response cache: finished `/feed` JSON bodies, shared by all
//! workers, bounded in bytes, and valid for exactly one database generation.
//!
//! Key: the validated [`FeedQuery`] itself (trimmed `q`, upper-case region,
//! limit, offset, filters, sort), i.e. everything a body depends on besides
//! the data. Every entry records the data version it was computed at (the
//! file's identity and the `changes` counter); a lookup at any other version
//! misses, and the first lookup that sees a newer version empties the cache,
//! so a write is visible on the very next request. Eviction is CLOCK (second chance) over
//! insertion order until the stored bytes fit the budget. The lock is held
//! only to look up or insert, never while a request is searched. No I/O here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::http::request::FeedQuery;

/// What a cached body depends on, besides the data: the validated query itself,
/// every parameter of it, so a new parameter can never be left out of the key.
pub type Key = FeedQuery;

/// Bytes a key holds, counted against the budget.
fn key_bytes(key: &Key) -> usize {
    key.q.len()
        + key.match_expr.len()
        + key.region.len()
        + key.channel.as_ref().map_or(0, String::len)
        + std::mem::size_of::<Key>()
}

struct Entry {
    body: Arc<[u8]>,
    referenced: bool,
}

/// Which data a body was computed from: the database file (its inode, so a file
/// replaced on disk is a different one) and its generation.
pub type Version = (u64, i64);

struct Inner {
    generation: Version,
    map: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

/// A byte-bounded cache of response bodies for one database generation at a time.
pub struct Cache {
    budget: usize,
    inner: Mutex<Inner>,
}

/// Counters for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that were not.
    pub misses: u64,
    /// Bodies held.
    pub entries: usize,
    /// Bytes held (bodies plus keys).
    pub bytes: usize,
}

/// Per-entry bookkeeping counted against the budget.
const OVERHEAD: usize = 64;

impl Cache {
    /// A cache holding at most `budget` bytes; 0 disables it.
    pub fn new(budget: usize) -> Cache {
        Cache {
            budget,
            inner: Mutex::new(Inner {
                generation: (0, i64::MIN),
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
                hits: 0,
                misses: 0,
            }),
        }
    }

    /// Whether the cache stores anything at all.
    pub fn is_enabled(&self) -> bool {
        self.budget > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The body for `key` computed at `generation`, if held.
    pub fn get(&self, key: &Key, generation: Version) -> Option<Arc<[u8]>> {
        if !self.is_enabled() {
            return None;
        }
        let mut inner = self.lock();
        if generation != inner.generation {
            if is_newer(generation, inner.generation) {
                inner.reset(generation);
            }
            inner.misses += 1;
            return None;
        }
        let found = inner.map.get_mut(key).map(|e| {
            e.referenced = true;
            Arc::clone(&e.body)
        });
        if found.is_some() {
            inner.hits += 1;
        } else {
            inner.misses += 1;
        }
        found
    }

    /// Stores `body` for `key` as computed at `generation` (ignored for an older generation).
    pub fn put(&self, key: Key, generation: Version, body: Arc<[u8]>) {
        let cost = body.len() + key_bytes(&key) + OVERHEAD;
        if !self.is_enabled() || cost > self.budget {
            return;
        }
        let mut inner = self.lock();
        if is_newer(generation, inner.generation) {
            inner.reset(generation);
        }
        if generation != inner.generation || inner.map.contains_key(&key) {
            return;
        }
        while inner.bytes + cost > self.budget {
            let Some(victim) = inner.order.pop_front() else { break };
            let second_chance = inner.map.get_mut(&victim).is_some_and(|e| std::mem::take(&mut e.referenced));
            if second_chance {
                inner.order.push_back(victim);
            } else if let Some(e) = inner.map.remove(&victim) {
                inner.bytes = inner.bytes.saturating_sub(e.body.len() + key_bytes(&victim) + OVERHEAD);
            }
        }
        inner.bytes += cost;
        inner.order.push_back(key.clone());
        inner.map.insert(key, Entry { body, referenced: false });
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let inner = self.lock();
        Stats { hits: inner.hits, misses: inner.misses, entries: inner.map.len(), bytes: inner.bytes }
    }
}

/// A version replaces the current one when it is another file or a later generation.
fn is_newer(candidate: Version, current: Version) -> bool {
    candidate.0 != current.0 || candidate.1 > current.1
}

impl Inner {
    fn reset(&mut self, generation: Version) {
        self.generation = generation;
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: &str) -> Key {
        crate::http::request::parse(&format!("q={q}")).unwrap()
    }

    fn body(n: usize) -> Arc<[u8]> {
        vec![b'x'; n].into()
    }

    #[test]
    fn hit_miss_and_generation_change() {
        let c = Cache::new(10_000);
        assert!(c.get(&key("a"), (1, 1)).is_none());
        c.put(key("a"), (1, 1), body(10));
        assert_eq!(c.get(&key("a"), (1, 1)).map(|b| b.len()), Some(10));
        assert!(c.get(&key("b"), (1, 1)).is_none());
        // A write happened: the old body must not be served.
        assert!(c.get(&key("a"), (1, 2)).is_none());
        assert_eq!(c.stats().entries, 0);
        // A late put from a request that read the old generation is dropped.
        c.put(key("a"), (1, 1), body(10));
        assert!(c.get(&key("a"), (1, 2)).is_none());
        // Another file (replaced on disk), even at a lower generation, is new data.
        c.put(key("a"), (1, 2), body(10));
        assert!(c.get(&key("a"), (2, 1)).is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (1, 5));
    }

    #[test]
    fn stays_within_its_byte_budget_and_keeps_hot_entries() {
        let budget = 10 * (100 + key_bytes(&key("k00")) + OVERHEAD);
        let c = Cache::new(budget);
        c.put(key("hot"), (1, 5), body(100));
        for i in 0..50 {
            assert!(c.get(&key("hot"), (1, 5)).is_some(), "round {i}: the hot entry survives");
            c.put(key(&format!("k{i:02}")), (1, 5), body(100));
            assert!(c.stats().bytes <= budget);
        }
        assert!(c.get(&key("k00"), (1, 5)).is_none(), "a cold old entry was evicted");
        assert!(c.get(&key("k49"), (1, 5)).is_some());
    }

    #[test]
    fn disabled_and_oversize() {
        let off = Cache::new(0);
        off.put(key("a"), (1, 1), body(1));
        assert!(off.get(&key("a"), (1, 1)).is_none());
        let small = Cache::new(100);
        small.put(key("a"), (1, 1), body(1000));
        assert_eq!(small.stats().entries, 0);
    }
}
