//! Running the `gpuspot` binary against a test's API: its output, and the checks that it
//! succeeded (with `--json` parsed) or failed with exit code 1.

use gpuspot_e2e::api::Api;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The `gpuspot` binary next to the test's (built by `cargo build -p gpuspot-cli`).
pub fn gpuspot_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let bin = exe.parent().and_then(|p| p.parent()).expect("target dir").join("gpuspot");
    assert!(bin.is_file(), "{} is not built: cargo build -p gpuspot-cli", bin.display());
    bin
}

/// Runs `gpuspot ARGS` against `api` (options before a `--`); the whole output.
pub fn gpuspot(api: &Api, args: &[&str]) -> Output {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    Command::new(gpuspot_bin())
        .args(&args[..split])
        .args(["--api", &api.base, "--token", api.token.as_deref().unwrap_or_default()])
        .args(&args[split..])
        .env_remove("GPUSPOT_API")
        .env_remove("GPUSPOT_TOKEN")
        .env_remove("GPUSPOT_ADMIN_TOKEN")
        .env_remove("COLUMNS")
        .output()
        .expect("run gpuspot")
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What `gpuspot ARGS` printed, which must succeed.
pub fn ok(api: &Api, args: &[&str]) -> String {
    let output = gpuspot(api, args);
    assert!(output.status.success(), "gpuspot {args:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `gpuspot ARGS --json`, parsed.
pub fn json_of(api: &Api, args: &[&str]) -> Value {
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let with_json = [&args[..split], &["--json"], &args[split..]].concat();
    let out = ok(api, &with_json);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("gpuspot {args:?}: {e}: {out}"))
}

/// What `gpuspot ARGS` said on failing (it must fail with exit code 1).
pub fn fails(api: &Api, args: &[&str]) -> String {
    let output = gpuspot(api, args);
    assert_eq!(output.status.code(), Some(1), "gpuspot {args:?}: {}", text(&output));
    text(&output)
}
