//! The workspace's `gpuspot` command line as a user runs it: the debug binary next to the
//! test binary's `deps/` dir, pointed at a cluster through `GPUSPOT_API` / `GPUSPOT_TOKEN`,
//! with its exit status, stdout and stderr kept apart (`--wait` reports progress on stderr).

use crate::api::Api;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The directory of the workspace's debug binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent().and_then(|deps| deps.parent()).expect("target/debug").to_owned()
}

/// `target/debug/gpuspot`; panics, saying how to build it, when it is missing (a test
/// package cannot make cargo build another package's binary).
pub fn binary() -> PathBuf {
    let bin = bin_dir().join("gpuspot");
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build -p gpuspot-cli` first (`cargo test --workspace` builds it)",
        bin.display()
    );
    bin
}

/// `gpuspot ARGS` against `api`, with nothing of the caller's environment that would point
/// it elsewhere or change its tables.
pub fn command(api: &Api, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("GPUSPOT_API", &api.base)
        .env("GPUSPOT_TOKEN", api.token.as_deref().unwrap_or_default())
        .env_remove("GPUSPOT_ADMIN_TOKEN")
        .env_remove("COLUMNS")
        .stdin(Stdio::null());
    command
}

/// Runs `gpuspot ARGS` to its end.
pub fn run(api: &Api, args: &[&str]) -> Output {
    command(api, args).output().expect("run gpuspot")
}

/// Stdout and stderr of `output`, for assertions and their messages.
pub fn texts(output: &Output) -> (String, String) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (text(&output.stdout), text(&output.stderr))
}
