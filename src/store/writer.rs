//! The serving process's single writer: one thread owns the only read-write
//! connection; request workers hand it writes through a bounded queue and go
//! on (the write API's answer is sent by the poller when the writer wakes it:
//! [`WriterThread::enqueue_waking`]); jobs and tools wait for their outcome.
//!
//! Group commit: the thread takes every job queued when it wakes (up to
//! [`MAX_GROUP_ROWS`] rows) into one transaction, a savepoint per job, and
//! answers each job only after the commit. A full queue is refused at once
//! ([`SubmitError::QueueFull`], a 503 with Retry-After) rather than blocking a
//! worker; a failed commit answers every job in the group with the error and
//! leaves no partial rows. Validation happens before a job is queued, so a
//! bad line never reaches the transaction. The thread runs at a slightly lower
//! CPU priority than the request workers ([`WRITER_NICE`]): a write flood slows
//! itself, not the feed.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, DropBehavior, Transaction, TransactionBehavior};

use super::job_tables::{ChannelRecord, ThumbnailCheck, write_channels, write_thumbnail_checks};
use super::video::Video;
use super::{Counts, Error, Store, retry_busy, upsert_rows};

/// One write handed to the writer thread, applied by [`Store::apply_group`].
#[derive(Debug, Clone)]
pub enum Op {
    /// Upsert these (already validated) videos.
    Upsert(Vec<Video>),
    /// Delete the video with this id.
    Delete(String),
    /// Delete these videos together (one savepoint: all or none); ids with no video
    /// are listed in [`Applied::missing`].
    DeleteMany(Vec<String>),
    /// Change the named fields of the video `id` ([`super::video::apply_patch`]);
    /// [`Applied::missing`] holds the id when there is no such video.
    Patch {
        /// The video to change.
        id: String,
        /// The fields to change and their new values.
        fields: serde_json::Map<String, serde_json::Value>,
        /// How dates in `fields` are read.
        rules: super::video::ParseRules,
    },
    /// Record thumbnail checks (`videofeed check-thumbnails`).
    Thumbnails(Vec<ThumbnailCheck>),
    /// Record channel metadata (`videofeed enrich-channels`).
    Channels(Vec<ChannelRecord>),
}

impl Op {
    /// Rows this op writes, for group-commit bounds.
    pub fn rows(&self) -> usize {
        match self {
            Op::Upsert(v) => v.len(),
            Op::Delete(_) | Op::Patch { .. } => 1,
            Op::DeleteMany(ids) => ids.len(),
            Op::Thumbnails(c) => c.len(),
            Op::Channels(c) => c.len(),
        }
    }
}

/// What one op did: its counts and the regions whose feeds it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows written.
    pub counts: Counts,
    /// Regions whose feeds changed (`GLOBAL` included), sorted, unique: a new video's
    /// region, an updated video's old and new one, a deleted video's; none for a
    /// video sent again unchanged.
    pub regions: Vec<String>,
    /// Ids the op named that have no video (a delete or a patch of nothing).
    pub missing: Vec<String>,
    /// Why a patch was refused when the row it makes is not a valid video (nothing written).
    pub refused: Option<String>,
}

impl Store {
    /// Applies `ops` as one group commit: one transaction, a savepoint per op.
    /// An op that fails is rolled back alone and answered with its error; the
    /// others commit together. Waits (with retries) while another process holds
    /// the write lock, up to about 30 s.
    ///
    /// # Errors
    /// [`Error::Sql`] when the transaction cannot start or commit: then nothing
    /// of any op was written, and every op should be answered with the error.
    pub fn apply_group(&mut self, ops: &[&Op]) -> Result<Vec<Result<Applied, String>>, Error> {
        // rusqlite's guards: whatever error leaves this function (a failed RELEASE or
        // COMMIT included), the dropped guard rolls back, so the connection is never
        // left inside a transaction.
        let conn = &self.conn;
        let mut tx = retry_busy(|| Ok(Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?))?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let mut sp = tx.savepoint()?;
            sp.set_drop_behavior(DropBehavior::Rollback);
            match apply_op(&sp, op) {
                Ok(applied) => {
                    release(sp)?;
                    results.push(Ok(applied));
                }
                Err(e) => {
                    sp.rollback()?;
                    results.push(Err(e.to_string()));
                }
            }
        }
        tx.set_drop_behavior(DropBehavior::Rollback);
        tx.commit()?;
        Ok(results)
    }
}

/// Releases a savepoint. Test hook `VIDEOFEED_TEST_FAIL_RELEASE=once`: the first
/// release runs `RELEASE` of a savepoint that does not exist instead (a real SQLite
/// error), to prove the guards leave no transaction open.
fn release(sp: rusqlite::Savepoint<'_>) -> rusqlite::Result<()> {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("VIDEOFEED_TEST_FAIL_RELEASE").is_some_and(|v| v == "once")
        && !FAILED_RELEASE.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        sp.execute_batch("RELEASE no_such_savepoint")?;
    }
    sp.commit()
}

/// Test hook state: the release failure happens once.
#[cfg(feature = "test-hooks")]
static FAILED_RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn apply_op(conn: &Connection, op: &Op) -> Result<Applied, Error> {
    let mut regions: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    let counts = match op {
        Op::Upsert(videos) => upsert_rows(conn, videos, None, Some(&mut regions))?,
        Op::Delete(id) => delete_ids(conn, std::slice::from_ref(id), &mut regions, &mut missing)?,
        Op::DeleteMany(ids) => delete_ids(conn, ids, &mut regions, &mut missing)?,
        Op::Patch { id, fields, rules } => match super::stored_video(conn, id)? {
            None => {
                missing.push(id.clone());
                Counts::default()
            }
            Some(base) => match super::video::apply_patch(&base, fields, *rules) {
                Ok(video) => upsert_rows(conn, &[video], None, Some(&mut regions))?,
                Err(why) => {
                    return Ok(Applied { refused: Some(why), ..Applied::default() });
                }
            },
        },
        // Job results touch no video rows; the triggers purge nothing but move the data version.
        Op::Thumbnails(checks) => Counts { updated: write_thumbnail_checks(conn, checks)?, ..Counts::default() },
        Op::Channels(channels) => Counts { updated: write_channels(conn, channels)?, ..Counts::default() },
    };
    regions.sort_unstable();
    regions.dedup();
    Ok(Applied { counts, regions, missing, refused: None })
}

/// Deletes the videos `ids`, adding their regions to `regions` and the ids with no
/// video to `missing`.
fn delete_ids(
    conn: &Connection,
    ids: &[String],
    regions: &mut Vec<String>,
    missing: &mut Vec<String>,
) -> Result<Counts, Error> {
    let mut delete = conn.prepare_cached("DELETE FROM videos WHERE id = ?1 RETURNING region")?;
    let mut deleted = 0u64;
    for id in ids {
        match delete.query_row([id], |r| r.get::<_, String>(0)) {
            Ok(region) => {
                regions.push(region);
                deleted += 1;
            }
            Err(rusqlite::Error::QueryReturnedNoRows) => missing.push(id.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Counts { deleted, ..Counts::default() })
}

/// Rows one group commit takes at most (a single larger job goes alone). Every
/// reader that next answers through the rank index first brings its delta up to the
/// commit (about 6 µs a row at 1M videos), so smaller groups make shorter stalls:
/// at 50,000 a flood of posters held readers up to 200 ms at a time, at 5,000 about
/// 30 ms (docs/benchmarks.md §12).
pub const MAX_GROUP_ROWS: usize = 5_000;

/// The writer thread's nice value: under a flood of writes on a busy box, reads
/// come first. At 3 its CFS weight is about half a worker's: at 1M videos on 2 cores
/// with 8 readers saturating the feed, 64 posters got 3,118 videos/s committed with
/// the feed's p99 at 1.72x its p99 alone (30 s; 1,869/s and 2.11x over 60 s with the
/// backpressure below); at 0 it was 2.7-4.7x, at 10 writes starved (under 400
/// videos/s, answers past the 30 s wait). An idle box gives the writer every core.
pub const WRITER_NICE: i32 = 3;

/// A successful write: what it did and how long the commit took.
#[derive(Debug, Clone)]
pub struct Done {
    /// Rows written and regions touched.
    pub applied: Applied,
    /// From the start of the transaction to the end of the commit.
    pub commit: Duration,
    /// When the commit ended (the write was durable).
    pub committed: Instant,
}

/// Why a write was not done (nothing of it was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: retry shortly.
    QueueFull,
    /// The writer thread is gone (stopping).
    Stopped,
    /// The transaction failed (busy past the retries, disk full, I/O error).
    Failed(String),
    /// No answer from the writer within the wait: the write is still queued and will
    /// be committed or fail later; its outcome shows in the next read.
    TimedOut(Duration),
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::QueueFull => write!(f, "the write queue is full"),
            SubmitError::Stopped => write!(f, "the writer is stopping"),
            SubmitError::Failed(e) => write!(f, "the write failed and was rolled back: {e}"),
            SubmitError::TimedOut(d) => write!(
                f,
                "the writer did not answer within {} ms; the write is still queued (read to see whether it landed)",
                d.as_millis()
            ),
        }
    }
}

impl std::error::Error for SubmitError {}

/// Called by the writer thread right after it has sent an outcome (wakes the poller).
pub type Wake = std::sync::Arc<dyn Fn() + Send + Sync>;

struct Job {
    op: Op,
    reply: mpsc::Sender<Result<Done, SubmitError>>,
    wake: Option<Wake>,
}

impl Job {
    /// Sends the job's outcome, then wakes whoever waits for it without blocking.
    fn answer(self, outcome: Result<Done, SubmitError>) {
        let _ = self.reply.send(outcome);
        if let Some(wake) = self.wake {
            wake();
        }
    }
}

/// Where a queued op's outcome arrives.
pub type Outcome = mpsc::Receiver<Result<Done, SubmitError>>;

/// A cloneable handle to the writer thread.
#[derive(Clone)]
pub struct WriterThread {
    tx: mpsc::SyncSender<Job>,
}

impl WriterThread {
    /// Opens `db` read-write and starts the writer thread with a queue of `capacity` jobs.
    ///
    /// # Errors
    /// [`Error`] when the database cannot be opened for writing.
    pub fn start(db: &Path, capacity: usize) -> Result<WriterThread, Error> {
        let writer = Store::open(db)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity.max(1));
        crate::obs::metrics::global().set_queue_capacity(capacity.max(1));
        thread::Builder::new().name("writer".into()).spawn(move || run(writer, &rx)).map_err(Error::Read)?;
        Ok(WriterThread { tx })
    }

    /// Queues `op` and waits for its commit (or its error).
    ///
    /// # Errors
    /// [`SubmitError`]; in every case nothing of `op` was written.
    pub fn submit(&self, op: Op) -> Result<Done, SubmitError> {
        self.submit_returning(op).map_err(|(e, _)| e)
    }

    /// As [`WriterThread::submit`], handing `op` back when it was not queued (a full
    /// queue), so a background job can wait and retry instead of losing its results.
    ///
    /// # Errors
    /// [`SubmitError`] and, when the op never reached the queue, the op.
    pub fn submit_returning(&self, op: Op) -> Result<Done, (SubmitError, Option<Op>)> {
        let answer = self.enqueue(op, None)?;
        answer.recv().unwrap_or(Err(SubmitError::Stopped)).map_err(|e| (e, None))
    }

    /// Queues `op` without waiting for it: its outcome arrives on the receiver after
    /// the commit, and `wake` is called right after (the write API: the poller sends
    /// the answer, so no worker waits for a commit).
    ///
    /// # Errors
    /// [`SubmitError::QueueFull`] (nothing queued: answer 503 + Retry-After) or
    /// [`SubmitError::Stopped`].
    pub fn enqueue_waking(&self, op: Op, wake: Wake) -> Result<Outcome, SubmitError> {
        self.enqueue(op, Some(wake)).map_err(|(e, _)| e)
    }

    /// Queues `op`; the receiver gets its outcome after the commit.
    fn enqueue(&self, op: Op, wake: Option<Wake>) -> Result<Outcome, (SubmitError, Option<Op>)> {
        let (reply, answer) = mpsc::channel();
        // Counted before the send so the writer's decrement can never come first.
        let m = crate::obs::metrics::global();
        m.queued();
        if let Err(e) = self.tx.try_send(Job { op, reply, wake }) {
            m.dequeued();
            return Err(match e {
                mpsc::TrySendError::Full(job) => (SubmitError::QueueFull, Some(job.op)),
                mpsc::TrySendError::Disconnected(job) => (SubmitError::Stopped, Some(job.op)),
            });
        }
        Ok(answer)
    }
}

fn run(mut writer: Store, rx: &mpsc::Receiver<Job>) {
    crate::sys::set_thread_nice(WRITER_NICE);
    let m = crate::obs::metrics::global();
    while let Ok(first) = rx.recv() {
        m.dequeued();
        let mut rows = first.op.rows();
        let mut group = vec![first];
        while rows < MAX_GROUP_ROWS {
            match rx.try_recv() {
                Ok(job) => {
                    m.dequeued();
                    rows += job.op.rows();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let ops: Vec<&Op> = group.iter().map(|j| &j.op).collect();
        let outcome = writer.apply_group(&ops);
        let commit = started.elapsed();
        let committed = Instant::now();
        m.commit(commit, rows, outcome.is_ok());
        let ok = outcome.is_ok();
        match outcome {
            Ok(results) => {
                log::debug!("group commit jobs={} rows={rows} us={}", group.len(), commit.as_micros());
                for (job, result) in group.into_iter().zip(results) {
                    job.answer(result.map(|applied| Done { applied, commit, committed }).map_err(SubmitError::Failed));
                }
            }
            Err(e) => {
                log::error!("group commit of {} jobs failed, nothing written: {e}", group.len());
                for job in group {
                    job.answer(Err(SubmitError::Failed(e.to_string())));
                }
            }
        }
        if ok {
            pace(commit);
        }
    }
}

/// Longest pause between two group commits.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Backpressure from the rank index: past twice its compaction point the delta
/// outgrows the compaction (every query merges more of it, and the next rebuild has
/// more to fold), so the writer pauses after each commit in proportion: a commit's
/// time for every compaction point of excess, at most [`MAX_PAUSE`]. Queued writes
/// wait longer (a flood slows itself); none is refused for it. The delta's size is
/// what this process's readers last applied (`obs::metrics::delta_pressure`).
fn pace(commit: Duration) {
    let m = crate::obs::metrics::global();
    let (rows, point) = m.delta_pressure();
    if point == 0 || rows <= point.saturating_mul(2) {
        return;
    }
    let excess = u32::try_from((rows - point * 2) / point + 1).unwrap_or(u32::MAX);
    let pause = commit.saturating_mul(excess).min(MAX_PAUSE);
    m.writer_paused(pause);
    thread::sleep(pause);
}
