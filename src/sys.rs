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
/// that every process on the box reads one copy from the page cache. The file is
/// meant to be replaced by rename, never written in place; when it is anyway
/// (`truncate`, `cp` over it, `rsync --inplace`), the mapping must not take the
/// process down: a read past the file's new end (SIGBUS) is caught by
/// [`on_sigbus`], which maps zero pages over the rest of the mapping and marks it
/// damaged, and [`Mmap::damage`] says so (or that the file's size or modification
/// time moved) so that whatever was computed from it is thrown away.
pub struct Mmap {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    /// The mapped file, kept open to compare its size and modification time.
    file: std::fs::File,
    /// (size, modification time in ns) when mapped.
    stamp: (u64, i128),
    /// (device, inode) of the mapped file.
    identity: (u64, u64),
    /// This mapping's slot in [`MAPPINGS`] (None when all were taken: then a
    /// SIGBUS in it is not caught, as before).
    slot: Option<usize>,
    /// Set when a check of the contents made after mapping (a checksum verified off
    /// the request path) failed: why.
    verdict: std::sync::OnceLock<String>,
}

// SAFETY: the mapping is read-only and owned by this value; shared references only read.
unsafe impl Send for Mmap {}
// SAFETY: as above: nothing mutates the mapped bytes through this value.
unsafe impl Sync for Mmap {}

/// One mapping the SIGBUS handler knows: its address range and whether a read in
/// it faulted. Lock-free: the handler only loads and stores atomics.
struct MappingSlot {
    start: std::sync::atomic::AtomicUsize,
    len: std::sync::atomic::AtomicUsize,
    damaged: std::sync::atomic::AtomicBool,
    /// A read-write mapping ([`SharedWords`]): its zero pages are writable too.
    writable: std::sync::atomic::AtomicBool,
}

/// How many mappings can be guarded at once (a process maps one index file at a
/// time, two while it switches, a few more while old answers finish).
const MAPPING_SLOTS: usize = 64;

#[allow(clippy::declare_interior_mutable_const, reason = "the initialiser of a static array of atomics")]
const EMPTY_SLOT: MappingSlot = MappingSlot {
    start: std::sync::atomic::AtomicUsize::new(0),
    len: std::sync::atomic::AtomicUsize::new(0),
    damaged: std::sync::atomic::AtomicBool::new(false),
    writable: std::sync::atomic::AtomicBool::new(false),
};

static MAPPINGS: [MappingSlot; MAPPING_SLOTS] = [EMPTY_SLOT; MAPPING_SLOTS];

/// The SIGBUS disposition before ours, called for faults outside our mappings.
static PREVIOUS_SIGBUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

/// Faults caught in a mapping since the process started (for tests and metrics).
static SIGBUS_CAUGHT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many reads of a mapped file that had shrunk under us were caught (SIGBUS).
pub fn sigbus_caught() -> u64 {
    SIGBUS_CAUGHT.load(std::sync::atomic::Ordering::Relaxed)
}

/// The SIGBUS handler: a fault inside a guarded mapping (the file shrank under
/// it) gets anonymous zero pages mapped over the rest of that mapping, so the read
/// is retried and succeeds, and the mapping is marked damaged; any other fault is
/// passed to the handler before ours, or kills the process as SIGBUS does. Only
/// atomics and `mmap(2)`/`sigaction(2)` (plain system calls) are used.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    use std::sync::atomic::Ordering;
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { info.as_ref().map_or(0, |i| i.si_addr() as usize) };
    let page = PAGE_SIZE.load(Ordering::Relaxed).max(1);
    for slot in &MAPPINGS {
        let (start, len) = (slot.start.load(Ordering::Acquire), slot.len.load(Ordering::Acquire));
        if start == 0 || addr < start || addr >= start.saturating_add(len) {
            continue;
        }
        let from = addr - addr % page;
        let end = start.saturating_add(len);
        let prot =
            if slot.writable.load(Ordering::Acquire) { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: replaces pages inside a mapping this process made and still owns (its
        // slot is cleared before it is unmapped) with private zero pages, read-only.
        let zeroed = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                end - from,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeroed != libc::MAP_FAILED {
            slot.damaged.store(true, Ordering::Release);
            SIGBUS_CAUGHT.fetch_add(1, Ordering::Relaxed);
            return;
        }
        break;
    }
    // Not ours (or the zero pages could not be had): what would have happened without us.
    match PREVIOUS_SIGBUS.get() {
        Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed as an SA_SIGINFO handler.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig, info, ctx);
            } else {
                // SAFETY: the previous handler was installed as a plain handler.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
                f(sig);
            }
        }
        _ => {
            // SAFETY: restoring the default action; the fault repeats and ends the process.
            unsafe {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
        }
    }
}

/// The page size, read once before the handler is installed.
static PAGE_SIZE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(4096);

/// Installs [`on_sigbus`] once (keeping the disposition before it).
fn guard_sigbus() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: sysconf is a plain query.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        PAGE_SIZE.store(usize::try_from(page).unwrap_or(4096).max(1), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: zeroed sigaction structs are valid; sigaction only reads `ours` and
        // writes `prev`; the handler has the SA_SIGINFO signature.
        unsafe {
            let mut ours: libc::sigaction = std::mem::zeroed();
            let mut prev: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&raw mut ours.sa_mask);
            if libc::sigaction(libc::SIGBUS, &raw const ours, &raw mut prev) == 0 {
                let _ = PREVIOUS_SIGBUS.set(prev);
            }
        }
    });
}

/// (device, inode) of a file's metadata.
pub fn file_identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// (size, modification time in ns) of an open file.
pub fn stamp_of(file: &std::fs::File) -> io::Result<(u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.size(), i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())))
}

impl Mmap {
    /// Maps all of `file` read-only (and guards the mapping: see [`Mmap`]).
    ///
    /// # Errors
    /// The `mmap(2)` error, or `InvalidData` for an empty file.
    pub fn map(file: &std::fs::File) -> io::Result<Mmap> {
        use std::os::fd::AsRawFd;
        let file = file.try_clone()?;
        let stamp = stamp_of(&file)?;
        let len = usize::try_from(stamp.0).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        guard_sigbus();
        // SAFETY: a fresh read-only shared mapping of an open file; the kernel chooses the
        // address; the result is checked for MAP_FAILED before use.
        let ptr =
            unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        let slot = register_mapping(ptr.as_ptr() as usize, len, false);
        let identity = file.metadata().map(|m| file_identity(&m)).unwrap_or_default();
        Ok(Mmap { ptr, len, file, stamp, identity, slot, verdict: std::sync::OnceLock::new() })
    }

    /// Why what was read from this mapping cannot be trusted, if it cannot: a read
    /// past the file's end was caught (the file shrank), or the file's size or
    /// modification time is no longer what it was when mapped (written in place).
    /// One `fstat(2)`: cheap enough to ask before and after every answer.
    pub fn damage(&self) -> Option<String> {
        use std::sync::atomic::Ordering;
        if let Some(why) = self.verdict.get() {
            return Some(why.clone());
        }
        if self.slot.and_then(|i| MAPPINGS.get(i)).is_some_and(|s| s.damaged.load(Ordering::Acquire)) {
            return Some("a read past its end was caught (SIGBUS): it was truncated or rewritten in place".into());
        }
        match stamp_of(&self.file) {
            Ok(now) if now.0 != self.stamp.0 => Some(format!(
                "its size changed from {} to {} bytes while mapped (written in place)",
                self.stamp.0, now.0
            )),
            Ok(now) if now.1 != self.stamp.1 => Some("it was modified in place while mapped".into()),
            Ok(_) => None,
            Err(e) => Some(format!("it cannot be checked ({e})")),
        }
    }

    /// Marks the contents as not to be trusted (a check made after mapping failed):
    /// [`Mmap::damage`] says `why` from now on.
    pub fn mark_damaged(&self, why: String) {
        let _ = self.verdict.set(why);
    }

    /// (size, modification time in ns) of the mapped file when it was mapped.
    pub fn stamp(&self) -> (u64, i128) {
        self.stamp
    }

    /// (device, inode) of the mapped file: whether the file at a path is still the one mapped.
    pub fn identity(&self) -> (u64, u64) {
        self.identity
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

/// Takes a free slot in [`MAPPINGS`] for the mapping at `start`.
fn register_mapping(start: usize, len: usize, writable: bool) -> Option<usize> {
    use std::sync::atomic::Ordering;
    for (i, slot) in MAPPINGS.iter().enumerate() {
        if slot.start.compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            slot.damaged.store(false, Ordering::Release);
            slot.writable.store(writable, Ordering::Release);
            slot.len.store(len, Ordering::Release);
            slot.start.store(start, Ordering::Release);
            return Some(i);
        }
    }
    log::warn!("more than {MAPPING_SLOTS} index files mapped at once; a file changed in place may end the process");
    None
}

/// Gives a guarded mapping's slot back, then unmaps it (the handler must not map
/// over an address range that is no longer ours).
///
/// # Safety
/// `ptr` and `len` are exactly a mapping this process made and owns, and nothing
/// borrows from it any more.
unsafe fn unmap_guarded(slot: Option<usize>, ptr: *mut libc::c_void, len: usize) {
    use std::sync::atomic::Ordering;
    if let Some(slot) = slot.and_then(|i| MAPPINGS.get(i)) {
        slot.len.store(0, Ordering::Release);
        slot.start.store(0, Ordering::Release);
    }
    // SAFETY: the caller's promise.
    unsafe {
        libc::munmap(ptr, len);
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`; no slice of it outlives `self`.
        unsafe { unmap_guarded(self.slot, self.ptr.as_ptr().cast(), self.len) }
    }
}

/// A fixed number of 64-bit atomic words in a file every process that opens it
/// shares (`MAP_SHARED`, read-write): the LSCache admission table the responders on
/// one box share. Guarded like [`Mmap`]: a file truncated under it gives zero pages
/// (writable, private), not SIGBUS.
pub struct SharedWords {
    ptr: std::ptr::NonNull<std::sync::atomic::AtomicU64>,
    words: usize,
    slot: Option<usize>,
}

// SAFETY: the words are atomics; every access goes through them.
unsafe impl Send for SharedWords {}
// SAFETY: as above.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Opens (creating it, mode 0600, zero-filled) the file at `path` and maps `words`
    /// words of it. A file of another size is resized (its contents are hints only).
    ///
    /// # Errors
    /// Opening, resizing or mapping the file failed (then keep a private table).
    pub fn open(path: &std::path::Path, words: usize) -> io::Result<SharedWords> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let bytes =
            words.checked_mul(8).filter(|b| *b > 0).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
        if file.metadata()?.len() != bytes as u64 {
            file.set_len(bytes as u64)?;
        }
        guard_sigbus();
        // SAFETY: a fresh shared read-write mapping of an open file of `bytes` bytes; the
        // kernel chooses the address; checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<std::sync::atomic::AtomicU64>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        let slot = register_mapping(ptr.as_ptr() as usize, bytes, true);
        Ok(SharedWords { ptr, words, slot })
    }

    /// The shared words.
    pub fn words(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: `ptr` maps `words` page-aligned, 8-byte words, readable and writable,
        // for as long as `self` lives; AtomicU64 has the layout of u64, and every
        // access to the shared memory is atomic.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.words) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `open`; no borrow of it outlives `self`.
        unsafe { unmap_guarded(self.slot, self.ptr.as_ptr().cast(), self.words * 8) }
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

/// Takes an exclusive advisory lock (`flock(2)`) on `file` without waiting: true
/// when taken, false when another open file description holds it.
///
/// # Errors
/// The `flock(2)` error other than "would block".
pub fn try_lock_exclusive(file: &std::fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on an open fd only changes its lock; a bad fd is an error, not UB.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(false),
            io::ErrorKind::Interrupted => {}
            _ => return Err(e),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_truncated_or_rewritten_in_place_is_reported_not_fatal() -> io::Result<()> {
        let dir = std::env::temp_dir().join(format!("vf-mmap-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("f.rank");
        std::fs::write(&path, vec![7u8; 64 << 10])?;
        let map = Mmap::map(&std::fs::File::open(&path)?)?;
        assert_eq!(map.damage(), None);
        assert_eq!(map.bytes().get(40_000), Some(&7));
        // Truncated under the mapping: the read past the end faults (SIGBUS); the handler
        // maps zero pages over the rest, so the read returns 0 and the process lives on.
        let caught = sigbus_caught();
        std::fs::OpenOptions::new().write(true).open(&path)?.set_len(4096)?;
        let byte = std::hint::black_box(map.bytes()).get(40_000).copied();
        assert_eq!(byte, Some(0));
        assert!(sigbus_caught() > caught, "the fault was caught by our handler");
        assert!(map.damage().is_some_and(|why| why.contains("SIGBUS")), "{:?}", map.damage());
        // Written in place without a change of size: the modification time says so.
        std::fs::write(&path, vec![9u8; 64 << 10])?;
        let other = Mmap::map(&std::fs::File::open(&path)?)?;
        assert_eq!(other.damage(), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        {
            use std::io::{Seek, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.seek(io::SeekFrom::Start(100))?;
            f.write_all(b"garbage")?;
        }
        assert!(other.damage().is_some_and(|why| why.contains("modified in place")), "{:?}", other.damage());
        drop((map, other));
        std::fs::remove_dir_all(&dir)
    }
}
