//! File modes of the coordinator's data dir (docs/contracts.md#limits): the dir is 0700 and
//! everything secret in it (database, keys, tokens) 0600, created so and tightened when an older
//! version left them open.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) and makes it 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    restrict(dir, 0o700)
}

/// Creates `path` empty with mode 0600 if it is missing; tightens it to 0600 if not.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
    restrict(path, 0o600)
}

pub fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes `text` to `path` with mode 0600 (also when the file existed with another mode).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    restrict(path, 0o600)?;
    file.write_all(text.as_bytes())
}
