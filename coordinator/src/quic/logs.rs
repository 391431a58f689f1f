//! Workload output as the agents push it: one file per instance under `<data-dir>/logs`,
//! written at the offset the agent gives, so a chunk sent twice lands on itself.

use gpuspot_common::InstanceId;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct LogStore {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("instance id {0:?} is not a valid id")]
    BadId(String),
    #[error("log i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl LogStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
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
        std::fs::create_dir_all(&self.dir)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(self.path(id)?)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(data)?;
        Ok(())
    }

    /// How many bytes we hold: where the agent resumes after a reconnect.
    pub fn len(&self, id: &InstanceId) -> u64 {
        self.path(id).ok().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len())
    }

    /// The last `max` bytes of the output (all of it when smaller).
    pub fn read_tail(&self, id: &InstanceId, max: u64) -> Result<Vec<u8>, LogError> {
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
        let logs = LogStore::new(dir.path().join("logs"));
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
}
