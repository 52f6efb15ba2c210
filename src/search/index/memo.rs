//! The memo of a snapshot: what queries worked out and the next ones reuse.
//! Merged postings of prefixes and phrases the index file does not hold, and
//! one-phrase queries' rows by score class, kept per snapshot within a byte
//! budget, least recently used evicted first; and the per-answer scratch of
//! small merges. Pure data; the walks (`walk`) fill and read it.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use super::thresholds;
use crate::search::tokenize::Phrase;

/// The merged postings of a prefix (several terms): rows ascending with FTS5's
/// weighted frequency in each, exactly as a query computes them.
#[derive(Debug)]
pub(super) struct Merged {
    pub(super) rowids: Vec<u32>,
    /// Weighted frequencies as integers (the weights are 8 and 2): 4 bytes a row
    /// instead of a double's 8, and the same value once converted (every sum of
    /// integers below 2^53 is exact in a double, whatever its order).
    pub(super) freq: Vec<u32>,
}

/// Prefixes whose merge is expensive (many rows: `mo`, `be`, `th` merge up to
/// hundreds of thousands), merged once per snapshot and kept, up to
/// the memo's budget (8 bytes a row). A pure function of the snapshot and the
/// prefix, so answers are the same bits; a later query pays the intersection
/// and the scoring only. Filled on demand: what the traffic asks is what is kept,
/// the least recently used giving way when the budget is full (see `Lru`).
#[derive(Debug, Default)]
pub struct Memo {
    /// Bytes this memo may keep (merges two thirds, classes a third).
    pub(super) budget: usize,
    pub(super) lists: std::sync::Mutex<Lru<std::sync::Arc<Merged>>>,
    /// One-phrase queries' rows by score class (see [`Classed`]); None for a phrase
    /// whose rows cannot be classed (too many distinct frequencies or lengths), so
    /// it is not scanned again per query.
    pub(super) classed: std::sync::Mutex<Lru<Option<std::sync::Arc<Classed>>>>,
    /// Rankings the classed path answered (a test and benchmark hook).
    pub(super) classed_answers: std::sync::atomic::AtomicU64,
    /// Rankings of several phrases answered by walking the rarest one's classes, and
    /// those given up for the row-by-row loop.
    pub(super) bounded_answers: std::sync::atomic::AtomicU64,
    pub(super) bounded_given_up: std::sync::atomic::AtomicU64,
    /// Row counts of phrases of several tokens found by checking many rows (see
    /// `PhraseMatches::Checked`): a few bytes each, up to [`PHRASE_ROWS_KEPT`].
    pub(super) phrase_rows: std::sync::Mutex<std::collections::HashMap<Box<str>, usize>>,
    /// Rankings and counts that read a prefix unmerged (`Snapshot::matches_for`).
    pub(super) prefix_reads: std::sync::atomic::AtomicU64,
    /// Tests: rank every query by the plain loop.
    pub(super) classed_off: std::sync::atomic::AtomicBool,
}

/// A one-phrase query's rows grouped by what its bm25 score depends on: the weighted
/// frequency and the row's token count. Every row of a class scores the same bits
/// (IDF and the average length are the same for all rows of one query), so ranking
/// walks the classes best first and stops as soon as the next class cannot beat the
/// page: a common word or a short prefix (`re`, `in`, `they're`: up to hundreds of
/// thousands of rows) ranks from its first classes instead of every row. The order
/// of the classes is decided per query (the average length moves with the delta),
/// so answers stay exactly FTS5's.
#[derive(Debug)]
pub(super) struct Classed {
    /// (weighted frequency, token count, end of its rows in `rows`), one per class.
    pub(super) classes: Vec<(f64, u32, usize)>,
    /// Row ids, class after class, ascending within a class.
    pub(super) rows: Vec<u32>,
}

/// A phrase matching at least this many base rows is ranked by its classes when it is
/// the query's only phrase.
/// (Shipped value; tests lower it through [`super::thresholds`].)
pub const CLASSED_MIN_ROWS: usize = thresholds::SHIPPED.classed_min_rows;

/// The memo's budget per snapshot unless `VIDEOFEED_RANK_MEMO_BYTES` says otherwise:
/// two thirds for merged postings, a third for score classes. Fixed, not grown with
/// the corpus: the merges that grew with it (short prefixes: `th` holds over a
/// million rows at 10M videos) are in the index file's prefix table instead, by
/// class and shared by every process (`snapshot::prefix_table`); the memo keeps what the
/// file does not (phrases of several words such as `don't`, prefixes past the file's
/// budget). Until issue 36 the budget was 128 bytes a video up to 1 GiB, which at
/// 10M was a gigabyte of merges per process (docs/benchmarks.md §20, §24).
pub const MEMO_BUDGET_DEFAULT: usize = 32 << 20;

/// The configured budget; `usize::MAX` = the default.
static MEMO_BUDGET: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

/// Sets the memo's budget per snapshot (`VIDEOFEED_RANK_MEMO_BYTES`, read at start);
/// None = [`MEMO_BUDGET_DEFAULT`]. Snapshots built after take it.
pub fn set_memo_budget(bytes: Option<usize>) {
    MEMO_BUDGET.store(bytes.unwrap_or(usize::MAX), std::sync::atomic::Ordering::Relaxed);
}

/// The memo's budget of a snapshot.
pub fn memo_budget() -> usize {
    match MEMO_BUDGET.load(std::sync::atomic::Ordering::Relaxed) {
        usize::MAX => MEMO_BUDGET_DEFAULT,
        set => set,
    }
}

/// Distinct weighted frequencies of one phrase's rows a class index is built for
/// (whole-word counts give a handful; beyond this the row loop ranks the phrase).
pub(super) const MAX_CLASS_FREQS: usize = 64;

/// Cells (frequencies × lengths) of the counting sort that builds classes.
pub(super) const MAX_CLASS_CELLS: usize = 1 << 20;

/// Values kept by key (a [`phrase_key`]) within a byte budget, the least
/// recently used evicted to make room. First come first kept (what this replaced)
/// let the first expensive merges of a snapshot's life hold the budget for good: on
/// the benchmark's log `the*` (a 24 ms merge) was merged again at every ask because
/// rarer prefixes asked before it had filled the memo. Values are shared (`Arc`), so
/// an answer holding an evicted one finishes with it; making room sorts the entries
/// by last use once (a few thousand at most: every kept value is 80 KB or more, or a
/// few-byte marker).
#[derive(Debug)]
pub(super) struct Lru<T> {
    /// Key → (value, its bytes, the tick of its last use).
    pub(super) entries: std::collections::HashMap<Box<str>, (T, usize, u64)>,
    pub(super) bytes: usize,
    pub(super) tick: u64,
    pub(super) evicted: u64,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Lru { entries: std::collections::HashMap::new(), bytes: 0, tick: 0, evicted: 0 }
    }
}

impl<T: Clone> Lru<T> {
    pub(super) fn get(&mut self, key: &str) -> Option<T> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(value, _, used)| {
            *used = tick;
            value.clone()
        })
    }

    /// Keeps `value` under `key` (unless already there or larger than `budget`),
    /// evicting the least recently used entries until it fits.
    pub(super) fn insert(&mut self, key: &str, value: T, bytes: usize, budget: usize) {
        if bytes > budget || self.entries.contains_key(key) {
            return;
        }
        if self.bytes + bytes > budget {
            // Oldest first, sorted once (not a scan per eviction: many small entries
            // may give way to one large one).
            let mut by_age: Vec<(u64, Box<str>)> =
                self.entries.iter().map(|(k, (_, _, used))| (*used, k.clone())).collect();
            by_age.sort_unstable();
            for (_, key) in by_age {
                if self.bytes + bytes <= budget {
                    break;
                }
                if let Some((_, gone, _)) = self.entries.remove(&key) {
                    self.bytes = self.bytes.saturating_sub(gone);
                    self.evicted += 1;
                    crate::obs::metrics::global().memo_eviction();
                }
            }
        }
        self.tick += 1;
        self.entries.insert(key.into(), (value, bytes, self.tick));
        self.bytes += bytes;
    }
}

/// The memo's key of a phrase: the tokens joined by U+0001 (which no token holds:
/// the tokenizer splits on control characters), then U+0001 and `*` for a prefix.
/// A prefix and the whole word of the same letters are two keys (`hav*` is
/// `hav` U+0001 `*`): keyed alike, one answered with the other's rows (issue 29).
pub(super) fn phrase_key(phrase: &Phrase) -> String {
    let mut key = phrase.tokens.join("\u{1}");
    if phrase.prefix {
        key.push_str("\u{1}*");
    }
    key
}

/// Row counts of phrases kept at most per snapshot (about 64 bytes each: 4 MiB).
pub const PHRASE_ROWS_KEPT: usize = 65_536;

/// A merge of at least this many rows is kept (shipped value; tests lower it
/// through [`super::thresholds`]).
pub const MEMO_MIN_ROWS: usize = thresholds::SHIPPED.memo_min_rows;

impl Memo {
    /// An empty memo with the configured budget ([`memo_budget`]).
    pub fn with_budget() -> Memo {
        Memo { budget: memo_budget(), ..Memo::default() }
    }

    /// Bytes of merged postings kept (8 a row).
    pub(super) fn merges_budget(&self) -> usize {
        self.budget / 3 * 2
    }

    /// Bytes of classed rows kept (4 a row).
    pub(super) fn classes_budget(&self) -> usize {
        self.budget / 3
    }

    pub(super) fn get(&self, key: &str) -> Option<std::sync::Arc<Merged>> {
        let found = self.lists.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key);
        crate::obs::metrics::global().memo_lookup(found.is_some());
        found
    }

    pub(super) fn keep(&self, prefix: &str, merged: Merged) -> std::sync::Arc<Merged> {
        let worth = merged.rowids.len() >= thresholds::get().memo_min_rows;
        self.keep_if(prefix, merged, worth)
    }

    /// Keeps `merged` whatever its size (its cost was in finding it, not in its rows).
    pub(super) fn keep_any(&self, key: &str, merged: Merged) -> std::sync::Arc<Merged> {
        self.keep_if(key, merged, true)
    }

    pub(super) fn keep_if(&self, prefix: &str, mut merged: Merged, worth: bool) -> std::sync::Arc<Merged> {
        if worth {
            // Built by pushing: up to twice the rows' bytes held; kept ones hold only theirs.
            merged.rowids.shrink_to_fit();
            merged.freq.shrink_to_fit();
        }
        let merged = std::sync::Arc::new(merged);
        let bytes = (merged.rowids.capacity() + merged.freq.capacity()) * 4;
        if worth {
            let mut guard = self.lists.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.insert(prefix, std::sync::Arc::clone(&merged), bytes, self.merges_budget());
            crate::obs::metrics::global().prefix_memo(guard.bytes);
        }
        merged
    }

    /// The kept classes of `key`: Some(None) when its rows cannot be classed.
    pub(super) fn classed(&self, key: &str) -> Option<Option<std::sync::Arc<Classed>>> {
        self.classed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key)
    }

    /// Remembers that `key`'s rows cannot be classed (a few bytes; bounded as the rest).
    pub(super) fn keep_unclassable(&self, key: &str) {
        let mut guard = self.classed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.insert(key, None, key.len() + 32, self.classes_budget());
    }

    /// Whether classes of `rows` rows fit in its budget (evicting others if
    /// need be; classes that could never be kept would be built again by every
    /// query: then the row loop ranks instead).
    pub(super) fn classes_fit(&self, rows: usize) -> bool {
        rows.saturating_mul(4) <= self.classes_budget()
    }

    pub(super) fn keep_classed(&self, key: &str, classed: Classed) -> std::sync::Arc<Classed> {
        let classed = std::sync::Arc::new(classed);
        let bytes = classed.rows.capacity() * 4 + classed.classes.capacity() * 24;
        let mut guard = self.classed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.insert(key, Some(std::sync::Arc::clone(&classed)), bytes, self.classes_budget());
        crate::obs::metrics::global().classes(guard.bytes);
        classed
    }

    /// Rankings answered by walking a phrase's score classes.
    pub fn classed_answers(&self) -> u64 {
        self.classed_answers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Rankings of several phrases answered by walking the rarest one's classes, and
    /// those given up (the walk checked an eighth of its rows) for the row-by-row loop.
    pub fn bounded_answers(&self) -> (u64, u64) {
        (
            self.bounded_answers.load(std::sync::atomic::Ordering::Relaxed),
            self.bounded_given_up.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Rankings and counts that read a prefix of many rows unmerged.
    pub fn prefix_reads(&self) -> u64 {
        self.prefix_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The row count of the phrase of several tokens keyed `key`, when known.
    pub(super) fn phrase_rows(&self, key: &str) -> Option<usize> {
        self.phrase_rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).copied()
    }

    /// Keeps the row count of the phrase keyed `key` (until [`PHRASE_ROWS_KEPT`] are kept).
    pub(super) fn keep_phrase_rows(&self, key: &str, rows: usize) {
        let mut kept = self.phrase_rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() < PHRASE_ROWS_KEPT {
            kept.insert(key.into(), rows);
        }
    }

    /// Bytes kept.
    pub fn bytes(&self) -> usize {
        self.lists.lock().unwrap_or_else(std::sync::PoisonError::into_inner).bytes
    }
}

/// Merges made while answering one query (prefixes and phrases of several tokens
/// too small for the [`Memo`]), shared by the rankings of that answer: word dropping
/// ranks several shorter queries that repeat the same phrases. Lives as long as the
/// answer's [`super::View`]; one thread.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(super) merges: std::cell::RefCell<std::collections::HashMap<String, std::sync::Arc<Merged>>>,
    pub(super) reused: std::cell::Cell<u64>,
}

impl Scratch {
    pub(super) fn get(&self, key: &str) -> Option<std::sync::Arc<Merged>> {
        let found = self.merges.borrow().get(key).cloned();
        if found.is_some() {
            self.reused.set(self.reused.get() + 1);
        }
        found
    }

    pub(super) fn keep(&self, key: &str, merged: Merged) -> std::sync::Arc<Merged> {
        let merged = std::sync::Arc::new(merged);
        self.merges.borrow_mut().insert(key.to_owned(), std::sync::Arc::clone(&merged));
        merged
    }

    /// Merges a ranking took from this scratch instead of merging again (a test hook).
    pub fn reused(&self) -> u64 {
        self.reused.get()
    }
}
