//! One agent per state dir (docs/contracts.md#guests): `<state_dir>/agent.lock` (see
//! [`gpuspot_common::dirlock`]). A second agent on the same state dir would adopt, stop and
//! delete the first one's workloads, so it refuses to start and names the holder.

use gpuspot_common::dirlock::{DirLock, DirLockError};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "agent.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another gpuspot agent{} is using the state dir {}; stop it first, or give this one its own --state-dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        dir.display()
    )]
    Held { dir: PathBuf, holder: Option<u32> },
    #[error(transparent)]
    Io(DirLockError),
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock(DirLock);

impl StateLock {
    /// Locks `state_dir` (which must exist) for this process, or says who holds it.
    pub fn acquire(state_dir: &Path) -> Result<Self, LockError> {
        DirLock::acquire(state_dir, LOCK_FILE).map(StateLock).map_err(|error| match error {
            DirLockError::Held { dir, holder } => LockError::Held { dir, holder },
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
    fn a_second_agent_is_told_which_pid_holds_the_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(tmp.path()).unwrap();
        assert!(first.path().ends_with(LOCK_FILE));
        let text = StateLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            text.contains(&format!("another gpuspot agent (pid {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
    }
}
