//! The responder process: find or bind the listener (`listener`), run the
//! poller (`poller`) and a fixed pool of worker threads (`pool`), start the
//! shared state (rank index, cache, health, writer), and stop gracefully on a
//! signal ([`install_signal_handlers`]).
//!
//! Listener: a listening socket inherited on fd 0 (how LiteSpeed, lighttpd
//! and spawn-fcgi start FastCGI apps) always wins, and then nothing is bound
//! or unlinked. Otherwise the configured Unix socket (a stale file replaced,
//! mode 0660) or TCP address is bound; the Unix socket file is removed at stop.
//!
//! Threads: one poller accepts connections, watches every connection not in
//! service with `poll(2)` and reads it without blocking, assembling its
//! FastCGI request; a complete request goes to the `workers` worker threads
//! through a queue. A worker owns one read-only SQLite connection, answers the
//! request, writes what the socket takes now, and gives the connection back
//! to the poller, which sends any rest and answers what needs no worker
//! (management records, early refusals): no write ever blocks a thread. So neither
//! idle connections (kept alive by the web server between requests) nor
//! clients that send part of a request ever hold a worker, however many there
//! are (up to [`MAX_CONNS`]; past that the kernel backlog queues). Accept
//! errors back off and retry, never stop the loop. A worker or poller that
//! dies is replaced.
//!
//! Stop: SIGTERM, SIGUSR1 (LiteSpeed sends both) and SIGINT set a flag.
//! The poller stops accepting, still serves requests already on their way
//! (and reads one being received to its end), closes idle kept-alive
//! connections; workers finish the requests in flight, and the process exits 0
//! within `shutdown_grace`. SIGHUP is ignored.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod listener;
mod poller;
mod pool;

use std::fmt;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// For processes videofeed supervises (the replica's Litestream follower): the child gets SIGTERM when we die.
pub use crate::sys::die_with_parent;
use listener::{describe, open_listener};
pub use poller::MAX_CONNS;
use poller::{Connection, Context, Job, Returns, poller};
use pool::{Counters, worker};

use crate::config::Config;
use crate::fcgi::conn::Limits;
use crate::http::cache::Cache;
use crate::http::{Admin, Gate, Handler, Shared};
use crate::search::{self, RankIndex, Reader};
use crate::store::writer::WriterThread;
use crate::sys;

/// Why the responder could not start.
#[derive(Debug)]
pub enum Error {
    /// The database is missing, unreadable or not a videofeed database.
    Database(search::Error),
    /// No listener: fd 0 is not a listening socket and none was configured.
    NoListener,
    /// Binding the configured socket failed.
    Bind {
        /// The socket path or address.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// Installing the signal handlers failed.
    Signals(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database(e) => write!(f, "{e}"),
            Error::NoListener => write!(
                f,
                "fd 0 is not a listening socket and no socket was configured: pass --socket PATH or --listen HOST:PORT (or VIDEOFEED_SOCKET / VIDEOFEED_LISTEN)"
            ),
            Error::Bind { what, source } => write!(f, "cannot listen on {what}: {source}"),
            Error::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Database(e) => Some(e),
            Error::Bind { source, .. } | Error::Signals(source) => Some(source),
            Error::NoListener => None,
        }
    }
}

/// Installs SIGTERM, SIGUSR1 and SIGINT as "stop" on `stop`, and ignores SIGHUP.
///
/// # Errors
/// [`Error::Signals`] if a handler cannot be registered.
pub fn install_signal_handlers(stop: &Arc<AtomicBool>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    for sig in [SIGTERM, SIGUSR1, SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(stop)).map_err(Error::Signals)?;
    }
    signal_hook::flag::register(SIGHUP, Arc::new(AtomicBool::new(false))).map_err(Error::Signals)?;
    Ok(())
}

/// Freed heap memory glibc keeps beyond this is given back to the system.
const HEAP_FREE_KEPT: u64 = 32 << 20;
/// How often the heap trimmer looks.
const HEAP_TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Every [`HEAP_TRIM_EVERY`], gives freed heap memory back to the system when glibc
/// holds more than [`HEAP_FREE_KEPT`] of it. The rank index's memo evicts merges of
/// megabytes and queries allocate merge buffers of that size while they run; glibc
/// keeps what they free (its mmap threshold rises with the largest chunk freed), so
/// resident memory settled at the peak (at 3M videos: 539 MB, 410 after a trim;
/// docs/benchmarks.md §20). glibc still counts given-back chunks as free, so once
/// over the threshold every round trims: 13-15 ms when there is memory to give back,
/// about 0.5 ms when there is none. Every few seconds, not per query: a fixed mmap
/// threshold (per-allocation give-back) was tried and cost a fifth of the throughput
/// in page faults.
fn start_heap_trimmer(stop: &Arc<AtomicBool>) {
    let stop = Arc::clone(stop);
    let spawned = std::thread::Builder::new().name("heap-trim".into()).spawn(move || {
        let mut waited = std::time::Duration::ZERO;
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(250));
            waited += std::time::Duration::from_millis(250);
            if waited < HEAP_TRIM_EVERY {
                continue;
            }
            waited = std::time::Duration::ZERO;
            if let Some((_, free)) = sys::heap_stats().filter(|(_, free)| *free > HEAP_FREE_KEPT) {
                let started = std::time::Instant::now();
                sys::trim_heap();
                let after = sys::heap_stats().map_or(0, |(_, free)| free);
                log::debug!("heap trim: {free} bytes free before, {after} after, {:?}", started.elapsed());
            }
        }
    });
    if let Err(e) = spawned {
        log::warn!("cannot start the heap trimmer ({e}); freed memory stays with the process");
    }
}

/// Watches the database's directory so a file renamed over it (`videofeed replica`,
/// a restored backup) is noticed at once: the new file's rank index starts building
/// and workers look at the file on their next request.
fn start_file_watcher(config: &Config, index: &Arc<RankIndex>, epoch: &Arc<AtomicU64>, stop: &Arc<AtomicBool>) {
    let db = config.db.clone();
    let dir = db.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new(".")).to_path_buf();
    let Some(name) = db.file_name().map(std::ffi::OsStr::to_os_string) else { return };
    let (index, epoch, stop) = (Arc::clone(index), Arc::clone(epoch), Arc::clone(stop));
    let spawned = std::thread::Builder::new().name("file-watch".into()).spawn(move || {
        let mut last = crate::store::db::file_id(&db);
        let watched = sys::watch_file(&dir, &name, &stop, || {
            let now = crate::store::db::file_id(&db);
            if now != 0 && now != last {
                last = now;
                if let Some(reason) = crate::store::db::replaced_under_its_wal(&db) {
                    log::error!("database file replaced unsafely; not building its rank index: {reason}");
                    return;
                }
                log::info!("database file replaced on disk ({}); following it with the rank index", db.display());
                index.follow_replaced_file();
                epoch.fetch_add(1, Ordering::Relaxed);
            }
        });
        if let Err(e) = watched {
            log::warn!("cannot watch {} ({e}); a replaced database file is noticed within 1 s", dir.display());
        }
    });
    if let Err(e) = spawned {
        log::warn!("cannot start the file watcher: {e}");
    }
}

/// Runs the responder until `stop` is set, then drains and returns.
///
/// # Errors
/// [`Error`] when the database cannot be served or no listener can be had;
/// nothing after start-up is fatal.
pub fn run(config: Arc<Config>, stop: Arc<AtomicBool>) -> Result<(), Error> {
    sys::limit_malloc_arenas();
    crate::search::index::snapshot::set_memo_budget(config.rank_memo_bytes);
    start_heap_trimmer(&stop);
    // Fail fast, with the file named, if the database is unusable.
    Reader::open_read_only(&config.db).map_err(Error::Database)?;
    // Shared by every worker whether or not the rank index is on (the typo
    // correction's vocabulary and the set of videos left out live there too).
    let index = if config.rank_index {
        RankIndex::with_policy(config.db.clone(), config.thumbnails.clone())
    } else {
        RankIndex::disabled(config.db.clone(), config.thumbnails.clone())
    };
    index.refresh();
    let (listener, owned_path) = open_listener(&config)?;
    listener.set_nonblocking().map_err(|source| Error::Bind { what: "the listener".into(), source })?;
    let listener = Arc::new(listener);

    // One writer thread for the write API and the in-serve thumbnail checker alike.
    let writer = (config.admin_token.is_some() || config.thumbnail_check_every.is_some())
        .then(|| {
            WriterThread::start(&config.db, config.write_queue)
                .map_err(|e| log::error!("cannot open the database for writing ({e}); writes answer 503"))
                .ok()
        })
        .flatten();
    // The writer's heartbeat: what replicas measure the age of their data by.
    if config.admin_token.is_some() {
        let (db, stop) = (config.db.clone(), Arc::clone(&stop));
        let spawned = std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
            crate::store::db::heartbeat_loop(&db, crate::store::db::HEARTBEAT_EVERY, &stop);
        });
        if let Err(e) = spawned {
            log::warn!("cannot start the heartbeat thread ({e}); replicas will report unknown staleness");
        }
    }
    let (wake_tx, wake_rx) =
        UnixStream::pair().map_err(|source| Error::Bind { what: "a wake-up socket pair".into(), source })?;
    for s in [&wake_tx, &wake_rx] {
        s.set_nonblocking(true).map_err(|source| Error::Bind { what: "a wake-up socket pair".into(), source })?;
    }
    let wake_tx = Arc::new(wake_tx);
    let admin = config.admin_token.as_ref().map(|token| {
        log::info!("write API on: POST/DELETE {} (bearer token required)", "/feed/admin/videos");
        let wake_poller = Arc::clone(&wake_tx);
        Arc::new(Admin {
            token: token.clone(),
            max_body: config.admin_max_body,
            writer: writer.clone(),
            wait: config.admin_wait,
            wake: Arc::new(move || {
                let _ = (&*wake_poller).write(&[1]);
            }),
        })
    });
    let checker = match (config.thumbnail_check_every, writer.clone()) {
        (Some(every), Some(writer)) => start_thumbnail_checker(&config, every, writer, Arc::clone(&stop)),
        _ => None,
    };
    let limits = Limits {
        max_params: config.max_params,
        max_stdin: config.max_stdin,
        max_conns: MAX_CONNS,
        max_reqs: config.workers.get(),
        max_param_count: config.max_param_count,
        request_timeout: config.request_timeout,
    };
    let served = Arc::new(AtomicU64::new(0));
    let cache = Arc::new(Cache::new(config.cache_bytes));
    crate::obs::metrics::global().set_workers(config.workers.get());
    let health = crate::store::facts::health(config.db.clone());
    if let Err(e) = crate::store::facts::start(&health, Arc::clone(&stop)) {
        crate::store::facts::read_now(&health);
        log::error!("cannot start the health thread ({e}); /feed/health reports the state at start");
    }
    let gate = Arc::new(Gate { admin: admin.clone() });
    let admission =
        Arc::new(crate::http::admission::Admission::for_database(config.lscache, &config.db, config.lscache_rate));
    let file_epoch = Arc::new(AtomicU64::new(0));
    start_file_watcher(&config, &index, &file_epoch, &stop);
    let shared = Shared { index, cache, health, admin, admission, file_epoch };
    let (work_tx, work_rx) = mpsc::channel::<Job>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (back_tx, back_rx) = mpsc::channel::<Connection>();
    let returns = Arc::new(Returns {
        back_rx: Mutex::new(back_rx),
        wake_rx,
        in_service: AtomicUsize::new(0),
        writes_in_service: AtomicUsize::new(0),
        stop_deadline: std::sync::OnceLock::new(),
    });
    let spawn = |n: usize| -> io::Result<JoinHandle<()>> {
        let (config, stop) = (Arc::clone(&config), Arc::clone(&stop));
        let served = Arc::clone(&served);
        let handler = Handler::new(Arc::clone(&config), shared.clone());
        let (work_rx, back_tx, wake_tx) = (Arc::clone(&work_rx), back_tx.clone(), Arc::clone(&wake_tx));
        let returns = Arc::clone(&returns);
        thread::Builder::new().name(format!("worker-{n}")).spawn(move || {
            let counters = Counters { stop: &stop, served: &served };
            worker(&work_rx, &back_tx, &wake_tx, &returns, &config, &limits, &counters, handler);
        })
    };
    let spawn_poller = |work_tx: mpsc::Sender<Job>| -> io::Result<JoinHandle<()>> {
        let (listener, config, stop, returns, gate) =
            (Arc::clone(&listener), Arc::clone(&config), Arc::clone(&stop), Arc::clone(&returns), Arc::clone(&gate));
        let (owned, served) = (owned_path.clone(), Arc::clone(&served));
        thread::Builder::new().name("poller".into()).spawn(move || {
            let counters = Counters { stop: &stop, served: &served };
            let cx =
                Context { config: &config, limits: &limits, gate: &gate, owned: owned.as_ref(), counters: &counters };
            poller(&listener, &cx, &stop, &returns, &work_tx);
        })
    };
    let mut poller_handle =
        Some(spawn_poller(work_tx.clone()).map_err(|source| Error::Bind { what: "the poller thread".into(), source })?);
    let mut workers: Vec<Option<JoinHandle<()>>> = Vec::with_capacity(config.workers.get());
    for n in 0..config.workers.get() {
        match spawn(n) {
            Ok(h) => workers.push(Some(h)),
            Err(e) => {
                log::error!("cannot start worker {n}: {e}");
                workers.push(None);
            }
        }
    }
    log::info!(
        "serving db={} workers={} listener={} pid={}",
        config.db.display(),
        config.workers,
        owned_path.as_ref().map_or_else(|| describe(&config.listen), |p| p.path.display().to_string()),
        std::process::id()
    );

    // Supervise: replace any worker (or the poller) that died until a stop is asked for.
    while !stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50));
        for (n, slot) in workers.iter_mut().enumerate() {
            let dead = slot.as_ref().is_none_or(JoinHandle::is_finished);
            if dead && !stop.load(Ordering::SeqCst) {
                if let Some(h) = slot.take() {
                    if h.join().is_err() {
                        log::error!("worker {n} died; starting a replacement");
                    }
                }
                *slot = spawn(n).map_err(|e| log::error!("cannot restart worker {n}: {e}")).ok();
            }
        }
        if poller_handle.as_ref().is_none_or(JoinHandle::is_finished) && !stop.load(Ordering::SeqCst) {
            if let Some(h) = poller_handle.take() {
                if h.join().is_err() {
                    log::error!("the poller died; starting a replacement (idle connections were closed)");
                }
            }
            poller_handle =
                spawn_poller(work_tx.clone()).map_err(|e| log::error!("cannot restart the poller: {e}")).ok();
        }
    }
    // Workers drain the queue, then see it closed once the poller has dropped its sender.
    drop(work_tx);

    let deadline = *returns.stop_deadline.get_or_init(|| Instant::now() + config.shutdown_grace);
    log::info!("stopping: no new connections, draining requests in flight");
    // (The poller unlinks our socket path, unless it was taken over, and serves the backlog.)
    // The poller serves what is on its way, then gives up at the same deadline (and says what it left).
    let poller_done = deadline + Duration::from_millis(50);
    while poller_handle.as_ref().is_some_and(|h| !h.is_finished()) && Instant::now() < poller_done {
        thread::sleep(Duration::from_millis(10));
    }
    for handle in workers.iter_mut() {
        while handle.as_ref().is_some_and(|h| !h.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if handle.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
    // The checker writes what it finished as soon as it sees the stop; give it the rest of
    // the grace period to finish requests in flight and write those too.
    if let Some(h) = checker {
        while !h.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            log::warn!("stopping with thumbnail checks in flight; every check finished before the stop is written");
        }
    }
    if let Some(owned) = owned_path.as_ref().filter(|o| o.is_ours()) {
        let _ = std::fs::remove_file(&owned.path);
    }
    // A file renamed over the database while it was open (refused, see
    // `replaced_under_its_wal`): the -wal/-shm at the path are the replaced file's. Left
    // there, the next start would read the new file through them.
    crate::store::db::let_go_of_replaced(&config.db);
    let busy = returns.in_service.load(Ordering::SeqCst);
    if busy > 0 {
        log::warn!("stopped with {busy} request(s) still being answered after the grace period");
    } else if poller_handle.as_ref().is_some_and(|h| !h.is_finished()) {
        log::warn!("stopped with the poller still reading requests after the grace period");
    } else {
        log::info!("stopped cleanly");
    }
    Ok(())
}

/// Runs `check-thumbnails` on its own thread: a pass now, then `every` after the end
/// of each pass, until `stop`. Its requests never touch a worker; its results go
/// through the shared writer.
fn start_thumbnail_checker(
    config: &Config,
    every: Duration,
    writer: WriterThread,
    stop: Arc<AtomicBool>,
) -> Option<JoinHandle<()>> {
    let (db, opts) = (config.db.clone(), config.thumbnail_check.clone());
    let spawned = thread::Builder::new().name("thumbnail-check".into()).spawn(move || {
        log::info!("thumbnail checker on: a pass every {} s after the last", every.as_secs());
        while !stop.load(Ordering::SeqCst) {
            match crate::jobs::check_thumbnails(&db, &opts, &stop, &writer, &mut |_| {}) {
                Ok(summary) => log::info!("thumbnail check: {summary}"),
                Err(e) => log::error!("thumbnail check failed: {e}; next pass in {} s", every.as_secs()),
            }
            let next = Instant::now() + every;
            while Instant::now() < next && !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(200));
            }
        }
    });
    spawned.map_err(|e| log::error!("cannot start the thumbnail checker: {e}")).ok()
}
