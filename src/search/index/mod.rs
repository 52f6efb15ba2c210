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

pub mod build;
mod load;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::Connection;

pub use build::{BuildError, Builder, Instance, MAX_REGIONS, MAX_ROWID};
use load::{current_generation, load};
pub use snapshot::{Hidden, Hit, Postings, Snapshot};

use super::typo::Vocabulary;
use super::{Error, ThumbnailPolicy, sql};
use crate::store::db::file_id;

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
    /// The (file, generation) whose build failed: not tried again until either moves.
    failed: Mutex<Option<(u64, i64)>>,
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

    /// The snapshot of the file `file` (see [`file_id`]) at `generation`; otherwise
    /// None, and a rebuild starts (when the index is enabled).
    pub(super) fn snapshot_at(self: &Arc<Self>, file: u64, generation: i64) -> Option<Arc<Snapshot>> {
        if !self.enabled {
            return None;
        }
        let current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match current {
            Some((built_from, snap)) if built_from == file && snap.generation() == generation => Some(snap),
            _ => {
                let failed = *self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if failed != Some((file, generation)) {
                    self.refresh();
                }
                None
            }
        }
    }

    /// Builds the snapshot now, on this thread (benchmarks, tools).
    ///
    /// # Errors
    /// [`Error`] when the database cannot be read.
    pub fn build_now(&self) -> Result<(), Error> {
        let file = file_id(&self.db);
        let snap = load(&self.db)?;
        *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((file, Arc::new(snap)));
        Ok(())
    }

    /// Starts a background rebuild unless one is running (or the index is disabled).
    /// Queries are ranked by SQL meanwhile, with the same answers.
    pub fn refresh(self: &Arc<Self>) {
        if !self.enabled || self.building.swap(true, Ordering::SeqCst) {
            return;
        }
        let index = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("rank-index".into()).spawn(move || {
            let _building = Building(&index.building);
            // A panic in the loader must not leave the flag set (no rebuild ever again).
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index.rebuild_until_current()));
            if outcome.is_err() {
                log::error!("rank index builder panicked; SQL ranking until the next write");
                let failed = (file_id(&index.db), current_generation(&index.db).unwrap_or(i64::MIN));
                *index.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(failed);
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start the rank index builder: {e}");
            self.building.store(false, Ordering::SeqCst);
        }
    }

    /// Builds snapshots until one matches the database (the builder thread's loop).
    fn rebuild_until_current(&self) {
        loop {
            let started = Instant::now();
            let file = file_id(&self.db);
            #[cfg(feature = "test-hooks")]
            if std::env::var_os("VIDEOFEED_TEST_PANIC_INDEX_BUILD").is_some_and(|v| v == "once")
                && !PANICKED_ONCE.swap(true, Ordering::SeqCst)
            {
                crate::sys::test_hook_panic("rank index build");
            }
            match load(&self.db) {
                Ok(snap) => {
                    log::info!(
                        "rank index ready generation={} terms={} postings={} heap_mb={} ms={}",
                        snap.generation(),
                        snap.term_count(),
                        snap.posting_count(),
                        snap.heap_bytes() / (1 << 20),
                        started.elapsed().as_millis()
                    );
                    let generation = snap.generation();
                    *self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((file, Arc::new(snap)));
                    crate::sys::trim_heap();
                    // Writes during the build: go again, or stop when up to date. Under a
                    // steady stream of writes, rest as long as a build took between builds,
                    // so rebuilding never takes more than half a core (SQL answers meanwhile).
                    if file_id(&self.db) == file && current_generation(&self.db).is_ok_and(|g| g == generation) {
                        return;
                    }
                    std::thread::sleep(started.elapsed());
                }
                Err(e) => {
                    log::warn!("rank index not built, SQL ranking until the next write: {e}");
                    let generation = current_generation(&self.db).unwrap_or(i64::MIN);
                    *self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((file, generation));
                    return;
                }
            }
        }
    }
}

/// Test hook: the index builder panics once (`VIDEOFEED_TEST_PANIC_INDEX_BUILD=once`).
#[cfg(feature = "test-hooks")]
static PANICKED_ONCE: AtomicBool = AtomicBool::new(false);
