//! The SSH door's host key: an Ed25519 key made at the first start and kept in the data dir
//! as `ssh_host_ed25519_key` (OpenSSH format, 0600), so clients see the same host key after
//! every restart.

use crate::store::files::{restrict, write_private};
use anyhow::Context as _;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use std::path::Path;

pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

pub fn load_or_create(data_dir: &Path) -> anyhow::Result<PrivateKey> {
    let path = data_dir.join(HOST_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        restrict(&path, 0o600).with_context(|| format!("tightening {}", path.display()))?;
        return PrivateKey::from_openssh(text.trim())
            .with_context(|| format!("reading the SSH host key {}", path.display()));
    }
    let seed: [u8; 32] = rand::random();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key.to_openssh(LineEnding::LF).context("encoding the SSH host key")?;
    write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "created the SSH host key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_host_key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        let mode = std::fs::metadata(dir.path().join(HOST_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
