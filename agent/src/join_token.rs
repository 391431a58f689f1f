//! Where the agent's join token comes from (docs/contracts.md#tokens): a file only root may read
//! (`--join-token-file PATH`, `-` for stdin), `GPUSPOT_JOIN_TOKEN`, or the config file's
//! `join_token`; never the command line, which every local user (and every guest that can
//! see the agent's process) reads in `/proc/PID/cmdline`.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The environment variable that may hold the token.
pub const ENV: &str = "GPUSPOT_JOIN_TOKEN";

/// More than any token needs (they are about 130 bytes): a bigger input is a wrong file.
pub const MAX_BYTES: u64 = 4096;

/// What `--join-token` is answered with.
pub const ON_COMMAND_LINE: &str = "a join token on the command line is readable by every user of this \
host (/proc/PID/cmdline): put it in a file only the agent's user can read and pass --join-token-file PATH \
(or --join-token-file - to read it from stdin), or set GPUSPOT_JOIN_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the join token from {0}: {1}")]
    Read(String, std::io::Error),
    #[error(
        "the join token file {path} may be read or changed by other users (mode {mode:04o}): \
         chmod 600 {path}"
    )]
    Exposed { path: String, mode: u32 },
    #[error(
        "{path} belongs to uid {owner}, not to the agent's user or root: whoever owns it can \
         swap the token (and point this host at a coordinator of theirs); chown it"
    )]
    Foreign { path: String, owner: u32 },
    #[error("{0} holds no join token (it is empty)")]
    Empty(String),
    #[error("{0} holds more than {MAX_BYTES} bytes: not a join token")]
    TooLong(String),
}

/// The join-token options of `gpuspot-agent` and `gpuspot-agent fleet`.
#[derive(Debug, Default, clap::Args)]
pub struct JoinTokenArgs {
    /// File holding the join token from `gpuspot-coordinator token create`, `-` for stdin;
    /// or set GPUSPOT_JOIN_TOKEN. Needed only until the host has joined. The file must not be
    /// readable by other users.
    #[arg(long, value_name = "PATH")]
    pub join_token_file: Option<PathBuf>,
    /// Refused: see [`ON_COMMAND_LINE`]. Declared so that the refusal can say why.
    #[arg(long = "join-token", hide = true, num_args = 0..=1, default_missing_value = "",
          value_name = "TOKEN")]
    pub on_command_line: Option<String>,
}

impl JoinTokenArgs {
    /// Exits with a usage error (status 2) when a token was given on the command line. The
    /// message never repeats the token.
    pub fn refuse_command_line(&self, mut command: clap::Command) {
        if self.on_command_line.is_some() {
            command.error(clap::error::ErrorKind::ArgumentConflict, ON_COMMAND_LINE).exit();
        }
    }

    /// The token: from `--join-token-file`, else from the environment (`from_env`, taken
    /// with [`take_from_env`]); None when neither gives one.
    pub fn resolve(&self, from_env: Option<String>) -> Result<Option<String>, TokenError> {
        match &self.join_token_file {
            Some(path) if path.as_os_str() == "-" => read_bounded(std::io::stdin(), "stdin"),
            Some(path) => read_file(path),
            None => Ok(from_env.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())),
        }
    }
}

/// Reads `GPUSPOT_JOIN_TOKEN` and removes it from this process's environment, so that no
/// program the agent starts inherits it. Call first thing in `main`, before any thread.
pub fn take_from_env() -> Option<String> {
    let value = std::env::var(ENV).ok();
    if std::env::var_os(ENV).is_some() {
        // SAFETY: called at the top of `main`, before the process starts a thread, so no
        // other thread reads the environment at the same time.
        unsafe { std::env::remove_var(ENV) };
    }
    value
}

/// A token file: a regular file must be private to its owner, who is the agent's user or
/// root (a pipe or `/dev/stdin` has no such mode to check).
fn read_file(path: &Path) -> Result<Option<String>, TokenError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| TokenError::Read(shown.clone(), e))?;
    let meta = file.metadata().map_err(|e| TokenError::Read(shown.clone(), e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_file() && mode & 0o077 != 0 {
        return Err(TokenError::Exposed { path: shown, mode });
    }
    // SAFETY: geteuid cannot fail.
    let agent = unsafe { libc::geteuid() };
    if meta.is_file() && meta.uid() != agent && meta.uid() != 0 {
        return Err(TokenError::Foreign { path: shown, owner: meta.uid() });
    }
    read_bounded(file, &shown)
}

/// At most [`MAX_BYTES`] from `input`, trimmed; an error when there is more or nothing.
fn read_bounded(input: impl std::io::Read, shown: &str) -> Result<Option<String>, TokenError> {
    let mut text = String::new();
    input
        .take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| TokenError::Read(shown.to_owned(), e))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(TokenError::TooLong(shown.to_owned()));
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty(shown.to_owned()));
    }
    Ok(Some(token.to_owned()))
}

/// A config file that holds `join_token` should be as private as a token file; it is only
/// warned about, as agents already installed that way must keep starting.
pub fn warn_if_config_exposed(config: &Path) {
    let Ok(meta) = std::fs::metadata(config) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            config = %config.display(),
            mode = format!("{mode:04o}"),
            "the config holds join_token and other users may read it: chmod 600 it, or use \
             --join-token-file or GPUSPOT_JOIN_TOKEN"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    fn token_file(dir: &Path, mode: u32, text: &str) -> PathBuf {
        let path = dir.join(format!("token-{mode:o}"));
        let mut file =
            std::fs::File::options().write(true).create_new(true).mode(mode).open(&path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn args(path: &Path) -> JoinTokenArgs {
        JoinTokenArgs { join_token_file: Some(path.to_owned()), on_command_line: None }
    }

    #[test]
    fn a_private_file_gives_its_trimmed_contents_and_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(dir.path(), 0o600, "  gpuspot1.abc.def\n");
        let token = args(&path).resolve(Some("from-env".into())).unwrap();
        assert_eq!(token.as_deref(), Some("gpuspot1.abc.def"));
    }

    #[test]
    fn a_file_others_may_read_or_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o602] {
            let path = token_file(dir.path(), mode, "gpuspot1.abc.def\n");
            let error = args(&path).resolve(None).unwrap_err().to_string();
            assert!(error.contains(&format!("chmod 600 {}", path.display())), "{error}");
            assert!(!error.contains("gpuspot1.abc"), "{error}");
        }
    }

    #[test]
    fn a_private_file_another_user_owns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(dir.path(), 0o600, "gpuspot1.abc.def\n");
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can give a file away; as another user this cannot be set up
        }
        std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
        let error = args(&path).resolve(None).unwrap_err();
        assert!(matches!(error, TokenError::Foreign { owner: 4242, .. }), "{error}");
        std::os::unix::fs::chown(&path, Some(0), None).unwrap();
        assert!(args(&path).resolve(None).is_ok(), "root's own file is fine");
    }

    #[test]
    fn empty_oversized_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = token_file(dir.path(), 0o600, " \n");
        assert!(matches!(args(&empty).resolve(None), Err(TokenError::Empty(_))));
        let big = token_file(dir.path(), 0o400, &"x".repeat(MAX_BYTES as usize + 1));
        assert!(matches!(args(&big).resolve(None), Err(TokenError::TooLong(_))));
        let missing = dir.path().join("nope");
        assert!(matches!(args(&missing).resolve(None), Err(TokenError::Read(..))));
    }

    #[test]
    fn the_environment_is_used_without_a_file_and_blank_means_none() {
        let none = JoinTokenArgs::default();
        assert_eq!(none.resolve(Some(" t \n".into())).unwrap().as_deref(), Some("t"));
        assert_eq!(none.resolve(Some("  ".into())).unwrap(), None);
        assert_eq!(none.resolve(None).unwrap(), None);
    }
}
