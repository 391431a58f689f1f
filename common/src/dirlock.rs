//! One process per directory: `<dir>/<name>` is `flock`ed exclusively for as long as the
//! holder lives (the kernel drops the lock when the process ends, however it ends) and holds
//! its pid, so that a second process can say who holds the dir. The agent uses it for its
//! state dir and the coordinator for its data dir (docs/contracts.md#guests): two of either on one
//! dir would each believe they own every workload, host and deadline.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    /// Another open file holds the lock; `holder` is the pid it wrote, when readable.
    #[error("{} is locked by another process{}", dir.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { dir: PathBuf, holder: Option<u32> },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist) through its file `name` (0600), or says who holds it.
    /// flock locks belong to open files: a second call in the same process is refused too.
    pub fn acquire(dir: &Path, name: &str) -> Result<Self, DirLockError> {
        let path = dir.join(name);
        let io = |source| DirLockError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder_pid(&mut file);
                return Err(DirLockError::Held { dir: dir.to_owned(), holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Ours now: the pid is for the next one's message (the lock itself is the flock).
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "x.lock").unwrap();
        let pid = std::process::id();
        assert_eq!(std::fs::read_to_string(first.path()).unwrap().trim(), pid.to_string());
        let refused = DirLock::acquire(dir.path(), "x.lock").unwrap_err();
        assert!(
            matches!(&refused, DirLockError::Held { holder: Some(p), .. } if *p == pid),
            "{refused:?}"
        );
        assert!(refused.to_string().contains(&format!("(pid {pid})")), "{refused}");
        drop(first);
        DirLock::acquire(dir.path(), "x.lock").expect("free again once the holder is gone");
    }
}
