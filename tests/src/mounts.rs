//! Data disks (docs/contracts.md#guests: an instance's data dir may be a loop-mounted image) left
//! mounted by agents a test killed: unmounted when the cluster goes, so that its temp dir can be
//! deleted and no loop device outlives the test.

use std::path::{Path, PathBuf};

/// Mount points at or below `root`, deepest first.
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(unescape)
        .filter(|point| point.starts_with(&root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Detaches every mount at or below `root` (lazily: a straggling descriptor cannot block it).
pub fn unmount_under(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    for point in mounts_under(root) {
        let Ok(path) = std::ffi::CString::new(point.as_os_str().as_bytes()) else { continue };
        // SAFETY: a valid NUL-terminated path; unmounting has no memory preconditions.
        unsafe {
            libc::umount2(path.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// /proc/self/mounts writes spaces and other odd bytes as octal escapes (`\040`).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok());
        match (bytes[i], octal.and_then(|d| u8::from_str_radix(d, 8).ok())) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_mount_points_are_read_back() {
        assert_eq!(unescape("/tmp/a\\040b"), PathBuf::from("/tmp/a b"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert!(mounts_under(Path::new("/nonexistent-root")).is_empty());
    }
}
