//! Data dirs with a size limit (docs/contracts.md#guests "Data", `data_disk_gib`). Where the agent
//! is root and the host has loop devices and `mkfs.ext4`, an instance's data dir is a sparse ext4
//! image (`<instance>/data.img`, 0600) loop-mounted `nosuid,nodev` on it: a guest that fills it
//! gets ENOSPC, and the host's disk holds only what was written. Elsewhere the data dir is a plain
//! directory and the agent says once that the limit is not enforced.
//!
//! A start costs the same however many guests run (docs/contracts.md#guests "Cost of a start"):
//! images are reused from a pool beside the instances (`<instances>/.disks/<gib>g-<n>.img`; see
//! [`pool`]): [`release`] empties an image (and trims it, so that the host gets its blocks back)
//! and returns it there instead of deleting it, and a start of that size takes it back by a rename,
//! never formatting it again. The image is attached to a free loop device by ioctl
//! (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`, auto-cleared at unmount) and mounted by mount(2): no
//! scan of the machine's loop devices as `mount -o loop` makes, no helper process. Only a size the
//! pool has none of is formatted (`mkfs.ext4`, once per image).
//!
//! Project quotas would make even that first format unnecessary, but need a kernel with
//! quota formats (`CONFIG_QFMT_V2` for ext4, `CONFIG_XFS_QUOTA`); hosts without them (CI's
//! among them) are the ones this pool serves.

#[cfg(test)]
mod fake;
mod loopdev;
mod os;
mod pool;

pub use os::{DiskOs, HostDisks};

use os::find_tool;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

const GIB: u64 = 1 << 30;

static DETECTED: OnceLock<DataDisks> = OnceLock::new();
/// Set by the first image that could not be made: later ones are not tried.
static BROKEN: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy)]
pub struct DataDisks {
    enforced: bool,
    os: &'static dyn DiskOs,
}

impl std::fmt::Debug for DataDisks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDisks").field("enforced", &self.enforced()).finish()
    }
}

impl DataDisks {
    /// Whether this host can enforce the limit; probed once per process, and said when not.
    pub fn detect() -> Self {
        *DETECTED.get_or_init(|| match unsupported_reason() {
            None => Self { enforced: true, os: &HostDisks },
            Some(reason) => {
                tracing::info!("data_disk_gib is not enforced on this host: {reason}");
                Self::disabled()
            }
        })
    }

    /// Plain directories, never images (tests of bookkeeping, fake runtimes).
    pub fn disabled() -> Self {
        Self { enforced: false, os: &HostDisks }
    }

    /// Images made and mounted through `os` (tests: a fake).
    pub fn on(os: &'static dyn DiskOs) -> Self {
        Self { enforced: true, os }
    }

    pub fn enforced(&self) -> bool {
        self.enforced && !BROKEN.load(Ordering::Relaxed)
    }

    /// Makes `dir` ready for a guest: a mounted image of `gib` GiB when enforced, else a
    /// plain directory. Already mounted (a restore ran first, or after a restart): kept.
    pub fn prepare(&self, dir: &Path, gib: u64) -> std::io::Result<()> {
        if self.os.is_mount_point(dir) {
            return Ok(());
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        if gib == 0 || !self.enforced() {
            return Ok(());
        }
        if let Err(reason) = mount_image(self.os, dir, gib) {
            let _ = std::fs::remove_file(image_of(dir));
            if !BROKEN.swap(true, Ordering::Relaxed) {
                tracing::warn!(dir = %dir.display(), %reason,
                    "cannot make a data disk; data_disk_gib is not enforced from now on");
            }
        }
        Ok(())
    }

    /// [`release`] through this host's [`DiskOs`].
    pub fn release(&self, dir: &Path) -> std::io::Result<()> {
        release_on(self.os, dir)
    }
}

fn unsupported_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the agent is not root (loop mounts need root)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control".into());
    }
    for tool in ["mkfs.ext4"] {
        if find_tool(tool).is_none() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// `<instance>/data.img` for `<instance>/data`.
fn image_of(dir: &Path) -> PathBuf {
    dir.with_extension("img")
}

fn mount_image(os: &dyn DiskOs, dir: &Path, gib: u64) -> Result<(), String> {
    let image = image_of(dir);
    if !pool::take(dir, gib, &image) {
        os.format(&image, gib)?;
    }
    os.mount(&image, dir).map_err(|e| format!("cannot mount {}: {e}", image.display()))?;
    let _ = std::fs::remove_dir(dir.join("lost+found"));
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))
}

/// Deletes a data dir: empties its disk and returns the image to the pool (see [`pool`];
/// an image that cannot be emptied is deleted), unmounts it (the loop device goes with it)
/// and removes the directory. A dir that is already gone is fine.
pub fn release(dir: &Path) -> std::io::Result<()> {
    release_on(&HostDisks, dir)
}

fn release_on(os: &dyn DiskOs, dir: &Path) -> std::io::Result<()> {
    if os.is_mount_point(dir) {
        let emptied = pool::empty(os, dir);
        os.unmount(dir)?;
        if emptied {
            pool::give_back(dir, &image_of(dir));
        }
    }
    let removed = match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    match std::fs::remove_file(image_of(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::os::is_mount_point;
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn plain_dirs_when_not_enforced_and_release_removes_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("i-1/data");
        DataDisks::disabled().prepare(&dir, 50).unwrap();
        assert!(dir.is_dir() && !is_mount_point(&dir));
        std::fs::write(dir.join("f"), "x").unwrap();
        release(&dir).unwrap();
        assert!(!dir.exists());
        release(&dir).unwrap();
    }

    /// Runs where loop mounts work (root with loop devices, as in CI); elsewhere the detection
    /// itself is what is checked.
    #[test]
    fn an_enforced_disk_holds_its_size_and_no_more() {
        let disks = DataDisks::detect();
        if !disks.enforced() {
            assert!(unsupported_reason().is_some());
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("i-1/data");
        disks.prepare(&dir, 1).unwrap();
        assert!(is_mount_point(&dir), "not mounted");
        disks.prepare(&dir, 1).unwrap(); // idempotent
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "an empty disk");
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        let total = statvfs_total(&dir);
        assert!(total > GIB * 9 / 10 && total <= GIB, "size {total}");
        let file = std::fs::File::create(dir.join("big")).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: fd is open.
        let too_big = unsafe { libc::fallocate(fd, 0, 0, 2 * GIB as libc::off_t) };
        assert_eq!(too_big, -1, "2 GiB fit on a 1 GiB disk");
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOSPC));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::fallocate(fd, 0, 0, 64 << 20) }, 0);
        drop(file);
        let image = image_of(&dir);
        assert!(image.metadata().unwrap().blocks() * 512 < 256 << 20, "the image is sparse");
        release(&dir).unwrap();
        assert!(!dir.exists() && !image.exists());
        let pool = tmp.path().join(pool::DIR);
        assert_eq!(std::fs::read_dir(&pool).unwrap().count(), 1, "the image waits in the pool");

        // The next disk of that size is the same image, emptied: no format.
        let again = tmp.path().join("i-2/data");
        disks.prepare(&again, 1).unwrap();
        assert!(is_mount_point(&again), "not mounted");
        assert_eq!(std::fs::read_dir(&pool).unwrap().count(), 0, "taken from the pool");
        assert_eq!(std::fs::read_dir(&again).unwrap().count(), 0, "emptied: {again:?}");
        release(&again).unwrap();
    }

    fn statvfs_total(dir: &Path) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: zeroed statvfs is a valid out-parameter; path is NUL-terminated.
        unsafe {
            let mut stat: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(path.as_ptr(), &mut stat), 0);
            stat.f_blocks * stat.f_frsize
        }
    }
}
