//! `gpuspot-coordinator backup --to FILE` (docs/contracts.md#operating-hosts): a consistent copy of
//! the database while the coordinator runs. SQLite's `VACUUM INTO` reads in one transaction, so the
//! copy is the state as of one commit (WAL mode lets the coordinator write meanwhile); it is
//! written beside the target and renamed into place, 0600, so a half-written backup never carries
//! the target's name.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no database at {0}: is this the coordinator's data dir?")]
    NoDatabase(String),
    #[error("{0} exists already; back up to a new file")]
    TargetExists(String),
    #[error("backup: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("backup: {0}")]
    Io(#[from] std::io::Error),
}

/// Copies `<data_dir>/gpuspot.db` to `to`; returns the copy's size in bytes.
pub fn backup(data_dir: &Path, to: &Path) -> Result<u64, BackupError> {
    let db = data_dir.join("gpuspot.db");
    if !db.is_file() {
        return Err(BackupError::NoDatabase(db.display().to_string()));
    }
    if to.exists() {
        return Err(BackupError::TargetExists(to.display().to_string()));
    }
    let partial = to.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let result = conn.execute("VACUUM INTO ?1", [partial.to_string_lossy()]);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    super::files::restrict(&partial, 0o600)?;
    std::fs::rename(&partial, to)?;
    Ok(std::fs::metadata(to)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn a_backup_opens_as_the_same_store_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let live = tmp.path().join("live");
        let store = SqliteStore::open(&live).unwrap();
        let before = store.load().unwrap();
        let file = tmp.path().join("backup.db");
        assert!(backup(&live, &file).unwrap() > 0);
        let restored = tmp.path().join("restored");
        std::fs::create_dir(&restored).unwrap();
        std::fs::copy(&file, restored.join("gpuspot.db")).unwrap();
        let again = SqliteStore::open(&restored).unwrap().load().unwrap();
        assert_eq!(again.instances.len(), before.instances.len());
        assert!(matches!(backup(&live, &file), Err(BackupError::TargetExists(_))));
        let nothing = tmp.path().join("empty");
        assert!(matches!(backup(&nothing, &tmp.path().join("x")), Err(BackupError::NoDatabase(_))));
    }
}
