//! One coordinator per data dir (docs/contracts.md#guests): two on the same SQLite database and CA
//! would each believe they own every host and deadline. A running coordinator holds
//! `<data_dir>/coordinator.lock` (see [`gpuspot_common::dirlock`]) for as long as it lives. Tools
//! that share the dir on purpose (`token create`) do not take the lock.

use gpuspot_common::dirlock::{DirLock, DirLockError};
use std::path::Path;

pub const LOCK_FILE: &str = "coordinator.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data dir {dir} is in use by another coordinator{}: stop it first, or give this one \
         another --data-dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Held { dir: String, holder: Option<u32> },
    #[error(transparent)]
    Io(DirLockError),
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct DataDirLock(DirLock);

impl DataDirLock {
    /// Takes the lock of `data_dir` (which must exist), or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, LockError> {
        DirLock::acquire(data_dir, LOCK_FILE).map(DataDirLock).map_err(|error| match error {
            DirLockError::Held { dir, holder } => {
                LockError::Held { dir: dir.display().to_string(), holder }
            }
            other => LockError::Io(other),
        })
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_coordinator_is_told_which_pid_holds_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        assert!(first.path().ends_with(LOCK_FILE));
        let message = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        let expected = format!("in use by another coordinator (pid {})", std::process::id());
        assert!(message.contains(&expected), "{message}");
    }
}
