//! Join tokens in tests (docs/contracts.md#tokens): how an agent is handed its token ([`JoinVia`]:
//! a private file, stdin or `GPUSPOT_JOIN_TOKEN`; the refused command-line flag too), and the
//! `gpuspot-coordinator token …` commands run on a test cluster's data dir.

use crate::cluster::Cluster;
use serde_json::Value;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How an agent gets its join token.
#[derive(Clone, Copy, Debug)]
pub enum JoinVia<'a> {
    /// `--join-token-file PATH`, a file only its owner may read.
    File(&'a str),
    /// `--join-token-file -`, the token on stdin.
    Stdin(&'a str),
    /// `GPUSPOT_JOIN_TOKEN`.
    Env(&'a str),
    /// `--join-token TOKEN`, which the agent must refuse.
    CommandLine(&'a str),
}

impl JoinVia<'_> {
    /// Adds the token to `command` (which starts an agent on `state_dir`); what its stdin
    /// must be.
    pub fn apply(self, command: &mut Command, state_dir: &Path) -> Stdio {
        match self {
            JoinVia::File(token) => {
                command.arg("--join-token-file").arg(write_token_file(state_dir, token));
            }
            JoinVia::Stdin(token) => {
                let file = std::fs::File::open(write_token_file(state_dir, token));
                command.args(["--join-token-file", "-"]);
                return file.expect("open the token file").into();
            }
            JoinVia::Env(token) => {
                command.env("GPUSPOT_JOIN_TOKEN", token);
            }
            JoinVia::CommandLine(token) => {
                command.arg("--join-token").arg(token);
            }
        }
        Stdio::null()
    }
}

/// `<state_dir>.join-token`, mode 0600, holding `token` and a newline (as `echo` writes it).
pub fn write_token_file(state_dir: &Path, token: &str) -> PathBuf {
    let path = PathBuf::from(format!("{}.join-token", state_dir.display()));
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("create the token file");
    writeln!(file, "{token}").expect("write the token file");
    path
}

/// `e2e-coordinator --data-dir DIR token ARGS…` on the cluster's data dir, while it runs.
pub fn token_command(c: &Cluster, args: &[&str]) -> Output {
    c.coordinator.token_command(args)
}

/// Stdout of a command that must have succeeded.
pub fn succeeded(output: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what} failed ({}): {stderr}", output.status);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A token from `token create ARGS…`: the secret (stdout's first line), its id and what
/// the command said on stderr.
pub struct Created {
    pub token: String,
    pub id: String,
    pub stderr: String,
}

pub fn create_token(c: &Cluster, args: &[&str]) -> Created {
    let output = token_command(c, &[&["create"], args].concat());
    let stdout = succeeded(&output, "token create");
    let token = stdout.lines().next().unwrap_or_default().to_owned();
    assert!(token.starts_with("gpuspot1."), "stdout's first line is not a token: {stdout:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let id = stderr.split_whitespace().find(|w| w.starts_with("jt-"));
    let id = id.unwrap_or_else(|| panic!("no token id on stderr: {stderr:?}"));
    Created { token, id: id.trim_end_matches(':').to_owned(), stderr }
}

/// `token list --json`: the entry for `id`.
pub fn listed(c: &Cluster, id: &str) -> Value {
    let stdout = succeeded(&token_command(c, &["list", "--json"]), "token list --json");
    let list: Vec<Value> = serde_json::from_str(&stdout).expect("token list --json is JSON");
    list.into_iter().find(|t| t["id"] == id).unwrap_or_else(|| panic!("{id} not listed: {stdout}"))
}

/// The line of the `token list` table that names `id`.
pub fn table_row(c: &Cluster, id: &str) -> String {
    let stdout = succeeded(&token_command(c, &["list"]), "token list");
    assert!(stdout.starts_with("ID"), "no table header: {stdout}");
    let row = stdout.lines().find(|l| l.starts_with(id));
    row.unwrap_or_else(|| panic!("{id} not in the table:\n{stdout}")).to_owned()
}
