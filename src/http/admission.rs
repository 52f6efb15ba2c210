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
//! (512 KiB): a query's 64-bit hash picks a slot, which keeps the hash's top 48
//! bits and the window (of wall-clock time) it was last seen in. No lock, no
//! growth: a flood of distinct queries overwrites slots (a popular query may then
//! need a third request), and a false "seen" needs a 48-bit collision in the same
//! slot (about one in 2^48 per query).
//!
//! Issue 32: LiteSpeed starts one videofeed per httpd worker, and a query's second
//! request often reaches another process, so a per-process memory stored under
//! half of the queries asked twice. The table is therefore shared by the
//! processes serving one database on the box: `<db>.lscache` beside the database
//! (`sys::SharedWords`, mapped read-write; a private table when it cannot be had). And since "asked twice" is trivially met by a
//! client that sends every query twice, at most `VIDEOFEED_LSCACHE_RATE` answers a
//! second become cacheable on the box (a counter in the same table), so no traffic
//! pattern can make LSCache hold more than about that rate times its ~10-12 s fd
//! release of open files through us.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::search::FeedQuery;

/// Slots in the table of recently asked queries (8 bytes each).
pub const SLOTS: usize = 1 << 16;

/// How long a first request makes the query "recent".
pub const WINDOW: Duration = Duration::from_secs(300);

/// New cacheable answers a second on a box by default (`VIDEOFEED_LSCACHE_RATE`).
pub const DEFAULT_RATE: u32 = crate::config::DEFAULT_LSCACHE_RATE;

/// Words before the slots in the table: a format mark, and the rate counter
/// (second << 32 | answers admitted in that second).
const HEADER: usize = 2;

/// The first word of a shared table of this format.
const MARK: u64 = 0x5646_4C53_4341_0001;

pub use crate::config::LsCache as Mode;

/// Where the table lives.
enum Table {
    /// Not needed (`always`, `off`): only the rate counter.
    Counter(AtomicU64),
    /// This process's own (no shared table could be had, or tests).
    Private(Box<[AtomicU64]>),
    /// Shared by the processes serving the database on this box.
    Shared(crate::sys::SharedWords, PathBuf),
}

/// The admission rule, its table of recent queries and the rate cap.
pub struct Admission {
    mode: Mode,
    table: Table,
    /// Answers a second that may become cacheable (0: no cap).
    rate: u32,
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The shared table's file for the database at `db`: `<db>.lscache` beside it (like
/// the rank index file; its contents are hints, so a copy of it, or none, is harmless).
pub fn shared_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lscache");
    PathBuf::from(name)
}

impl Admission {
    /// An admission rule with a table of its own (one process), without a rate cap.
    pub fn new(mode: Mode) -> Admission {
        let table = if mode == Mode::Repeat {
            Table::Private((0..SLOTS + HEADER).map(|_| AtomicU64::new(0)).collect())
        } else {
            Table::Counter(AtomicU64::new(0))
        };
        Admission { mode, table, rate: 0 }
    }

    /// The rule the responder of `db` uses: `repeat` with the table shared by every
    /// process serving `db` on this box (a private one, logged, when it cannot be
    /// had), and at most `rate` new cacheable answers a second (0: no cap; the
    /// counter is shared too).
    pub fn for_database(mode: Mode, db: &Path, rate: u32) -> Admission {
        let mut admission = Admission::new(mode);
        admission.rate = rate;
        if mode == Mode::Off {
            return admission;
        }
        let path = shared_path(db);
        match crate::sys::SharedWords::open(&path, SLOTS + HEADER) {
            Ok(words) => {
                if let Some(mark) = words.words().first() {
                    if mark.load(Ordering::Relaxed) != MARK {
                        // A new table (zeros), or another format: its contents are hints only.
                        mark.store(MARK, Ordering::Relaxed);
                    }
                }
                log::info!("LSCache admission: table shared by this box's processes at {}", path.display());
                admission.table = Table::Shared(words, path);
            }
            Err(e) => log::warn!(
                "LSCache admission: cannot share the table at {} ({e}); this process keeps its own \
                 (a query's second request reaching another process is not counted)",
                path.display()
            ),
        }
        admission
    }

    /// Bytes the table holds.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.words())
    }

    /// Where the shared table is, when it is shared.
    pub fn shared_at(&self) -> Option<&Path> {
        match &self.table {
            Table::Shared(_, path) => Some(path),
            _ => None,
        }
    }

    fn words(&self) -> &[AtomicU64] {
        match &self.table {
            Table::Counter(c) => std::slice::from_ref(c),
            Table::Private(w) => w,
            Table::Shared(w, _) => w.words(),
        }
    }

    /// Records that `query` was asked now; whether LSCache may store this answer.
    pub fn admit(&self, query: &FeedQuery) -> bool {
        let wanted = match self.mode {
            Mode::Always => true,
            Mode::Off => return false,
            Mode::Repeat => self.seen_recently(query),
        };
        if !wanted {
            return false;
        }
        if self.take_token(unix_now()) {
            crate::obs::metrics::global().lscache(true);
            true
        } else {
            crate::obs::metrics::global().lscache(false);
            false
        }
    }

    /// One of this second's `rate` cacheable answers, if one is left.
    fn take_token(&self, now: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let words = self.words();
        let Some(counter) = words.get(if words.len() > 1 { 1 } else { 0 }) else { return true };
        let second = now & 0xFFFF_FFFF;
        let mut current = counter.load(Ordering::Relaxed);
        loop {
            let next = if current >> 32 != second {
                (second << 32) | 1
            } else if current & 0xFFFF_FFFF < u64::from(self.rate) {
                current + 1
            } else {
                return false;
            };
            match counter.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    fn seen_recently(&self, query: &FeedQuery) -> bool {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        query.hash(&mut hasher);
        let hash = hasher.finish();
        let window = unix_now() / WINDOW.as_secs().max(1);
        let stamp = window & 0xFFFF;
        let tag = (hash & !0xFFFF) | stamp;
        let slots = self.words().get(HEADER..).unwrap_or_default();
        let Some(slot) = usize::try_from(hash % SLOTS as u64).ok().and_then(|i| slots.get(i)) else {
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
            channel_names: None,
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
        assert_eq!(a.bytes(), 512 * 1024 + 16);
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
        assert_eq!(Admission::new(Mode::Off).bytes(), 8);
        assert_eq!(Mode::parse(" Repeat "), Some(Mode::Repeat));
        assert_eq!(Mode::parse("sometimes"), None);
    }

    #[test]
    fn at_most_rate_answers_a_second_become_cacheable() {
        let mut a = Admission::new(Mode::Always);
        a.rate = 5;
        let second = (0..20).filter(|_| a.take_token(1_000)).count();
        assert_eq!(second, 5);
        assert!(a.take_token(1_001), "a new second, new tokens");
    }

    #[test]
    fn processes_share_the_table_through_the_file() {
        let db = std::env::temp_dir().join(format!("vf-admission-{}.db", crate::sys::random_u64()));
        let (one, two) = (Admission::for_database(Mode::Repeat, &db, 0), Admission::for_database(Mode::Repeat, &db, 0));
        assert!(one.shared_at().is_some() && one.shared_at() == two.shared_at());
        assert!(!one.admit(&query("shared-lofi")));
        assert!(two.admit(&query("shared-lofi")), "asked once in each: the second is a repeat");
        if let Some(path) = one.shared_at() {
            let _ = std::fs::remove_file(path);
        }
    }
}
