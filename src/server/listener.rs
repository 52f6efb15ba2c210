//! The listening socket: inherited on fd 0 (how LiteSpeed, lighttpd and
//! spawn-fcgi start FastCGI apps; then nothing is bound or unlinked), else the
//! configured Unix socket (a stale file replaced, mode 0660) or TCP address.
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

/// Returns the listener and, when we bound a Unix socket, its path (removed at stop).
pub(super) fn open_listener(config: &Config) -> Result<(Listener, Option<PathBuf>), Error> {
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
        Listen::Unix(path) => bind_unix(path, config.socket_mode).map(|l| (Listener::Unix(l), Some(path.clone()))),
        Listen::Tcp(addr) => TcpListener::bind(addr)
            .map(|l| (Listener::Tcp(l), None))
            .map_err(|source| Error::Bind { what: addr.to_string(), source }),
    }
}

fn bind_unix(path: &Path, mode: u32) -> Result<UnixListener, Error> {
    let bind_err = |source| Error::Bind { what: path.display().to_string(), source };
    if path.exists() {
        // Replace a stale socket, but never a live one (another instance) or a regular file.
        if UnixStream::connect(path).is_ok() {
            return Err(bind_err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is serving on this socket",
            )));
        }
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            return Err(bind_err(io::Error::new(io::ErrorKind::AlreadyExists, "the path exists and is not a socket")));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    Ok(listener)
}
