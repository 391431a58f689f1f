//! What a process guest may touch on the host (docs/contracts.md#guests, #limits): its data dir
//! (0700, its own, contents included, also what a restored snapshot put there) and its metadata
//! socket (0600, its own). The socket's directory stays root's, 0710 with the guest's group, so the
//! guest can reach the socket but never plant or swap files next to it, and a socket the agent
//! re-creates after a restart gets the same owner (see [`crate::metadata`]). The paths above them
//! must be traversable by others: the agent says so, once per path, where they are not. The
//! instance dir above the data dir is root's 0711, its files (output, records) root's 0600.

use crate::runtime::uids::GuestIds;
use std::collections::HashSet;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static WARNED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Gives the guest its data dir and socket; `None`: the guest is the agent's own user.
pub fn hand_over(data_dir: &Path, socket: &Path, ids: Option<GuestIds>) -> std::io::Result<()> {
    let (dir_mode, socket_dir_mode) = if ids.is_some() { (0o711, 0o710) } else { (0o700, 0o700) };
    let instance_dir = crate::runtime::record::instance_dir(data_dir);
    create_with_mode(&instance_dir, dir_mode)?;
    std::fs::create_dir_all(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    let socket_dir = crate::runtime::record::instance_dir(socket);
    create_with_mode(&socket_dir, socket_dir_mode)?;
    let Some(ids) = ids else { return Ok(()) };
    chown_tree(data_dir, ids)?;
    std::os::unix::fs::lchown(&socket_dir, Some(0), Some(ids.gid))?;
    if socket.exists() {
        // The socket dir is root's and not writable by the guest: this path is ours.
        std::os::unix::fs::lchown(socket, Some(ids.uid), Some(ids.gid))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    }
    warn_unreachable(data_dir);
    warn_unreachable(&socket_dir);
    Ok(())
}

fn create_with_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// lchown of `dir` and everything below it; never follows a symlink.
fn chown_tree(dir: &Path, ids: GuestIds) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(ids.uid), Some(ids.gid))?;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            std::os::unix::fs::lchown(entry.path(), Some(ids.uid), Some(ids.gid))?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Says once per path when an ancestor of `dir` keeps other users out (a 0700 state dir's
/// parent, a private temp dir): guests could not reach their own files by path.
fn warn_unreachable(dir: &Path) {
    let Some(blocker) = dir.ancestors().skip(1).find(|a| !traversable(a)) else { return };
    let mut warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if warned.get_or_insert_with(HashSet::new).insert(blocker.to_owned()) {
        tracing::warn!(dir = %dir.display(), blocked_by = %blocker.display(),
            "guests cannot reach their files: make this directory traversable (chmod o+x)");
    }
}

fn traversable(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn shared_guests_get_private_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("i-1/data");
        let socket = tmp.path().join("sock/i-1/metadata.sock");
        hand_over(&data, &socket, None).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&tmp.path().join("i-1")), 0o700);
        assert_eq!(mode(&tmp.path().join("sock/i-1")), 0o700);
    }

    /// Needs root (chown); elsewhere only the modes are checked above.
    #[test]
    fn isolated_guests_own_their_data_and_socket_but_not_the_dirs_around() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let ids = GuestIds { uid: 3_999_200_001, gid: 3_999_200_001 };
        let data = tmp.path().join("i-1/data");
        std::fs::create_dir_all(data.join("restored/deep")).unwrap();
        std::fs::write(data.join("restored/deep/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        let socket = tmp.path().join("sock/i-1/metadata.sock");
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        hand_over(&data, &socket, Some(ids)).unwrap();

        let owner = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        let guest = (ids.uid, ids.gid);
        assert_eq!((owner(&data), mode(&data)), (guest, 0o700));
        assert_eq!(owner(&data.join("restored/deep/f")), guest);
        assert_eq!(owner(&data.join("link")), guest);
        assert_eq!(owner(Path::new("/etc/passwd")), (0, 0), "symlinks are never followed");
        assert_eq!(owner(&socket), guest);
        assert_eq!(
            (owner(socket.parent().unwrap()), mode(socket.parent().unwrap())),
            ((0, ids.gid), 0o710)
        );
        assert_eq!(mode(&tmp.path().join("i-1")), 0o711);
    }
}
