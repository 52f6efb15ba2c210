//! The listening socket: inherited from systemd (fd 3, socket activation) or
//! on fd 0 (how LiteSpeed, lighttpd and spawn-fcgi start FastCGI apps; then
//! nothing is bound or unlinked), else the configured Unix socket or TCP address.
//!
//! A Unix socket path is bound with its mode (`--socket-mode`, 0660) and group
//! (`--socket-group`) already set, and a stale
//! socket file is replaced. When a live videofeed serves the path, the new
//! process takes it over without a gap: it binds a temporary path next to it,
//! renames that over the path (atomic: every connect() reaches one of the
//! two), then sends the old process SIGTERM; the old one serves everything
//! already in its backlog and exits (see the poller's stop). Another program
//! serving the path is never displaced.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::Error;
use crate::config::{Config, Listen};
use crate::sys;

/// The shared listener.
pub(super) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    pub(super) fn fd(&self) -> RawFd {
        match self {
            Listener::Unix(l) => l.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }

    pub(super) fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Unix(l) => l.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        }
    }
}

pub(super) fn describe(listen: &Listen) -> String {
    match listen {
        Listen::InheritedOnly => "fd0".into(),
        Listen::Unix(p) => p.display().to_string(),
        Listen::Tcp(a) => a.to_string(),
    }
}

/// A Unix socket path we bound, and the identity of the file we bound there.
#[derive(Debug, Clone)]
pub(super) struct OwnedPath {
    pub(super) path: PathBuf,
    ino: u64,
}

impl OwnedPath {
    fn of(path: &Path) -> OwnedPath {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::symlink_metadata(path).map_or(0, |m| m.ino());
        OwnedPath { path: path.to_path_buf(), ino }
    }

    /// Whether the path still names our socket (not one that took it over since).
    pub(super) fn is_ours(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino)
    }
}

/// Returns the listener and, when we bound a Unix socket, its path (removed at stop
/// unless another process has taken it over by then).
pub(super) fn open_listener(config: &Config) -> Result<(Listener, Option<OwnedPath>), Error> {
    if let Some(inherited) = sys::inherited_listener() {
        log::info!("using the listening socket inherited on fd 0");
        return Ok((
            match inherited {
                sys::Inherited::Unix(l) => Listener::Unix(l),
                sys::Inherited::Tcp(l) => Listener::Tcp(l),
            },
            None,
        ));
    }
    match &config.listen {
        Listen::InheritedOnly => Err(Error::NoListener),
        Listen::Unix(path) => {
            let access = Access { mode: config.socket_mode, group: config.socket_group };
            bind_unix(path, access).map(|l| (Listener::Unix(l), Some(OwnedPath::of(path))))
        }
        Listen::Tcp(addr) => TcpListener::bind(addr)
            .map(|l| (Listener::Tcp(l), None))
            .map_err(|source| Error::Bind { what: addr.to_string(), source }),
    }
}

/// Who may connect to a socket we bind: its permission bits and group.
#[derive(Debug, Clone, Copy)]
struct Access {
    mode: u32,
    group: Option<u32>,
}

fn bind_unix(path: &Path, access: Access) -> Result<UnixListener, Error> {
    let bind_err = |source| Error::Bind { what: path.display().to_string(), source };
    if path.exists() {
        if let Ok(live) = UnixStream::connect(path) {
            return take_over(path, access, &live);
        }
        // Replace a stale socket, but never a regular file.
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            return Err(bind_err(io::Error::new(io::ErrorKind::AlreadyExists, "the path exists and is not a socket")));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    bind_with_mode(path, access).map_err(bind_err)
}

/// Binds `path` with its mode and group set before anyone can connect (bound under a
/// temporary name next to it, then renamed into place: no window with other permissions).
fn bind_with_mode(path: &Path, access: Access) -> io::Result<UnixListener> {
    // A random name: never another process's socket (two containers may share pids).
    let tmp = crate::sys::temp_beside(path, "sock");
    let listener = UnixListener::bind(&tmp)?;
    let placed = std::os::unix::fs::chown(&tmp, None, access.group)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(access.mode)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// A live process serves `path`: when it is a videofeed, take the path over and
/// ask it to drain and exit; anything else keeps it.
fn take_over(path: &Path, access: Access, live: &UnixStream) -> Result<UnixListener, Error> {
    let refuse = |why: String| Error::Bind {
        what: path.display().to_string(),
        source: io::Error::new(io::ErrorKind::AddrInUse, why),
    };
    let Some(pid) = sys::peer_pid(live) else {
        return Err(refuse("another process is serving on this socket (its pid cannot be read)".into()));
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_owned();
    let ours = std::fs::read_to_string("/proc/self/comm").unwrap_or_default().trim().to_owned();
    if !(comm.starts_with("videofeed") || (!ours.is_empty() && comm == ours)) {
        return Err(refuse(format!(
            "another process is serving on this socket (pid {pid}, {comm:?}); stop it or choose another path"
        )));
    }
    let listener =
        bind_with_mode(path, access).map_err(|source| Error::Bind { what: path.display().to_string(), source })?;
    match sys::terminate(pid) {
        Ok(()) => log::info!(
            "took over {} from videofeed pid {pid}: it serves what it has accepted and exits",
            path.display()
        ),
        Err(e) => log::warn!("took over {} but cannot signal pid {pid} to stop: {e}", path.display()),
    }
    Ok(listener)
}
