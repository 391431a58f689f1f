//! The guest metadata socket (docs/contracts.md#guest-socket, seed 003): one unix socket per
//! instance, mode 0600, serving that instance's [`GuestMetadata`] over HTTP/1.1. The agent keeps
//! the `watch::Sender` and updates it when the coordinator sends new metadata; long-polling guests
//! wake up at once. What one guest may hold of the agent through its socket is bounded by
//! [`SocketLimits`] (docs/contracts.md#limits).

mod connection;
pub mod limits;
mod render;
mod server;

pub use limits::{ConnectionBudget, SocketLimits, raise_fd_limit};

use gpuspot_common::protocol::GuestMetadata;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(
        "metadata socket path {} is {len} bytes; unix sockets allow at most {MAX_SOCKET_PATH}",
        path.display()
    )]
    PathTooLong { path: PathBuf, len: usize },
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running metadata socket. Dropping it stops serving and removes the socket file.
pub struct MetadataServer {
    path: PathBuf,
    /// (device, inode) of our socket file, so we never delete a successor's socket.
    file_id: (u64, u64),
    task: JoinHandle<()>,
}

impl MetadataServer {
    /// Binds `path` (replacing a stale socket, creating the parent directory) and serves on a
    /// task of the current tokio runtime, which must exist, with the default limits.
    pub fn start(
        path: PathBuf,
        metadata: watch::Receiver<GuestMetadata>,
    ) -> Result<Self, MetadataError> {
        Self::start_with(path, metadata, SocketLimits::default())
    }

    /// [`MetadataServer::start`] with the given limits.
    pub fn start_with(
        path: PathBuf,
        metadata: watch::Receiver<GuestMetadata>,
        limits: SocketLimits,
    ) -> Result<Self, MetadataError> {
        let (listener, file_id) = bind_private(&path)?;
        let task = tokio::spawn(server::serve(listener, metadata, limits));
        Ok(Self { path, file_id, task })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Same as dropping: stops serving (open long-polls included) and removes the socket.
    pub fn shutdown(self) {}
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.task.abort();
        if file_id(&self.path).is_some_and(|id| id == self.file_id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds under a private staging name, restricts it to 0600, then renames it into place, so
/// the socket is never reachable with looser permissions.
fn bind_private(path: &Path) -> Result<(UnixListener, (u64, u64)), MetadataError> {
    let parent = prepare_target(path)?;
    let staging = staging_path(&parent);
    // A staging name that does not fit falls back to binding in place (a brief 0755 window).
    let bind_at =
        if staging.as_os_str().len() <= MAX_SOCKET_PATH { staging } else { path.to_owned() };
    let _ = std::fs::remove_file(&bind_at);
    let listener = UnixListener::bind(&bind_at).map_err(io_error("bind", &bind_at))?;
    let placed = std::fs::set_permissions(&bind_at, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error("restrict permissions of", &bind_at))
        .and_then(|()| give_to_guest(&bind_at, &parent))
        .and_then(|()| std::fs::rename(&bind_at, path).map_err(io_error("move socket to", path)));
    if let Err(error) = placed {
        let _ = std::fs::remove_file(&bind_at);
        return Err(error);
    }
    let id = file_id(path).ok_or_else(|| {
        io_error("inspect", path)(std::io::Error::from(std::io::ErrorKind::NotFound))
    })?;
    Ok((listener, id))
}

/// A process guest's socket dir is root's, mode 0710, with the guest's group (its uid and
/// gid are the same number, docs/contracts.md#guests): the socket goes to that guest, also when the
/// agent re-creates it after a restart. The dir is not writable by the guest, so the path
/// is safe to chown.
fn give_to_guest(socket: &Path, dir: &Path) -> Result<(), MetadataError> {
    let Ok(meta) = std::fs::metadata(dir) else { return Ok(()) };
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if meta.uid() != euid || meta.gid() == egid || meta.mode() & 0o777 != 0o710 {
        return Ok(());
    }
    std::os::unix::fs::lchown(socket, Some(meta.gid()), Some(meta.gid()))
        .map_err(io_error("give the socket to its guest:", socket))
}

/// Checks `path` can hold our socket and returns its (created) parent directory.
fn prepare_target(path: &Path) -> Result<PathBuf, MetadataError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(MetadataError::PathTooLong { path: path.to_owned(), len });
    }
    if let Ok(existing) = std::fs::symlink_metadata(path)
        && !existing.file_type().is_socket()
    {
        return Err(MetadataError::NotASocket(path.to_owned()));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new(".")).to_owned();
    // Directories we create are private; an existing one keeps the mode its owner chose.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(io_error("create directory", &parent))?;
    Ok(parent)
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MetadataError {
    let path = path.to_owned();
    move |source| MetadataError::Io { action, path, source }
}

/// Short, unique within the host (pid + counter), hidden, in the socket's own directory so
/// the rename is atomic. Short because it must fit the same 107 bytes.
fn staging_path(parent: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent.join(format!(".{:x}.{n:x}", std::process::id()))
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;
