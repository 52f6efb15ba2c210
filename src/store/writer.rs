//! The serving process's single writer: one thread owns the only read-write
//! connection; request workers hand it writes through a bounded queue and wait.
//!
//! Group commit: the thread takes every job queued when it wakes (up to
//! [`MAX_GROUP_ROWS`] rows) into one transaction, a savepoint per job, and
//! answers each job only after the commit. A full queue is refused at once
//! ([`SubmitError::QueueFull`], a 503 with Retry-After) rather than blocking a
//! worker; a failed commit answers every job in the group with the error and
//! leaves no partial rows. Validation happens before a job is queued, so a
//! bad line never reaches the transaction.

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::store::import::{self, Applied, Op, Writer};

/// Rows one group commit takes at most.
pub const MAX_GROUP_ROWS: usize = 50_000;

/// A successful write: what it did and how long the commit took.
#[derive(Debug, Clone)]
pub struct Done {
    /// Rows written and regions touched.
    pub applied: Applied,
    /// From the start of the transaction to the end of the commit.
    pub commit: Duration,
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
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::QueueFull => write!(f, "the write queue is full"),
            SubmitError::Stopped => write!(f, "the writer is stopping"),
            SubmitError::Failed(e) => write!(f, "the write failed and was rolled back: {e}"),
        }
    }
}

impl std::error::Error for SubmitError {}

struct Job {
    op: Op,
    reply: mpsc::Sender<Result<Done, SubmitError>>,
}

/// A cloneable handle to the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::SyncSender<Job>,
}

impl WriterHandle {
    /// Opens `db` read-write and starts the writer thread with a queue of `capacity` jobs.
    ///
    /// # Errors
    /// [`import::Error`] when the database cannot be opened for writing.
    pub fn start(db: &Path, capacity: usize) -> Result<WriterHandle, import::Error> {
        let writer = Writer::open(db)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity.max(1));
        crate::obs::metrics::global().set_queue_capacity(capacity.max(1));
        thread::Builder::new().name("writer".into()).spawn(move || run(writer, &rx)).map_err(import::Error::Read)?;
        Ok(WriterHandle { tx })
    }

    /// Queues `op` and waits for its commit (or its error).
    ///
    /// # Errors
    /// [`SubmitError`]; in every case nothing of `op` was written.
    pub fn submit(&self, op: Op) -> Result<Done, SubmitError> {
        self.submit_returning(op).map_err(|(e, _)| e)
    }

    /// As [`WriterHandle::submit`], handing `op` back when it was not queued (a full
    /// queue), so a background job can wait and retry instead of losing its results.
    ///
    /// # Errors
    /// [`SubmitError`] and, when the op never reached the queue, the op.
    pub fn submit_returning(&self, op: Op) -> Result<Done, (SubmitError, Option<Op>)> {
        let (reply, answer) = mpsc::channel();
        // Counted before the send so the writer's decrement can never come first.
        let m = crate::obs::metrics::global();
        m.queued();
        if let Err(e) = self.tx.try_send(Job { op, reply }) {
            m.dequeued();
            return Err(match e {
                mpsc::TrySendError::Full(job) => (SubmitError::QueueFull, Some(job.op)),
                mpsc::TrySendError::Disconnected(job) => (SubmitError::Stopped, Some(job.op)),
            });
        }
        answer.recv().unwrap_or(Err(SubmitError::Stopped)).map_err(|e| (e, None))
    }
}

fn run(mut writer: Writer, rx: &mpsc::Receiver<Job>) {
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
        m.commit(commit, rows, outcome.is_ok());
        match outcome {
            Ok(results) => {
                log::debug!("group commit jobs={} rows={rows} us={}", group.len(), commit.as_micros());
                for (job, result) in group.into_iter().zip(results) {
                    let answer = result.map(|applied| Done { applied, commit }).map_err(SubmitError::Failed);
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                log::error!("group commit of {} jobs failed, nothing written: {e}", group.len());
                for job in group {
                    let _ = job.reply.send(Err(SubmitError::Failed(e.to_string())));
                }
            }
        }
    }
}
