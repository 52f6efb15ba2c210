//! The few operating-system calls std does not offer: finding a listening
//! socket inherited on fd 0 (FastCGI spec §2.2, `FCGI_LISTENSOCK_FILENO`) or
//! from systemd (fd 3), the pid behind a Unix socket and signalling it, mapping
//! a file read-only (the shared rank index file) and viewing plain data as bytes,
//! polling sockets with a timeout, reading a blocking socket without blocking
//! (`MSG_DONTWAIT`), capping glibc's malloc arenas, reading
//! SQLite's per-connection page cache counters (not wrapped by rusqlite), and
//! tying a child process's life to ours (`PR_SET_PDEATHSIG`).
//!
//! This is the only module with `unsafe`; each block has a SAFETY comment.
#![allow(unsafe_code)]

use std::io;
use std::net::TcpListener;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;

/// Makes the child `cmd` spawns receive SIGTERM when this process dies, even by
/// SIGKILL (Linux `PR_SET_PDEATHSIG`), so a helper such as `videofeed replica`'s
/// Litestream follower never outlives it. Spawn from a thread that lives as long as
/// the child should: the signal follows the spawning thread's exit.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody will signal us.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::other("the parent exited before the child started"));
            }
            Ok(())
        });
    }
}

/// A listening socket found on fd 0.
pub enum Inherited {
    /// An AF_UNIX listener.
    Unix(UnixListener),
    /// An AF_INET/AF_INET6 listener.
    Tcp(TcpListener),
}

/// Adopts an inherited listening socket, else `None`: the one systemd passes
/// (`LISTEN_PID` is this process and `LISTEN_FDS` ≥ 1: fd 3, socket activation),
/// else fd 0 when it is a listening socket (`SO_ACCEPTCONN`: LiteSpeed,
/// lighttpd, spawn-fcgi).
///
/// The adopted fd stays open until exit and nothing is bound or unlinked,
/// because whoever passed it owns the socket's path.
pub fn inherited_listener() -> Option<Inherited> {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.trim().parse::<u32>().ok()).unwrap_or(0);
    if ours && count >= 1 {
        if let Some(listener) = adopt(SD_LISTEN_FDS_START) {
            return Some(listener);
        }
    }
    adopt(0)
}

/// The first fd systemd passes (`sd_listen_fds(3)`).
const SD_LISTEN_FDS_START: libc::c_int = 3;

/// Adopts `fd` if it is a listening Unix or TCP socket.
fn adopt(fd: libc::c_int) -> Option<Inherited> {
    let mut accepting: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).ok()?;
    // SAFETY: getsockopt writes at most `len` bytes into `accepting`, a c_int we own;
    // a bad fd is an error return, not UB.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&raw mut accepting).cast(), &raw mut len)
    };
    if rc != 0 || accepting == 0 {
        return None;
    }
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut alen = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>()).ok()?;
    // SAFETY: getsockname writes at most `alen` bytes into `addr`, which is that large.
    let rc = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &raw mut alen) };
    if rc != 0 {
        return None;
    }
    match i32::from(addr.ss_family) {
        // SAFETY: `fd` is an open listening socket of this family (checked above); ownership of
        // the fd passes to the listener, and nothing else in this process uses it.
        libc::AF_UNIX => Some(Inherited::Unix(unsafe { UnixListener::from_raw_fd(fd) })),
        // SAFETY: as above, for an IPv4/IPv6 listener.
        libc::AF_INET | libc::AF_INET6 => Some(Inherited::Tcp(unsafe { TcpListener::from_raw_fd(fd) })),
        _ => None,
    }
}

/// The process id of the peer of a connected Unix socket (`SO_PEERCRED`: for a
/// connection to a listening socket, the process that called `listen`).
pub fn peer_pid(stream: &std::os::unix::net::UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: ucred is plain data for which all-zero bytes are valid.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).ok()?;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which is that large;
    // the fd is open for the borrow of `stream`.
    let rc = unsafe {
        libc::getsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &raw mut len)
    };
    if rc != 0 {
        return None;
    }
    u32::try_from(cred.pid).ok().filter(|p| *p > 0)
}

/// Sends `SIGTERM` to process `pid` (a videofeed we took the socket over from).
///
/// # Errors
/// The `kill(2)` error.
pub fn terminate(pid: u32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps glibc's malloc from multiplying resident memory: two arenas instead
/// of one per worker thread. (A fixed mmap threshold was tried as well: it cut
/// resident memory a little but cost a fifth of the throughput in page faults.)
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before workers start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns free heap memory to the system (after a rank index rebuild).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The C heap as glibc's allocator sees it, summed over its arenas: (bytes handed
/// out and not yet freed, bytes free but still held by the process). None where the
/// allocator is not glibc's. What splits resident memory into live data and the
/// allocator keeping an earlier peak (`videofeed_heap_bytes`).
pub fn heap_stats() -> Option<(u64, u64)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters (under its own locks).
        let info = unsafe { libc::mallinfo2() };
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Some((as_u64(info.uordblks).saturating_add(as_u64(info.hblkhd)), as_u64(info.fordblks)))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Sets the calling thread's nice value (Linux: a thread's own scheduling
/// priority; 0 normal, 19 lowest), so background work yields the CPU to
/// request workers. Best effort: a failure leaves the priority as it was.
pub fn set_thread_nice(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority on our own thread id only
    // changes that thread's scheduling weight (raising it back below the start
    // value may be refused without CAP_SYS_NICE, which is reported, not UB).
    unsafe {
        let tid = libc::gettid();
        let who = libc::id_t::try_from(tid).unwrap_or(0);
        if libc::setpriority(libc::PRIO_PROCESS, who, nice) != 0 {
            log::debug!("setpriority({nice}) failed: {}", io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Plain data that any bit pattern of its size is a valid value of (the types the
/// rank index file stores), so bytes can be viewed as a slice of it.
pub trait Plain: Copy + Send + Sync + 'static + sealed::Sealed {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}
impl Plain for i64 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
    impl Sealed for i64 {}
}

/// The bytes of a slice of plain data (for writing it to a file as it is in memory).
pub fn as_bytes<T: Plain>(items: &[T]) -> &[u8] {
    // SAFETY: T is plain data without padding (the sealed impls above), so its
    // memory is `size_of_val(items)` initialized bytes, borrowed for as long as `items`.
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items)) }
}

/// A read-only, shared mapping of a whole file. The rank index file is mapped so
/// that every process on the box reads one copy from the page cache. The file must
/// never be written in place while mapped (it is replaced by rename instead).
pub struct Mmap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; shared references only read.
unsafe impl Send for Mmap {}
// SAFETY: as above: nothing mutates the mapped bytes through this value.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps all of `file` read-only.
    ///
    /// # Errors
    /// The `mmap(2)` error, or `InvalidData` for an empty file.
    pub fn map(file: &std::fs::File) -> io::Result<Mmap> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(file.metadata()?.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        // SAFETY: a fresh read-only shared mapping of an open file; the kernel chooses the
        // address; the result is checked for MAP_FAILED before use.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Mmap { ptr, len })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// `len` items of `T` at byte offset `off`; empty when out of bounds or misaligned.
    pub fn slice<T: Plain>(&self, off: usize, len: usize) -> &[T] {
        let size = std::mem::size_of::<T>();
        let Some(end) = len.checked_mul(size).and_then(|n| n.checked_add(off)) else { return &[] };
        let Some(bytes) = self.bytes().get(off..end) else { return &[] };
        if bytes.as_ptr().align_offset(std::mem::align_of::<T>()) != 0 {
            return &[];
        }
        // SAFETY: `bytes` holds exactly `len * size_of::<T>()` bytes, suitably aligned
        // (checked), of plain data any bit pattern of which is a valid `T`, borrowed
        // from the mapping for as long as `self`.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), len) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no slice of it outlives
        // `self` (they borrow from it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Polls `fds` for up to `timeout_ms`; returns how many have events.
///
/// # Errors
/// The `poll(2)` error, except EINTR, which counts as none ready.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    let n = libc::nfds_t::try_from(fds.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `n` pollfd structs.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
    }
    Ok(usize::try_from(rc).unwrap_or(0))
}

/// Reads what socket `fd` has without blocking (`recv(2)` with `MSG_DONTWAIT`), so
/// the poller can read a socket the workers use in blocking mode, without a
/// `fcntl` round trip per request. `Ok(0)` is end of stream.
///
/// # Errors
/// The `recv(2)` error; `WouldBlock` when nothing is there.
pub fn recv_nowait(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, exclusively borrowed buffer of `buf.len()` bytes, and
    // recv writes at most that many; a bad fd is reported as an error, not UB.
    let rc = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(rc).unwrap_or(0))
}

/// Writes what socket `fd` can take now without blocking (`send(2)` with
/// `MSG_DONTWAIT | MSG_NOSIGNAL`): the poller and the workers never wait on a
/// peer that does not read. Returns the bytes written (fewer than `buf.len()`
/// when the socket's buffer is full).
///
/// # Errors
/// The `send(2)` error; `WouldBlock` when the buffer has no room at all.
pub fn send_nowait(fd: std::os::fd::RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid buffer of `buf.len()` bytes that send only reads; a bad
    // fd is reported as an error, not UB.
    let rc = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(rc).unwrap_or(0))
}

/// Page cache hits and misses counted on `conn` since the last call, then reset
/// (`sqlite3_db_status` with `SQLITE_DBSTATUS_CACHE_HIT`/`_MISS`); (0, 0) on error.
pub fn take_cache_stats(conn: &rusqlite::Connection) -> (u64, u64) {
    let read = |op: libc::c_int| -> u64 {
        let (mut current, mut highwater): (libc::c_int, libc::c_int) = (0, 0);
        // SAFETY: `handle` is the live sqlite3* owned by `conn`, which outlives this call;
        // sqlite3_db_status only writes the two ints we pass and is safe on any open handle.
        let rc =
            unsafe { rusqlite::ffi::sqlite3_db_status(conn.handle(), op, &raw mut current, &raw mut highwater, 1) };
        if rc == rusqlite::ffi::SQLITE_OK { u64::try_from(current).unwrap_or(0) } else { 0 }
    };
    (read(rusqlite::ffi::SQLITE_DBSTATUS_CACHE_HIT), read(rusqlite::ffi::SQLITE_DBSTATUS_CACHE_MISS))
}

/// Test hook: panics on purpose (only with the `test-hooks` feature, never in releases).
#[cfg(feature = "test-hooks")]
#[expect(clippy::panic, reason = "a test-only trigger that must panic")]
pub fn test_hook_panic(what: &str) -> ! {
    panic!("test hook: {what}")
}

/// Watches directory `dir` (inotify) and calls `on_change` whenever a file named
/// `name` is created, moved in (a rename over it, as `videofeed replica` swaps) or
/// closed after writing, until `stop` is set (checked every 500 ms). Runs on the
/// calling thread.
///
/// # Errors
/// When inotify is not available or `dir` cannot be watched.
pub fn watch_file(
    dir: &std::path::Path,
    name: &std::ffi::OsStr,
    stop: &std::sync::atomic::AtomicBool,
    mut on_change: impl FnMut(),
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by inotify_init1 and is owned by nothing else.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mask = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE;
    // SAFETY: fd is a valid inotify fd; path is a NUL-terminated string that outlives the call.
    if unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: pfd is one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&raw mut pfd, 1, 500) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: buf is valid for writes of buf.len() bytes; fd is open (owned above).
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let Ok(n) = usize::try_from(n) else { continue };
        // Events: a 16-byte header (wd, mask, cookie, len) and `len` bytes of NUL-padded name.
        let mut at = 0;
        let mut hit = false;
        while let Some(header) = buf.get(at..at + 16).filter(|_| at + 16 <= n) {
            let len = header.get(12..16).and_then(|b| <[u8; 4]>::try_from(b).ok()).map_or(0, u32::from_ne_bytes);
            let len = usize::try_from(len).unwrap_or(0);
            let event_name = buf.get(at + 16..(at + 16 + len).min(n)).unwrap_or(&[]);
            let event_name = event_name.split(|b| *b == 0).next().unwrap_or(&[]);
            hit |= event_name == name.as_bytes();
            at += 16 + len;
        }
        if hit {
            on_change();
        }
    }
    drop(owned);
    Ok(())
}

/// A random 64-bit number from the OS (`getrandom`), for names nobody else can
/// guess or share; the time and pid mixed when the call fails.
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into the buffer it is given.
    let got = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got == 8 {
        return u64::from_ne_bytes(buf);
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0) ^ u64::from(std::process::id()).rotate_left(32)
}

/// A path beside `path` for a temporary file: `.NAME.TAG.RANDOM.tmp` (random: two
/// processes, or two containers whose pids collide, never pick the same one).
pub fn temp_beside(path: &std::path::Path, tag: &str) -> std::path::PathBuf {
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{tag}.{:016x}.tmp", random_u64()))
}

/// Creates a new temporary file beside `path` exclusively (`O_EXCL`: never an
/// existing file, whoever made it) with permission bits `mode`, and returns it
/// with its path.
///
/// # Errors
/// I/O errors creating it (a read-only directory, a full disk).
pub fn create_temp_beside(
    path: &std::path::Path,
    tag: &str,
    mode: u32,
) -> io::Result<(std::fs::File, std::path::PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name");
    for _ in 0..8 {
        let tmp = temp_beside(path, tag);
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}
