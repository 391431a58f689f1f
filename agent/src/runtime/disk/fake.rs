//! A [`DiskOs`] that formats and mounts nothing: an "image" is a sparse file and a "mount"
//! an entry in a set, so that the pool and release logic are checked without root.

use super::{DataDisks, DiskOs, GIB, pool};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
pub(super) struct FakeDisks {
    mounted: Mutex<HashSet<PathBuf>>,
    formats: AtomicUsize,
    trims: AtomicUsize,
}

impl DiskOs for FakeDisks {
    fn format(&self, image: &Path, gib: u64) -> Result<(), String> {
        self.formats.fetch_add(1, Ordering::Relaxed);
        let file = std::fs::File::create(image).map_err(|e| e.to_string())?;
        file.set_len(gib * GIB).map_err(|e| e.to_string())
    }

    fn mount(&self, image: &Path, dir: &Path) -> std::io::Result<()> {
        assert!(image.is_file(), "mounting a missing image {image:?}");
        std::fs::create_dir_all(dir)?;
        self.mounted.lock().unwrap().insert(dir.to_owned());
        Ok(())
    }

    fn unmount(&self, dir: &Path) -> std::io::Result<()> {
        match self.mounted.lock().unwrap().remove(dir) {
            true => Ok(()),
            false => Err(std::io::Error::other("not mounted")),
        }
    }

    fn is_mount_point(&self, dir: &Path) -> bool {
        self.mounted.lock().unwrap().contains(dir)
    }

    fn trim(&self, _dir: &Path) {
        self.trims.fetch_add(1, Ordering::Relaxed);
    }
}

fn fake() -> (&'static FakeDisks, DataDisks) {
    let os: &'static FakeDisks = Box::leak(Box::default());
    (os, DataDisks::on(os))
}

fn pooled(instances: &Path) -> usize {
    std::fs::read_dir(instances.join(pool::DIR)).map_or(0, |dir| dir.count())
}

#[test]
fn a_released_disk_waits_in_the_pool_and_the_next_of_its_size_reuses_it_unformatted() {
    let tmp = tempfile::tempdir().unwrap();
    let (os, disks) = fake();
    let first = tmp.path().join("i-1/data");
    disks.prepare(&first, 2).unwrap();
    assert!(os.is_mount_point(&first) && os.formats.load(Ordering::Relaxed) == 1);
    disks.prepare(&first, 2).unwrap();
    assert_eq!(os.formats.load(Ordering::Relaxed), 1, "a mounted disk is kept as it is");
    std::fs::write(first.join("weights"), "x").unwrap();

    disks.release(&first).unwrap();
    assert!(!first.exists() && !tmp.path().join("i-1/data.img").exists());
    assert_eq!((pooled(tmp.path()), os.trims.load(Ordering::Relaxed)), (1, 1));

    let second = tmp.path().join("i-2/data");
    disks.prepare(&second, 2).unwrap();
    assert_eq!(os.formats.load(Ordering::Relaxed), 1, "taken from the pool, not formatted");
    assert_eq!(pooled(tmp.path()), 0);
    assert_eq!(std::fs::metadata(tmp.path().join("i-2/data.img")).unwrap().len(), 2 * GIB);

    let other_size = tmp.path().join("i-3/data");
    disks.prepare(&other_size, 1).unwrap();
    assert_eq!(os.formats.load(Ordering::Relaxed), 2, "no pooled image of that size");
}

#[test]
fn no_size_means_a_plain_dir_and_release_of_a_plain_dir_pools_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (os, disks) = fake();
    let dir = tmp.path().join("i-1/data");
    disks.prepare(&dir, 0).unwrap();
    assert!(dir.is_dir() && !os.is_mount_point(&dir));
    assert_eq!(os.formats.load(Ordering::Relaxed), 0);
    disks.release(&dir).unwrap();
    assert!(!dir.exists());
    assert_eq!(pooled(tmp.path()), 0);
    disks.release(&dir).unwrap(); // already gone: fine
}
