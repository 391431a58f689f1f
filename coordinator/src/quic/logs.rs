//! Workload output as the agents push it: one file per instance under `<data-dir>/logs`,
//! written at the offset the agent gives, so a chunk sent twice lands on itself. Each file
//! keeps at most `[logs] max_bytes` on disk, oldest dropped ([`gpuspot_common::logcap`]), so
//! nothing a guest prints fills the coordinator's disk. Directory 0700, files 0600.

use gpuspot_common::InstanceId;
use gpuspot_common::logcap;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct LogStore {
    dir: PathBuf,
    max_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("instance id {0:?} is not a valid id")]
    BadId(String),
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl LogStore {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self { dir, max_bytes }
    }

    fn path(&self, id: &InstanceId) -> Result<PathBuf, LogError> {
        let ok = !id.as_str().is_empty()
            && id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(LogError::BadId(id.to_string()));
        }
        Ok(self.dir.join(format!("{id}.log")))
    }

    pub fn write_at(&self, id: &InstanceId, offset: u64, data: &[u8]) -> Result<(), LogError> {
        let path = self.path(id)?;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(data)?;
        logcap::drop_head(&file, self.max_bytes)?;
        Ok(())
    }

    /// How many bytes we hold: where the agent resumes after a reconnect.
    pub fn len(&self, id: &InstanceId) -> u64 {
        self.path(id).ok().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len())
    }

    /// The last `max` bytes of the output (all it keeps when smaller).
    pub fn read_tail(&self, id: &InstanceId, max: u64) -> Result<Vec<u8>, LogError> {
        let max = max.min(self.max_bytes);
        let path = self.path(id)?;
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_chunks_are_idempotent_and_ids_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::new(dir.path().join("logs"), 1 << 20);
        let id = InstanceId::from("i-abc");
        logs.write_at(&id, 0, b"hello ").unwrap();
        logs.write_at(&id, 6, b"world\n").unwrap();
        logs.write_at(&id, 0, b"hello ").unwrap();
        assert_eq!(logs.read_tail(&id, 1024).unwrap(), b"hello world\n");
        assert_eq!(logs.len(&id), 12);
        assert_eq!(logs.read_tail(&id, 6).unwrap(), b"world\n");
        assert!(matches!(
            logs.write_at(&InstanceId::from("../x"), 0, b"x"),
            Err(LogError::BadId(_))
        ));
    }

    #[test]
    fn a_log_keeps_at_most_max_bytes_on_disk_and_its_offsets() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let max = 64 * 1024;
        let logs = LogStore::new(dir.path().join("logs"), max);
        let id = InstanceId::from("i-loud");
        let chunk = vec![b'x'; 16 * 1024];
        for n in 0..64u64 {
            logs.write_at(&id, n * chunk.len() as u64, &chunk).unwrap();
        }
        logs.write_at(&id, 64 * chunk.len() as u64, b"last line\n").unwrap();
        let total = 64 * chunk.len() as u64 + 10;
        assert_eq!(logs.len(&id), total, "the agent resumes after everything it sent");
        let file = std::fs::File::open(dir.path().join("logs/i-loud.log")).unwrap();
        assert!(logcap::allocated_bytes(&file).unwrap() <= max + 8192);
        let tail = logs.read_tail(&id, u64::MAX).unwrap();
        assert_eq!(tail.len() as u64, max);
        assert!(tail.ends_with(b"xlast line\n") && !tail.contains(&0));
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("logs")), 0o700);
        assert_eq!(mode(&dir.path().join("logs/i-loud.log")), 0o600);
    }
}
