//! What data disks need of the operating system: formatting an image, loop-mounting it,
//! unmounting, trimming, and telling a mounted disk from a plain dir. [`HostDisks`] does it
//! for real (root, loop devices, `mkfs.ext4`); tests put a fake behind [`DiskOs`] to check
//! the pool and release logic without root.

use super::GIB;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bytes per inode: room for ~32k files per GiB (a Python env in `$HOME` has many).
const BYTES_PER_INODE: &str = "32768";
/// `_IOWR('X', 121, struct fstrim_range)`.
const FITRIM: libc::c_ulong = 0xC018_5879;

/// The system calls and tools behind data disks.
pub trait DiskOs: Send + Sync + 'static {
    /// Makes `image` a fresh sparse file of `gib` GiB holding an empty filesystem.
    fn format(&self, image: &Path, gib: u64) -> Result<(), String>;
    /// Mounts `image` on `dir` (`nosuid,nodev`).
    fn mount(&self, image: &Path, dir: &Path) -> std::io::Result<()>;
    fn unmount(&self, dir: &Path) -> std::io::Result<()>;
    /// Whether `dir` is the root of a filesystem mounted on it, as a data disk is.
    fn is_mount_point(&self, dir: &Path) -> bool;
    /// Gives the host the blocks freed on the mounted disk `dir` (best effort).
    fn trim(&self, dir: &Path);
}

/// This host's loop devices, `mkfs.ext4` and mount(2).
pub struct HostDisks;

impl DiskOs for HostDisks {
    fn format(&self, image: &Path, gib: u64) -> Result<(), String> {
        make_image(image, gib)
    }

    fn mount(&self, image: &Path, dir: &Path) -> std::io::Result<()> {
        super::loopdev::mount(image, dir)
    }

    fn unmount(&self, dir: &Path) -> std::io::Result<()> {
        unmount(dir)
    }

    fn is_mount_point(&self, dir: &Path) -> bool {
        is_mount_point(dir)
    }

    fn trim(&self, dir: &Path) {
        if let Ok(handle) = std::fs::File::open(dir) {
            let mut range = [0u64, u64::MAX, 0];
            // SAFETY: `range` has the layout of struct fstrim_range and outlives the call. A
            // failure only leaves the freed blocks allocated in the image.
            unsafe { libc::ioctl(handle.as_raw_fd(), FITRIM, range.as_mut_ptr()) };
        }
    }
}

/// `tool` in PATH or the sbin dirs (an agent's PATH may lack them).
pub(super) fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|candidate| candidate.is_file())
}

/// A fresh sparse image of `gib` GiB holding an empty ext4.
fn make_image(image: &Path, gib: u64) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(image)
        .map_err(|e| format!("cannot create {}: {e}", image.display()))?;
    file.set_len(gib.saturating_mul(GIB)).map_err(|e| format!("cannot size the image: {e}"))?;
    drop(file);
    // No journal and lazy init: a scratch disk that is ready in milliseconds.
    let options = "lazy_itable_init=1,lazy_journal_init=1,nodiscard";
    let args = ["-q", "-F", "-m", "0", "-O", "^has_journal", "-i", BYTES_PER_INODE, "-E", options];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.push(image.as_os_str());
    run("mkfs.ext4", &args)
}

fn run(tool: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let program = find_tool(tool).ok_or_else(|| format!("{tool} is not installed"))?;
    let output = Command::new(&program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!("{tool} failed ({}): {}", output.status, stderr.trim()))
}

/// Whether `dir` is the root of a filesystem mounted on it (its device differs from its
/// parent's), as a data disk is.
pub(super) fn is_mount_point(dir: &Path) -> bool {
    let (Ok(own), Some(Ok(parent))) =
        (std::fs::symlink_metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    own.is_dir() && own.dev() != parent.dev()
}

fn unmount(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    // Still busy (a descriptor not yet closed): detach now, freed when the last one goes.
    // SAFETY: as above.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    Err(std::io::Error::last_os_error())
}
