//! The snapshot store on disk: `<dir>/<id>.tar.zst` (`[snapshots] dir`, default
//! `<data-dir>/snapshots`; shared by every coordinator of one store), its sha256 in a
//! `<id>.sha256` sidecar, and `<id>.tar.zst.part` while an upload is in flight. Ids are
//! `s-` and 16 lowercase hex digits; anything else is refused before it touches a path.

use chrono::{DateTime, Utc};
use gpuspot_common::protocol::SnapshotRef;
use gpuspot_common::snapshot::{SnapshotError, sha256_file};
use std::path::{Path, PathBuf};

const PACKED: &str = ".tar.zst";
const PART: &str = ".tar.zst.part";
const SIDECAR: &str = ".sha256";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotStoreError {
    #[error("{0:?} is not a snapshot id")]
    BadId(String),
    #[error("snapshot store: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot store: {0}")]
    Checksum(#[from] SnapshotError),
}

#[derive(Clone, Debug)]
pub struct SnapshotFiles {
    dir: PathBuf,
}

/// Whether `id` has the form of a snapshot id (and so is safe in a file name).
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("s-").is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A fresh random snapshot id.
pub fn new_id() -> String {
    format!("s-{}", hex::encode(rand::random::<[u8; 8]>()))
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotStoreError + '_ {
    move |source| SnapshotStoreError::Io { path: path.to_owned(), source }
}

impl SnapshotFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &str, suffix: &str) -> Result<PathBuf, SnapshotStoreError> {
        if !valid_id(id) {
            return Err(SnapshotStoreError::BadId(id.to_owned()));
        }
        Ok(self.dir.join(format!("{id}{suffix}")))
    }

    /// Where the packed snapshot `id` lives (whether or not it exists).
    pub fn path(&self, id: &str) -> Result<PathBuf, SnapshotStoreError> {
        self.file(id, PACKED)
    }

    /// Where an upload of `id` is written until it is verified. Creates the store's dir.
    pub fn part_path(&self, id: &str) -> Result<PathBuf, SnapshotStoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        self.file(id, PART)
    }

    /// Makes a verified upload visible: writes the sidecar, then renames the part file.
    pub fn commit(&self, id: &str, sha256: &str) -> Result<(), SnapshotStoreError> {
        let sidecar = self.file(id, SIDECAR)?;
        std::fs::write(&sidecar, sha256).map_err(io_at(&sidecar))?;
        let (part, path) = (self.file(id, PART)?, self.path(id)?);
        std::fs::rename(&part, &path).map_err(io_at(&part))
    }

    /// The stored snapshot `id`; None when there is none. The sha256 comes from the sidecar
    /// (recomputed and rewritten when the sidecar is missing or unreadable).
    pub fn get(&self, id: &str) -> Result<Option<SnapshotRef>, SnapshotStoreError> {
        let path = self.path(id)?;
        let size = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let sidecar = self.file(id, SIDECAR)?;
        let sha256 = match std::fs::read_to_string(&sidecar) {
            Ok(sha) if sha.trim().len() == 64 => sha.trim().to_owned(),
            _ => {
                let sha = sha256_file(&path)?;
                std::fs::write(&sidecar, &sha).map_err(io_at(&sidecar))?;
                sha
            }
        };
        Ok(Some(SnapshotRef { id: id.to_owned(), sha256, size }))
    }

    /// Every stored snapshot with when it was stored, oldest first.
    pub fn list(&self) -> Result<Vec<(SnapshotRef, DateTime<Utc>)>, SnapshotStoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_at(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(PACKED).filter(|id| valid_id(id)) else {
                continue;
            };
            let created =
                entry.metadata().and_then(|m| m.modified()).map_err(io_at(&entry.path()))?;
            if let Some(snapshot) = self.get(id)? {
                out.push((snapshot, DateTime::<Utc>::from(created)));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
        Ok(out)
    }

    /// Deletes snapshot `id` (and its sidecar and any part file). Removing a missing one is fine.
    pub fn remove(&self, id: &str) -> Result<(), SnapshotStoreError> {
        for suffix in [PACKED, SIDECAR, PART] {
            let path = self.file(id, suffix)?;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        Ok(())
    }

    /// Removes part files left by uploads that a crash interrupted; returns how many.
    pub fn remove_stale_parts(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return 0 };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(PART))
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_any_path_is_built() {
        assert!(valid_id(&new_id()));
        assert!(valid_id("s-0123456789abcdef"));
        for bad in [
            "",
            "s-",
            "s-0123456789ABCDEF",
            "s-0123456789abcde",
            "../s-0123456789abcdef",
            "s-0123456789abcdef/..",
            "x-0123456789abcdef",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        let files = SnapshotFiles::new(PathBuf::from("/nonexistent"));
        assert!(matches!(files.path("../../etc/passwd"), Err(SnapshotStoreError::BadId(_))));
        assert!(matches!(files.remove("s-../x"), Err(SnapshotStoreError::BadId(_))));
    }

    #[test]
    fn commit_get_list_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::new(tmp.path().join("snapshots"));
        assert!(files.list().unwrap().is_empty());
        let id = new_id();
        std::fs::write(files.part_path(&id).unwrap(), b"packed bytes").unwrap();
        assert_eq!(files.get(&id).unwrap(), None, "a part file is not a snapshot");
        let sha = sha256_file(&files.part_path(&id).unwrap()).unwrap();
        files.commit(&id, &sha).unwrap();
        let expected = SnapshotRef { id: id.clone(), sha256: sha.clone(), size: 12 };
        assert_eq!(files.get(&id).unwrap(), Some(expected.clone()));
        std::fs::remove_file(files.dir().join(format!("{id}.sha256"))).unwrap();
        assert_eq!(files.get(&id).unwrap(), Some(expected.clone()), "sidecar recomputed");
        let listed = files.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, expected);
        files.remove(&id).unwrap();
        files.remove(&id).unwrap();
        assert!(files.list().unwrap().is_empty());
        assert!(std::fs::read_dir(files.dir()).unwrap().next().is_none());
    }

    #[test]
    fn stale_parts_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::new(tmp.path().to_owned());
        std::fs::write(files.part_path(&new_id()).unwrap(), b"half").unwrap();
        assert_eq!(files.remove_stale_parts(), 1);
        assert_eq!(files.remove_stale_parts(), 0);
    }
}
