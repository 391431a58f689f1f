//! Small JSON records in the agent's state dir (a workload's process record, its
//! assignment), written so that a crash leaves the old record or the new one, never half
//! of one, and private to the agent (0600: they hold the user's environment).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `value` as `<dir>/<name>` through a synced staging file and a rename.
pub fn save_json(dir: &Path, name: &str, value: &impl Serialize) -> std::io::Result<()> {
    let staging = dir.join(format!(".{name}.new"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staging)?;
    file.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&staging, dir.join(name))
}

/// `<dir>/<name>`, or `None` when it is missing or unreadable (logged).
pub fn load_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    let bytes = std::fs::read(dir.join(name)).ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|error| tracing::warn!(dir = %dir.display(), name, %error, "unreadable record"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_record_loads_back_and_a_torn_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        save_json(dir.path(), "r.json", &vec![1, 2, 3]).unwrap();
        assert_eq!(load_json::<Vec<i32>>(dir.path(), "r.json"), Some(vec![1, 2, 3]));
        std::fs::write(dir.path().join("r.json"), b"[1, 2").unwrap();
        assert_eq!(load_json::<Vec<i32>>(dir.path(), "r.json"), None);
        assert_eq!(load_json::<Vec<i32>>(dir.path(), "missing.json"), None);
    }
}
