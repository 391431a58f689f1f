//! Emptied data-disk images waiting to be used again, `<instances>/.disks/<gib>g-<n>.img`
//! (0600, root's). Which images the pool holds is read from its dir once per process and
//! then kept in memory, so taking one is a lookup and a rename whatever the pool's size.
//! At most [`MAX_IMAGES`] wait in one pool; beyond, a released image is deleted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// The pool's dir, beside the instance dirs (a dot name: never an instance id).
pub const DIR: &str = ".disks";
const MAX_IMAGES: usize = 1024;

/// Per pool dir: the images it holds, by size in GiB.
type Index = HashMap<PathBuf, HashMap<u64, Vec<PathBuf>>>;
static POOLS: Mutex<Option<Index>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// `<instances>/.disks` for `<instances>/<id>/data`.
fn pool_dir(data_dir: &Path) -> Option<PathBuf> {
    Some(data_dir.parent()?.parent()?.join(DIR))
}

/// Runs `f` on the index of `dir`, read from disk the first time.
fn with_pool<T>(dir: &Path, f: impl FnOnce(&mut HashMap<u64, Vec<PathBuf>>) -> T) -> T {
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    let pools = pools.get_or_insert_with(HashMap::new);
    let pool = pools.entry(dir.to_owned()).or_insert_with(|| read(dir));
    f(pool)
}

fn read(dir: &Path) -> HashMap<u64, Vec<PathBuf>> {
    let mut pool: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let gib = name.to_str().and_then(|n| n.split_once("g-")).and_then(|(g, _)| g.parse().ok());
        if let Some(gib) = gib {
            pool.entry(gib).or_default().push(entry.path());
        }
    }
    pool
}

/// Moves a pooled image of `gib` GiB to `image`; false when the pool has none.
pub(super) fn take(data_dir: &Path, gib: u64, image: &Path) -> bool {
    let Some(dir) = pool_dir(data_dir) else { return false };
    loop {
        let Some(pooled) = with_pool(&dir, |pool| pool.get_mut(&gib)?.pop()) else {
            return false;
        };
        if std::fs::rename(&pooled, image).is_ok() {
            return true;
        }
    }
}

/// Empties the mounted disk `dir` and trims it; false when something could not be removed
/// (that image is not used again).
pub(super) fn empty(os: &dyn super::DiskOs, dir: &Path) -> bool {
    let mut emptied = true;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(error) = removed {
            tracing::warn!(path = %path.display(), %error, "cannot empty a data disk; it is not reused");
            emptied = false;
        }
    }
    if emptied {
        os.trim(dir);
    }
    emptied
}

/// Puts the unmounted `image` of `data_dir` into the pool, or deletes it when the pool is
/// full or the move fails.
pub(super) fn give_back(data_dir: &Path, image: &Path) {
    let Ok(len) = image.metadata().map(|m| m.len()) else { return };
    let gib = len / super::GIB;
    let kept = pool_dir(data_dir).filter(|_| len % super::GIB == 0 && gib > 0).and_then(|dir| {
        if with_pool(&dir, |pool| pool.values().map(Vec::len).sum::<usize>()) >= MAX_IMAGES {
            return None;
        }
        std::fs::create_dir_all(&dir).ok()?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = stamp.map_or(0, |d| d.as_nanos());
        let pooled = dir.join(format!("{gib}g-{}-{nanos}-{n}.img", std::process::id()));
        std::fs::rename(image, &pooled).ok()?;
        with_pool(&dir, |pool| pool.entry(gib).or_default().push(pooled));
        Some(())
    });
    if kept.is_none() {
        let _ = std::fs::remove_file(image);
    }
}
