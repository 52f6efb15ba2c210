//! The rank index's shared state: the current [`Snapshot`] (rebuilt in the
//! background whenever the database generation moves on), the set of videos
//! the thumbnail policy leaves out, and the FTS5 vocabulary the typo correction
//! reads when no current snapshot exists. `build` and `snapshot` are pure data;
//! `load` reads SQLite.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod arr;
pub mod build;
pub mod codec;
pub mod columns;
pub mod delta;
pub mod hidden;
mod load;
pub mod memo;
pub mod persist;
pub mod prefixes;
pub mod snapshot;
pub mod terms;
pub mod thresholds;
pub mod walk;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;

pub use build::{BuildError, Builder, Instance, MAX_REGIONS, MAX_ROWID};
pub use columns::{Cols, Filter, Inexact};
pub use delta::{Change, Delta, Row};
pub use hidden::Hidden;
use load::{cols_of, current_generation, load, load_unless, log_reaches};
pub use memo::Scratch;
pub use snapshot::{Hit, Postings, Snapshot};

use super::tokenize::{Phrase, Tokenizer};
use super::{Error, ThumbnailPolicy, sql};
use crate::store::db::file_id;
use terms::Vocabulary;

/// What every reader of one database shares: the in-memory rank index (the current
/// snapshot, rebuilt in the background whenever the database generation moves on),
/// the vocabulary the typo correction reads when no current snapshot is at hand, and
/// the set of row ids the thumbnail policy leaves out. With the rank index off
/// ([`RankIndex::disabled`]) no snapshot is ever built and every query is ranked by
/// SQL; answers are the same either way.
pub struct RankIndex {
    db: PathBuf,
    /// Whether snapshots are built at all (`VIDEOFEED_RANK_INDEX`).
    enabled: bool,
    /// The snapshot and the identity of the file it was built from.
    current: Mutex<Option<(u64, Arc<Snapshot>)>>,
    building: AtomicBool,
    /// Videos this policy leaves out are skipped when ranking (see [`RankIndex::hidden`]).
    pub(super) policy: ThumbnailPolicy,
    /// The row ids `policy` leaves out, for one (file, generation, thumbs).
    hidden: Mutex<Option<(HiddenVersion, Arc<Hidden>)>>,
    /// The vocabulary for one (file, generation), read from `fts5vocab` when needed.
    vocabulary: Mutex<Option<(u64, i64, Arc<Vocabulary>)>>,
    /// Whether a failure to write the index file was logged already.
    save_warned: AtomicBool,
    /// The (file, generation) whose build failed: not tried again until either moves.
    failed: Mutex<Option<(u64, i64)>>,
    /// The delta of the current base, updated in place: (file, base generation, delta).
    /// Readers hold the read lock while they answer from it, so it cannot move under them.
    delta: RwLock<Option<(u64, i64, Delta)>>,
    /// Held by the one reader bringing the delta up to a newer generation.
    catching_up: Mutex<()>,
    /// When (ms since `born`) to look next at the index file on disk for one another
    /// process wrote ([`RankIndex::look_for_newer_file`]).
    next_look_ms: AtomicU64,
    born: Instant,
    /// The file on disk last judged (identity and modification time), adopted or not.
    looked_at: Mutex<Option<((u64, u64), i128)>>,
    /// A file whose mapping was let go of as damaged (its checksum, verified after it
    /// was mapped, did not match): its identity and modification time, so that the
    /// rebuild does not map it again.
    distrusted: Mutex<Option<((u64, u64), i128)>>,
    /// The database's `instance` (see [`persist_key`]) when the current snapshot was
    /// installed: a file renamed over the database continues its history only if it
    /// is of the same instance ([`RankIndex::follow_replaced_file`]).
    instance: Mutex<Option<i64>>,
    /// The compaction running, if any: since when, and whether at normal priority.
    compacting: Mutex<Option<(Instant, bool)>>,
    /// Set when the delta passes twice the compaction point while a low-priority
    /// compaction runs: it gives up and starts again at normal priority.
    give_up_low: AtomicBool,
    /// Until when compactions start at normal priority (writes outpaced a
    /// low-priority one recently).
    urgent_until: Mutex<Option<Instant>>,
}

/// Test hook `VIDEOFEED_TEST_COMPACTION_DELAY_MS`: a compaction that takes this long
/// before it builds (a starved one), giving up when `give_up` says so. True when it gave up.
#[cfg(feature = "test-hooks")]
fn test_hook_slow_compaction(started: Instant, give_up: &dyn Fn() -> bool) -> bool {
    let ms = std::env::var("VIDEOFEED_TEST_COMPACTION_DELAY_MS").ok().and_then(|v| v.parse::<u64>().ok());
    let until = started + Duration::from_millis(ms.unwrap_or(0));
    while Instant::now() < until {
        if give_up() {
            log::info!("rank index: low-priority compaction given up after {} ms", started.elapsed().as_millis());
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Release builds: no hook.
#[cfg(not(feature = "test-hooks"))]
fn test_hook_slow_compaction(_started: Instant, _give_up: &dyn Fn() -> bool) -> bool {
    false
}

/// What the delta and its compaction look like now (`/feed/health`, `/feed/metrics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaState {
    /// Rows changed since the base (deleted ones included).
    pub rows: usize,
    /// Row versions held (superseded ones included; at most about twice `rows`).
    pub versions: usize,
    /// Postings held over all terms.
    pub postings: usize,
    /// Since the first change the base does not hold.
    pub age: Option<Duration>,
    /// The compaction running: for how long, and whether at normal priority.
    pub compacting: Option<(Duration, bool)>,
    /// Why the index is behind the writes, when it is: the delta is past
    /// [`DELTA_BOUND_FACTOR`] times the compaction point.
    pub behind: Option<String>,
}

/// The delta's stated bound, in compaction points: past it `/feed/health` says
/// `degraded` (the compaction does not keep up with the writes). Answers stay
/// exact; each costs about a microsecond more per delta row a ranked word holds.
pub const DELTA_BOUND_FACTOR: usize = 4;

/// How long after a compaction had to be hurried the next ones start at normal priority.
const URGENT_FOR: Duration = Duration::from_secs(120);

/// How long a process waits for another's build of the same index file (the lock
/// beside it) before it builds its own; it answers from SQL meanwhile.
pub const BUILD_WAIT: Duration = Duration::from_secs(600);

/// How often a process looks whether the index file on disk is newer than the one
/// it maps (another process built or compacted it).
const LOOK_EVERY_MS: u64 = 1000;

/// The advisory lock (`flock(2)` on `<db>.rank.lock`) that makes one process at a
/// time build and write a database's index file: processes that start together
/// (LiteSpeed starts one per httpd worker) build once, and the others map the file.
struct BuildLock {
    /// The locked file; None when there is no lock to take (a read-only directory
    /// without the lock file: each process builds its own, as before).
    _file: Option<std::fs::File>,
    /// Whether another process held it for a while first (its file may be current now).
    waited: bool,
}

impl BuildLock {
    /// The lock file beside `db`'s index file.
    fn path(db: &Path) -> PathBuf {
        let mut name = persist::path_for(db).into_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock, waiting up to `wait` for another process's build to end.
    fn acquire(db: &Path, wait: Duration) -> BuildLock {
        use std::os::unix::fs::OpenOptionsExt;
        let path = BuildLock::path(db);
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .or_else(|_| std::fs::File::open(&path));
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                log::debug!("no build lock ({}: {e}); building without it", path.display());
                return BuildLock { _file: None, waited: false };
            }
        };
        let started = Instant::now();
        let mut waited = false;
        loop {
            match crate::sys::try_lock_exclusive(&file) {
                Ok(true) => {
                    if waited {
                        log::info!(
                            "the other process's rank index build ended after {} ms",
                            started.elapsed().as_millis()
                        );
                    }
                    return BuildLock { _file: Some(file), waited };
                }
                Ok(false) => {}
                Err(e) => {
                    log::warn!("cannot lock {} ({e}); building the rank index without it", path.display());
                    return BuildLock { _file: None, waited };
                }
            }
            if !waited {
                log::info!(
                    "another process is building the rank index of {} (it holds {}); waiting for its file, answering from SQL meanwhile",
                    db.display(),
                    path.display()
                );
                waited = true;
            }
            if started.elapsed() >= wait {
                log::warn!(
                    "waited {} s for another process's rank index build; building this process's own",
                    wait.as_secs()
                );
                return BuildLock { _file: None, waited };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Builds the rank index of `db` and writes its file now (under the build lock), so
/// the responders that start next map it instead of building it: what `import`,
/// `init` and `restore` leave behind. Nothing is written when the file on disk is
/// already of this database at its current generation. Returns the generation
/// and whether a file was written.
///
/// # Errors
/// [`Error`] when the database cannot be read or the file cannot be written.
pub fn write_index_file(db: &Path) -> Result<(i64, bool), Error> {
    let _lock = BuildLock::acquire(db, BUILD_WAIT);
    let path = persist::path_for(db);
    let key = persist_key(db, file_id(db));
    let generation = current_generation(db)?;
    if let Ok(Some(on_disk)) = persist::load(&path, key) {
        if on_disk.generation() == generation {
            return Ok((generation, false));
        }
    }
    let snap = load(db)?;
    persist::save(&snap, key, &path).map_err(|e| Error::Index(format!("cannot write {}: {e}", path.display())))?;
    Ok((snap.generation(), true))
}

/// A delta of this many rows starts a rebuild of the base in the background (it keeps
/// answering meanwhile): merging it costs about a microsecond per delta row per query.
/// (Shipped value; tests lower it through [`thresholds`].)
pub const COMPACT_ROWS: usize = thresholds::SHIPPED.compact_rows;

/// The nice value of a compaction's thread: under full load it gets about a tenth
/// of a worker's CPU share (CFS weight 110 against 1024), and all of an idle core.
pub const COMPACT_NICE: i32 = 10;

/// Base rows with changed columns (and nothing else) that start a rebuild: an override
/// costs a hash lookup per matching row of a filtered query, and ~100 bytes.
pub const COMPACT_COLUMNS: usize = 500_000;

/// The delta of a base that nothing changed since.
static EMPTY: Delta = Delta::new();

/// The rank index at one generation: an immutable base and the delta since it
/// (held under the delta's read lock while the view lives).
pub struct View<'a> {
    /// The snapshot built from the database at some earlier generation.
    pub base: Arc<Snapshot>,
    delta: DeltaRef<'a>,
    /// Small merges kept for the answer's other rankings.
    scratch: Scratch,
}

/// The delta of a view: none, or the shared one under its read lock.
enum DeltaRef<'a> {
    Empty,
    Shared(RwLockReadGuard<'a, Option<(u64, i64, Delta)>>),
}

impl View<'_> {
    /// The rows changed since the base, as they are at the view's generation.
    pub fn delta(&self) -> &Delta {
        match &self.delta {
            DeltaRef::Empty => &EMPTY,
            DeltaRef::Shared(guard) => guard.as_ref().map_or(&EMPTY, |(_, _, d)| d),
        }
    }

    /// Merges this view's rankings took from its scratch instead of merging again.
    pub fn scratch_reused(&self) -> u64 {
        self.scratch.reused()
    }

    /// Whether `token` is a term of some row now (or starts one, when `prefix`).
    pub fn knows(&self, token: &str, prefix: bool) -> bool {
        let delta = self.delta();
        if delta.is_empty() { self.base.knows(token, prefix) } else { self.base.knows_view(token, prefix, delta) }
    }

    /// The first `n` corrections of `token` over the current vocabulary, best first.
    pub fn candidates(&self, token: &str, prefix: bool, n: usize) -> Vec<String> {
        let delta = self.delta();
        if delta.is_empty() {
            self.base.candidates(token, prefix, n)
        } else {
            self.base.candidates_view(token, prefix, delta, n)
        }
    }

    /// Rows holding `token` now (summed over the terms it starts, when `prefix`).
    pub fn docs(&self, token: &str, prefix: bool) -> usize {
        let delta = self.delta();
        if delta.is_empty() { self.base.docs(token, prefix) } else { self.base.docs_view(token, prefix, delta) }
    }

    /// The best `limit` rows now (see [`Snapshot::top_k_view`]).
    pub fn top_k(&self, phrases: &[Phrase], region: &str, limit: usize, hidden: &Hidden) -> Vec<Hit> {
        self.base.top_k_view(phrases, region, limit, hidden, Some(self.delta()), None, Some(&self.scratch))
    }

    /// The first `limit` rows now that pass `filter`, in its order; None when a
    /// column it reads holds a value the index cannot compare as SQL does (then SQL answers).
    pub fn top_k_filtered(
        &self,
        phrases: &[Phrase],
        region: &str,
        limit: usize,
        hidden: &Hidden,
        filter: &Filter<'_>,
    ) -> Option<Vec<Hit>> {
        let delta = self.delta();
        let mut inexact = self.base.cols.inexact;
        inexact.merge(delta.inexact());
        if inexact.blocks(filter) {
            return None;
        }
        Some(self.base.top_k_view(phrases, region, limit, hidden, Some(delta), Some(filter), Some(&self.scratch)))
    }
}

impl View<'_> {
    /// How many rows now match `phrases` in `region` (or GLOBAL), outside `hidden`,
    /// passing `filter`, up to `cap` ([`Snapshot::count_view`]); None when a column
    /// the filter reads holds a value the index cannot compare as SQL does.
    pub fn count(
        &self,
        phrases: &[Phrase],
        region: &str,
        cap: usize,
        hidden: &Hidden,
        filter: Option<&Filter<'_>>,
    ) -> Option<usize> {
        let delta = self.delta();
        if let Some(filter) = filter {
            let mut inexact = self.base.cols.inexact;
            inexact.merge(delta.inexact());
            if inexact.blocks(filter) {
                return None;
            }
        }
        Some(self.base.count_view(phrases, region, cap, hidden, Some(delta), filter, Some(&self.scratch)))
    }
}

/// Changed rows: (row id, what changed), and the inexact columns among them.
type Updates = (Vec<(u32, Change)>, Inexact);

/// The rows written in generations (`from`, `to`], with their tokens now (None for a
/// deleted row); None when the change log does not hold every one of those generations.
fn changed_rows(tx: &Connection, from: i64, to: i64, tokenizer: &Tokenizer) -> Result<Option<Updates>, Error> {
    let (entries, lowest): (i64, Option<i64>) =
        tx.prepare_cached(sql::CHANGES_COUNT_SQL)?.query_row([from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if entries != to - from || lowest.is_some_and(|l| l != from + 1) {
        return Ok(None);
    }
    let mut stmt = tx.prepare_cached(sql::CHANGED_ROWS_SQL)?;
    let mut rows = stmt.query([from, to])?;
    let mut present = Vec::new();
    let mut updates = Vec::new();
    let mut inexact = Inexact::default();
    while let Some(r) = rows.next()? {
        let Ok(rowid) = u32::try_from(r.get::<_, i64>(0)?) else { return Ok(None) };
        let kind: i64 = r.get(1)?;
        let text: (Option<String>, Option<String>, Option<String>) = (r.get(2)?, r.get(3)?, r.get(4)?);
        let (Some(title), Some(channel), Some(region)) = text else {
            updates.push((rowid, Change::Row(None)));
            continue;
        };
        let (cols, marks) = cols_of(r, 5)?;
        inexact.merge(marks);
        if kind == 1 {
            updates.push((rowid, Change::Cols(cols)));
        } else {
            present.push((rowid, title, channel, region, cols));
        }
    }
    let texts: Vec<(&str, &str)> = present.iter().map(|(_, t, c, _, _)| (t.as_str(), c.as_str())).collect();
    let tokens = tokenizer.row_tokens(&texts)?;
    for ((rowid, _, _, region, cols), (title, channel)) in present.into_iter().zip(tokens) {
        updates.push((rowid, Change::Row(Some(Row { rowid, region, title, channel, cols }))));
    }
    Ok(Some((updates, inexact)))
}

/// What the set of videos left out depends on: (file, generation, thumbs).
pub(super) type HiddenVersion = (u64, i64, i64);

/// Clears the `building` flag however the builder thread ends (a panic included).
struct Building<'a>(&'a AtomicBool);

impl Drop for Building<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl RankIndex {
    /// An empty index for the database at `db`; call [`RankIndex::refresh`] to build it.
    pub fn new(db: PathBuf) -> Arc<RankIndex> {
        RankIndex::with_policy(db, ThumbnailPolicy::default())
    }

    /// As [`RankIndex::new`], leaving out the videos `policy` leaves out.
    pub fn with_policy(db: PathBuf, policy: ThumbnailPolicy) -> Arc<RankIndex> {
        RankIndex::make(db, policy, true)
    }

    /// Shared state without a rank index: every query is ranked by SQL.
    pub fn disabled(db: PathBuf, policy: ThumbnailPolicy) -> Arc<RankIndex> {
        RankIndex::make(db, policy, false)
    }

    fn make(db: PathBuf, policy: ThumbnailPolicy, enabled: bool) -> Arc<RankIndex> {
        Arc::new(RankIndex {
            db,
            enabled,
            current: Mutex::new(None),
            building: AtomicBool::new(false),
            policy,
            hidden: Mutex::new(None),
            vocabulary: Mutex::new(None),
            failed: Mutex::new(None),
            save_warned: AtomicBool::new(false),
            delta: RwLock::new(None),
            next_look_ms: AtomicU64::new(0),
            born: Instant::now(),
            looked_at: Mutex::new(None),
            distrusted: Mutex::new(None),
            instance: Mutex::new(None),
            compacting: Mutex::new(None),
            catching_up: Mutex::new(()),
            give_up_low: AtomicBool::new(false),
            urgent_until: Mutex::new(None),
        })
    }

    /// Whether snapshots are built.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The row ids the policy leaves out at (`file`, `generation`, `thumbs`), read in
    /// `tx` when the cached set is for another version. `generation` moves when rows
    /// come or go, `thumbs` when a check or a video's thumbnail changes (schema 5), so
    /// the set is always the one SQL's `NOT EXISTS` would give; thumbnail results never
    /// invalidate the index itself (a rebuild costs seconds per million videos), and
    /// reloading this set costs one scan of the broken checks (a partial index).
    pub(super) fn hidden(&self, tx: &Connection, version: HiddenVersion) -> Result<Arc<Hidden>, Error> {
        let mut cached = self.hidden.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((v, set)) = cached.as_ref() {
            if *v == version {
                return Ok(Arc::clone(set));
            }
        }
        let set = match sql::hidden_rowids(&self.policy) {
            None => Hidden::default(),
            Some(sql) => {
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
                Hidden::from_rowids(rows.collect::<Result<Vec<_>, _>>()?)
            }
        };
        let set = Arc::new(set);
        *cached = Some((version, Arc::clone(&set)));
        Ok(set)
    }

    /// The vocabulary at (`file`, `generation`): the cached one, else read in `tx`
    /// (a full pass over FTS5's index: ~0.2 s per million videos, once per generation).
    pub(super) fn vocabulary(&self, tx: &Connection, file: u64, generation: i64) -> Result<Arc<Vocabulary>, Error> {
        let mut cached = self.vocabulary.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((f, g, v)) = cached.as_ref() {
            if (*f, *g) == (file, generation) {
                return Ok(Arc::clone(v));
            }
        }
        let started = Instant::now();
        let mut stmt = tx.prepare_cached(sql::VOCABULARY_SQL)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut pairs = Vec::new();
        for row in rows {
            let (term, docs) = row?;
            pairs.push((term, u32::try_from(docs).unwrap_or(u32::MAX)));
        }
        let vocabulary = Arc::new(Vocabulary::from_sorted(pairs).map_err(|e| Error::Index(e.to_string()))?);
        log::debug!(
            "vocabulary read generation={generation} terms={} ms={}",
            vocabulary.len(),
            started.elapsed().as_millis()
        );
        *cached = Some((file, generation, Arc::clone(&vocabulary)));
        Ok(vocabulary)
    }

    /// The current snapshot, if one has been built.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|(_, s)| Arc::clone(s))
    }

    /// When the index file the current snapshot maps was changed in place (truncated,
    /// overwritten: see [`Snapshot::damage`]), lets go of the snapshot (queries are
    /// ranked by SQL), says so once, and starts building the index again; true then.
    /// Cheap (one `fstat(2)` for a mapped snapshot, nothing for one in memory): asked
    /// before and after every answer, whose result is thrown away when it was computed
    /// from a damaged file.
    pub fn drop_if_damaged(self: &Arc<Self>) -> bool {
        let Some(snap) = self.snapshot() else { return false };
        let Some(why) = snap.damage() else { return false };
        {
            let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if current.as_ref().is_some_and(|(_, s)| Arc::ptr_eq(s, &snap)) {
                *current = None;
                if let Some(map) = snap.mapping() {
                    *self.distrusted.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((map.identity(), map.stamp().1));
                }
                crate::obs::metrics::global().index_file_damaged();
                log::error!(
                    "rank index file {}: {why}; answering from SQL and building it again \
                     (replace the file by rename, never in place: cp, rsync --inplace, truncate and \
                     editors write into the file every videofeed process maps)",
                    persist::path_for(&self.db).display()
                );
            }
        }
        self.refresh();
        true
    }

    /// The generation the index answers at: its base's, brought forward by the delta
    /// the last query caught up (None before the first build).
    pub fn generation(&self) -> Option<i64> {
        let (file, base) = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()?;
        let delta = self.delta.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match delta.as_ref() {
            Some((f, g, d)) if *f == file && *g == base.generation() => Some(d.generation()),
            _ => Some(base.generation()),
        }
    }

    /// Whether readers of database file `file` can switch to it without slow answers:
    /// the index is off, or its snapshot is of that file, or building it failed.
    pub fn ready_for(&self, file: u64) -> bool {
        if !self.enabled {
            return true;
        }
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|(f, _)| *f);
        let failed = self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map(|(f, _)| f);
        current == Some(file) || failed == Some(file)
    }

    /// (hits, misses) of the delta's phrase memo since the process started: a hit
    /// is a phrase whose delta rows an earlier ranking at the same generation merged.
    pub fn delta_memo(&self) -> (u64, u64) {
        let delta = self.delta.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        delta.as_ref().map_or((0, 0), |(_, _, d)| d.memo().counts())
    }

    /// The rank index at `generation` of file `file`, read in `tx`: the base
    /// snapshot and the delta that brings it to that generation. A delta behind is
    /// caught up from the change log (only the rows written since); a gap in the
    /// log (a bulk load, or entries pruned) or no base at all starts a rebuild and
    /// answers None (SQL ranks meanwhile, with the same answers); so does a delta
    /// past [`COMPACT_ROWS`], while it keeps answering.
    ///
    /// # Errors
    /// SQLite errors reading the log or the changed rows.
    pub(super) fn view_at(
        self: &Arc<Self>,
        tx: &Connection,
        file: u64,
        generation: i64,
        tokenizer: &Tokenizer,
    ) -> Result<Option<View<'_>>, Error> {
        if !self.enabled {
            return Ok(None);
        }
        self.look_for_newer_file();
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let base = match current {
            Some((built_from, snap)) if built_from == file && snap.generation() <= generation => snap,
            Some((built_from, snap)) if built_from == file && snap.generation() > generation => return Ok(None),
            Some((built_from, _)) if built_from != file && file == file_id(&self.db) => {
                // A worker on the file now at the path, the index still of the one before.
                self.follow_replaced_file();
                return Ok(None);
            }
            _ => {
                let failed = *self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if failed != Some((file, generation)) {
                    self.refresh();
                }
                return Ok(None);
            }
        };
        if base.generation() == generation {
            return Ok(Some(View { delta: DeltaRef::Empty, base, scratch: Scratch::default() }));
        }
        let base_generation = base.generation();
        let ours = |slot: &Option<(u64, i64, Delta)>| -> Option<i64> {
            slot.as_ref().filter(|(f, g, _)| *f == file && *g == base_generation).map(|(_, _, d)| d.generation())
        };
        // Usually the delta is already at this generation: answer under the read lock.
        let read = self.delta.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match ours(&read) {
            Some(g) if g == generation => {
                return Ok(Some(View { base, delta: DeltaRef::Shared(read), scratch: Scratch::default() }));
            }
            Some(g) if g > generation => return Ok(None),
            _ => drop(read),
        }
        // Behind: one reader catches up, the others at this generation wait for it. The
        // changed rows are read and tokenized under the catch-up lock only, so readers
        // at the generation the delta holds keep answering meanwhile; the delta's own
        // lock is taken only to apply them.
        let _catching_up = self.catching_up.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let from = {
            let mut slot = self.delta.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if ours(&slot).is_none() {
                let fresh =
                    slot.as_ref().map_or_else(|| Delta::empty(base_generation), |(_, _, d)| d.restart(base_generation));
                *slot = Some((file, base_generation, fresh));
            }
            ours(&slot).unwrap_or(base_generation)
        };
        if from < generation {
            let started = Instant::now();
            let Some((updates, inexact)) = changed_rows(tx, from, generation, tokenizer)? else {
                log::info!("rank index: the change log does not cover generations {from}..{generation}; rebuilding");
                self.refresh();
                return Ok(None);
            };
            let read = started.elapsed();
            let rows = updates.len();
            let mut slot = self.delta.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            // (Only this holder of the catch-up lock moves the delta of this base.)
            if ours(&slot) == Some(from) {
                if let Some((_, _, delta)) = slot.as_mut() {
                    delta.apply(&base, generation, updates, inexact);
                    log::debug!(
                        "rank index: caught up generations {from}..{generation} ({rows} rows) in {} us (read {} us); delta {} rows",
                        started.elapsed().as_micros(),
                        read.as_micros(),
                        delta.len()
                    );
                    let point = thresholds::get().compact_rows;
                    crate::obs::metrics::global().set_delta_pressure(delta.len(), point);
                    if delta.len() >= point || delta.column_changes() >= COMPACT_COLUMNS {
                        self.compact(delta.len(), point, delta.age());
                    }
                }
            }
        }
        drop(_catching_up);
        let read = self.delta.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ours(&read) == Some(generation) {
            Ok(Some(View { base, delta: DeltaRef::Shared(read), scratch: Scratch::default() }))
        } else {
            Ok(None)
        }
    }

    /// Writes `snap` (of the database whose [`persist_key`] is `key`) to the shared index file and maps it back, so its memory is the
    /// page cache's (one copy for every process on the box); `snap` itself when the
    /// file cannot be written (a read-only directory: each process keeps its own).
    fn share(&self, snap: Snapshot, key: u64, path: &std::path::Path) -> Snapshot {
        if let Err(e) = persist::save(&snap, key, path) {
            if !self.save_warned.swap(true, Ordering::SeqCst) {
                log::warn!(
                    "cannot write the rank index file {} ({e}); each process keeps its own copy in memory",
                    path.display()
                );
            }
            return snap;
        }
        match persist::load(path, key) {
            Ok(Some(mapped)) if mapped.generation() == snap.generation() => mapped,
            Ok(_) => snap,
            Err(why) => {
                log::warn!("the rank index file {} just written is not usable ({why})", path.display());
                snap
            }
        }
    }

    /// Starts a compaction of a delta of `rows` rows (compaction point `point`), `age`
    /// old, unless one runs. It runs at low priority ([`COMPACT_NICE`]) unless writes
    /// outpace that: the delta filled the point within the threshold
    /// `compact_urgent_secs` (sustained writes: at 1,000 rows/s a low-priority
    /// compaction of 1M videos would let the delta grow by 60,000 before it ends), it
    /// is already past twice the point, or a compaction had to be hurried in the last
    /// [`URGENT_FOR`]. A low-priority one running while the delta passes twice the
    /// point gives up and starts again at normal priority.
    fn compact(self: &Arc<Self>, rows: usize, point: usize, age: Option<Duration>) {
        let fast = age.is_some_and(|a| a.as_secs() < thresholds::get().compact_urgent_secs);
        let hurry = rows >= point.saturating_mul(2);
        let running = *self.compacting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, urgent)) = running {
            if hurry && !urgent && !self.give_up_low.swap(true, Ordering::SeqCst) {
                log::warn!(
                    "rank index: the delta reached {rows} rows during a low-priority compaction; \
                     starting it again at normal priority"
                );
            }
            return;
        }
        if self.building.load(Ordering::SeqCst) {
            return;
        }
        let recent = self
            .urgent_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| Instant::now() < t);
        let urgent = fast || hurry || recent;
        crate::obs::metrics::global().compaction(urgent);
        self.start_build_at(Some(urgent));
    }

    /// The delta's size and age, and the compaction's state, for health and metrics.
    pub fn delta_state(&self) -> DeltaState {
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut state = DeltaState::default();
        if let Some((file, base)) = current {
            let delta = self.delta.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, _, d)) = delta.as_ref().filter(|(f, g, _)| *f == file && *g == base.generation()) {
                state.rows = d.len();
                state.versions = d.versions();
                state.postings = d.posting_count();
                state.age = d.age();
            }
        }
        let compacting = *self.compacting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.compacting = compacting.map(|(since, urgent)| (since.elapsed(), urgent));
        let bound = thresholds::get().compact_rows.saturating_mul(DELTA_BOUND_FACTOR);
        if self.enabled && state.rows >= bound {
            state.behind = Some(format!(
                "the rank index's compaction is not keeping up with the writes: its delta holds {} rows \
                 (bound {bound}), {} s old{}; answers stay exact but each costs more until it catches up",
                state.rows,
                state.age.map_or(0, |a| a.as_secs()),
                match state.compacting {
                    Some((took, urgent)) => format!(
                        ", a compaction at {} priority running for {} s",
                        if urgent { "normal" } else { "low" },
                        took.as_secs()
                    ),
                    None => String::new(),
                }
            ));
        }
        state
    }

    /// Builds the snapshot now, on this thread (benchmarks, tools).
    ///
    /// # Errors
    /// [`Error`] when the database cannot be read.
    pub fn build_now(&self) -> Result<(), Error> {
        let file = file_id(&self.db);
        let snap = load(&self.db)?;
        self.install(file, Arc::new(snap));
        Ok(())
    }

    /// Starts a background rebuild unless one is running (or the index is disabled).
    /// Queries are ranked by SQL meanwhile, with the same answers.
    pub fn refresh(self: &Arc<Self>) {
        self.start_build_at(None);
    }

    /// Starts a build on its own thread: `compaction` None for a build SQL waits for
    /// (no base, or a gap in the log), at normal priority; Some(urgent) for a
    /// compaction (the delta grew past its bound; the index keeps answering
    /// meanwhile), at a low CPU priority ([`COMPACT_NICE`], so on a busy machine it
    /// takes the CPU the request workers leave) unless `urgent`.
    fn start_build_at(self: &Arc<Self>, compaction: Option<bool>) {
        if !self.enabled || self.building.swap(true, Ordering::SeqCst) {
            return;
        }
        // (Marked before the thread starts, so whoever asks next sees it running.)
        if let Some(urgent) = compaction {
            self.give_up_low.store(false, Ordering::SeqCst);
            *self.compacting.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), urgent));
        }
        let index = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("rank-index".into()).spawn(move || {
            let low = compaction == Some(false);
            if low {
                crate::sys::set_thread_nice(COMPACT_NICE);
            }
            let building = Building(&index.building);
            // A panic in the loader must not leave the flag set (no rebuild ever again).
            let give_up = || low && index.give_up_low.load(Ordering::SeqCst);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                index.rebuild(compaction.is_some(), &give_up)
            }));
            *index.compacting.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            if compaction == Some(true) || outcome.as_ref().is_ok_and(|given_up| *given_up) {
                *index.urgent_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + URGENT_FOR);
            }
            match outcome {
                Ok(true) => {
                    crate::obs::metrics::global().compaction_hurried();
                    drop(building);
                    index.start_build_at(Some(true));
                }
                Ok(false) => {}
                Err(_) => {
                    log::error!("rank index builder panicked; SQL ranking until the next write");
                    let failed = (file_id(&index.db), current_generation(&index.db).unwrap_or(i64::MIN));
                    *index.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(failed);
                }
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start the rank index builder: {e}");
            *self.compacting.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            self.building.store(false, Ordering::SeqCst);
        }
    }

    /// Builds a new base snapshot (the builder thread's work). Writes during the
    /// build are not built again for: the change log brings the new base up to date
    /// at the next query, as a delta. True when `give_up` ended it early (nothing
    /// installed: the caller starts it again at normal priority).
    fn rebuild(&self, compaction: bool, give_up: &dyn Fn() -> bool) -> bool {
        let started = Instant::now();
        let file = file_id(&self.db);
        #[cfg(feature = "test-hooks")]
        if std::env::var_os("VIDEOFEED_TEST_PANIC_INDEX_BUILD").is_some_and(|v| v == "once")
            && !PANICKED_ONCE.swap(true, Ordering::SeqCst)
        {
            crate::sys::test_hook_panic("rank index build");
        }
        // A file another process (or an earlier run) wrote: newer than our base, and
        // the change log can bring it up to date? Then map it instead of building.
        let path = persist::path_for(&self.db);
        let key = persist_key(&self.db, file);
        if self.map_if_newer(&path, key, started, true) {
            return false;
        }
        // One build at a time across processes; one that waited maps what the other wrote.
        let _lock = BuildLock::acquire(&self.db, BUILD_WAIT);
        if _lock.waited && self.map_if_newer(&path, key, started, false) {
            return false;
        }
        if compaction && test_hook_slow_compaction(started, give_up) {
            return true;
        }
        match load_unless(&self.db, give_up) {
            Ok(snap) => {
                let built = started.elapsed();
                let snap = self.share(snap, key, &path);
                log::info!(
                    "rank index ready generation={} terms={} postings={} heap_mb={} ms={}{}",
                    snap.generation(),
                    snap.term_count(),
                    snap.posting_count(),
                    snap.heap_bytes() / (1 << 20),
                    built.as_millis(),
                    if snap.is_mapped() { format!(" written to {} and mapped", path.display()) } else { String::new() }
                );
                self.install(file, Arc::new(snap));
                crate::sys::trim_heap();
            }
            Err(Error::Abandoned) => {
                log::info!("rank index: low-priority compaction given up after {} ms", started.elapsed().as_millis());
                return true;
            }
            Err(e) => {
                log::warn!("rank index not built, SQL ranking until the next write: {e}");
                let generation = current_generation(&self.db).unwrap_or(i64::MIN);
                *self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((file, generation));
            }
        }
        false
    }
}

impl RankIndex {
    /// Makes `snap` (of database file `file`) the current snapshot, and remembers the
    /// database's instance with it.
    fn install(&self, file: u64, snap: Arc<Snapshot>) {
        // A new base: its delta starts empty (the writer's backpressure lifts until readers apply more).
        crate::obs::metrics::global().set_delta_pressure(0, thresholds::get().compact_rows);
        *self.instance.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = read_instance(&self.db);
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((file, snap));
    }

    /// The database file was replaced (a file renamed over the path: `videofeed
    /// replica`'s swaps, a restored copy). When the new file continues the history of
    /// the one the snapshot was built from (the same database instance, and its change
    /// log holds every generation since the snapshot's), the snapshot stays and the
    /// delta brings it up to date from the log, as after a write: no rebuild (5.8 s of
    /// CPU at 1M videos, SQL answering meanwhile). Otherwise the index is built again.
    pub fn follow_replaced_file(self: &Arc<Self>) {
        if !self.enabled {
            return;
        }
        let file = file_id(&self.db);
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some((built_from, snap)) = current else {
            self.refresh();
            return;
        };
        if built_from == file {
            return;
        }
        let ours = *self.instance.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let continues = ours.is_some()
            && crate::store::db::replaced_under_its_wal(&self.db).is_none()
            && read_instance(&self.db) == ours
            && log_reaches(&self.db, snap.generation());
        if !continues {
            log::info!("rank index: the new database file does not continue the indexed one's history; building it");
            self.refresh();
            return;
        }
        let mut slot = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_some_and(|(f, s)| *f == built_from && Arc::ptr_eq(s, &snap)) {
            *slot = Some((file, Arc::clone(&snap)));
            drop(slot);
            crate::obs::metrics::global().index_carried_over();
            log::info!(
                "rank index: the new database file continues the indexed one's history; kept the index \
                 (generation {}), the change log brings it up to date",
                snap.generation()
            );
        }
    }

    /// Maps the index file at `path` when it is of this database (`key`), newer than
    /// the snapshot we have (or we have none), and the change log reaches from its
    /// generation; true when it did. `say_why` logs why a file was not usable.
    fn map_if_newer(&self, path: &Path, key: u64, started: Instant, say_why: bool) -> bool {
        let ours = self.snapshot().map(|s| s.generation());
        let distrusted = *self.distrusted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let on_disk = std::fs::File::open(path).ok().and_then(|f| {
            let identity = crate::sys::file_identity(&f.metadata().ok()?);
            Some((identity, crate::sys::stamp_of(&f).ok()?.1))
        });
        if distrusted.is_some() && on_disk == distrusted {
            if say_why {
                log::info!("rank index file {} not used: it was found damaged; building it again", path.display());
            }
            return false;
        }
        // The checksum is verified on another thread, after the file is in use: at 10M
        // videos reading the whole file took most of the start (docs/benchmarks.md §24).
        // A mismatch marks the mapping damaged, and the next answer lets go of it
        // (`drop_if_damaged`) and builds the index again.
        match persist::load_unverified(path, key) {
            Ok(Some(snap))
                if ours.is_none_or(|g| snap.generation() > g) && log_reaches(&self.db, snap.generation()) =>
            {
                log::info!(
                    "rank index ready generation={} terms={} postings={} heap_mb={} mapped from {} ms={}",
                    snap.generation(),
                    snap.term_count(),
                    snap.posting_count(),
                    snap.heap_bytes() / (1 << 20),
                    path.display(),
                    started.elapsed().as_millis()
                );
                let snap = Arc::new(snap);
                self.install(file_id(&self.db), Arc::clone(&snap));
                let (shown, verifying) = (path.display().to_string(), Instant::now());
                let spawned =
                    std::thread::Builder::new().name("rank-verify".into()).spawn(move || {
                        match persist::verify(&snap) {
                            Ok(()) => log::info!(
                                "rank index file {shown}: checksum verified in {} ms",
                                verifying.elapsed().as_millis()
                            ),
                            Err(why) => log::error!("rank index file {shown}: {why}; it will be built again"),
                        }
                    });
                if let Err(e) = spawned {
                    log::warn!("rank index file {}: its checksum is not verified ({e})", path.display());
                }
                true
            }
            Ok(_) => false,
            Err(why) => {
                if say_why {
                    log::info!("rank index file {} not used: {why}; building it again", path.display());
                }
                false
            }
        }
    }

    /// At most once a second: when the index file on disk is not the one this process
    /// maps (another process built or compacted it, or this one could not write its
    /// own), maps it in the background if it is of this database, at our generation or
    /// newer, and the change log reaches from it. So processes converge on one file:
    /// none keeps a copy of its own, or a deleted file, mapped.
    fn look_for_newer_file(self: &Arc<Self>) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_look_ms.load(Ordering::Relaxed);
        if now < next
            || self
                .next_look_ms
                .compare_exchange(next, now + LOOK_EVERY_MS, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            || self.building.load(Ordering::SeqCst)
        {
            return;
        }
        let path = persist::path_for(&self.db);
        let Ok(meta) = std::fs::metadata(&path) else { return };
        let identity = crate::sys::file_identity(&meta);
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some((_, ours)) = current else { return };
        if ours.file_identity() == Some(identity) {
            return;
        }
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let seen = (identity, mtime.map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0)));
        {
            let mut looked = self.looked_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *looked == Some(seen) {
                return;
            }
            *looked = Some(seen);
        }
        if self.building.swap(true, Ordering::SeqCst) {
            return;
        }
        let index = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("rank-index-adopt".into()).spawn(move || {
            let _building = Building(&index.building);
            index.adopt(&path);
        });
        if let Err(e) = spawned {
            log::debug!("cannot start the index file check: {e}");
            self.building.store(false, Ordering::SeqCst);
        }
    }

    /// Maps the index file at `path` in place of ours when it is of this database, at
    /// our generation or newer, and the change log reaches from it.
    fn adopt(&self, path: &Path) {
        let started = Instant::now();
        let file = file_id(&self.db);
        let key = persist_key(&self.db, file);
        let ours = self.snapshot().map(|s| s.generation());
        match persist::load(path, key) {
            Ok(Some(snap))
                if ours.is_none_or(|g| snap.generation() >= g) && log_reaches(&self.db, snap.generation()) =>
            {
                log::info!(
                    "rank index: mapped {} (generation {}), the file another process wrote, in place of this process's \
                     (generation {}) in {} ms",
                    path.display(),
                    snap.generation(),
                    ours.map_or_else(|| "none".to_owned(), |g| g.to_string()),
                    started.elapsed().as_millis()
                );
                let newer = self
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .is_none_or(|(f, s)| *f != file || s.generation() <= snap.generation());
                if newer {
                    self.install(file, Arc::new(snap));
                }
            }
            Ok(_) => {}
            Err(why) => log::debug!("rank index file {} not adopted: {why}", path.display()),
        }
    }
}

/// The database's random `instance` (`videofeed_meta`), if it has one.
fn read_instance(db: &Path) -> Option<i64> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(db, flags).ok().and_then(|c| {
        c.query_row("SELECT value FROM videofeed_meta WHERE key = 'instance'", [], |r| r.get::<_, i64>(0)).ok()
    })
}

/// What an index file is checked against: the database file's identity (`file`, its
/// inode) mixed with the database's own random `instance` (`videofeed_meta`, set
/// by the first writer that opens it). The inode alone is not enough: a database
/// deleted and imported again often gets the freed inode back, at the same
/// generation, and must not adopt the old file's index. `file` alone for a
/// database no writer has opened since the instance was introduced.
fn persist_key(db: &std::path::Path, file: u64) -> u64 {
    if crate::store::db::replaced_under_its_wal(db).is_some() {
        return file;
    }
    match read_instance(db) {
        Some(i) => file ^ u64::from_ne_bytes(i.to_ne_bytes()).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29),
        None => file,
    }
}

/// Test hook: the index builder panics once (`VIDEOFEED_TEST_PANIC_INDEX_BUILD=once`).
#[cfg(feature = "test-hooks")]
static PANICKED_ONCE: AtomicBool = AtomicBool::new(false);
