//! `--wait` as a user sees it (issue 25.6, docs/contracts.md#commands): every state change is
//! printed with its reason as it happens (`queued: …`, then `running on box`), `--timeout` gives up
//! with exit 1 and says where things stand, and a rename leaves the old name behind with a
//! not-found message that says how to list.

use gpuspot_e2e::cli::{command, run, texts};
use gpuspot_e2e::{SOON, cluster, request, s, wait_until};
use std::process::Stdio;
use std::time::{Duration, Instant};

const MODEL: &str = "NVIDIA GeForce RTX 4090";

#[test]
fn wait_prints_each_state_change_and_timeout_gives_up() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", MODEL, 1, 16, 64));
    let first = c.api.create(&request("first", &["RTX 4090"], 1, &["sleep", "600"]));
    c.wait_state(s(&first, "id"), "running");

    // The only GPU is held: the request queues, and --timeout gives up on it.
    let queued = ["instances", "create", "--name", "second", "--gpu", "RTX 4090"];
    let started = Instant::now();
    let timeout = [&queued[..], &["--wait", "--timeout", "2s", "--", "sleep", "600"]].concat();
    let output = run(&c.api, &timeout);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "--timeout exits 1: {stdout}{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(2), "gave up early: {stderr}");
    assert!(stderr.lines().next().is_some_and(|l| l.starts_with("queued: ")), "{stderr}");
    assert!(
        stderr.contains("error: gave up waiting for i-")
            && stderr.contains("after 2s: it is queued: "),
        "the timeout says what it waited for and where it stands: {stderr}"
    );
    assert!(run(&c.api, &["instances", "delete", "second", "--wait"]).status.success());

    // Without --timeout it waits, and prints the move from queued to running when it comes.
    let log = c.dir().join("third.stderr");
    let mut third = command(
        &c.api,
        &[&queued[..2], &["--name", "third", "--gpu", "RTX 4090", "--wait", "--", "sleep", "600"]]
            .concat(),
    );
    let stderr_file = std::fs::File::create(&log).expect("stderr file");
    let mut third =
        third.stdout(Stdio::piped()).stderr(stderr_file).spawn().expect("spawn gpuspot");
    wait_until(SOON, "third's --wait to print that it is queued", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.starts_with("queued: ") { Ok(()) } else { Err(text) }
    });
    assert!(run(&c.api, &["instances", "delete", "first", "--wait"]).status.success());
    let waited = wait_until(SOON, "third's --wait to return", || {
        third
            .try_wait()
            .expect("try_wait")
            .ok_or_else(|| std::fs::read_to_string(&log).unwrap_or_default())
    });
    let output = third.wait_with_output().expect("third's output");
    let progress = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(waited.success(), "{progress}");
    let lines: Vec<&str> = progress.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"running on box"),
        "one line per change, the last on its host: {progress}"
    );
    assert!(lines.windows(2).all(|w| w[0] != w[1]), "a line only for a change: {progress}");
    assert!(
        String::from_utf8_lossy(&output.stdout).ends_with(" running\n"),
        "stdout stays the answer"
    );

    // delete --wait, through the same code: terminating, then terminated with its reason.
    let output = run(&c.api, &["instances", "delete", "third", "--wait"]);
    let (_, stderr) = texts(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.lines().last().is_some_and(|l| l.starts_with("terminated")), "{stderr}");
}

#[test]
fn deployments_wait_until_their_replicas_are_ready_and_gone() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", MODEL, 2, 16, 64));
    let create = [
        "deployments",
        "create",
        "--name",
        "svc",
        "--replicas",
        "2",
        "--spec",
        "regular:RTX 4090:1",
        "--wait",
        "--timeout",
        "60s",
        "--",
        "sleep",
        "600",
    ];
    let output = run(&c.api, &create);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(stderr.lines().last(), Some("running (2/2 ready)"), "{stderr}");
    let output = run(&c.api, &["deployments", "delete", "svc", "--wait", "--timeout", "60s"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(stderr.lines().last(), Some("deleted"), "every instance ended: {stderr}");
    let (_, deployment) =
        c.api.get(&format!("/v1/deployments/{}", stdout.split(' ').next().unwrap_or_default()));
    let live = deployment["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["state"] != "terminated");
    assert_eq!(live.count(), 0, "{deployment}");
}

#[test]
fn a_renamed_instance_goes_by_its_new_name_and_the_old_one_says_how_to_list() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", MODEL, 1, 16, 64));
    let big = c.api.create(&request("big", &["RTX 4090"], 1, &["sleep", "600"]));
    c.wait_state(s(&big, "id"), "running");
    assert!(run(&c.api, &["instances", "update", "big", "--rename", "train"]).status.success());
    let shown = run(&c.api, &["instances", "show", "train", "-o", "json"]);
    assert!(texts(&shown).0.contains(s(&big, "id")), "the new name finds it");
    let output = run(&c.api, &["instances", "logs", "big"]);
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: no instance is named \"big\" or has that id (`gpuspot instances list --all` lists them)"
    );
}

/// A command that runs and exits before `--wait` first looks has run: the wait is met
/// (exit 0, the end printed), not "ended without running". A request that never ran still
/// fails the wait.
#[test]
fn a_run_that_ended_before_the_first_look_meets_the_wait() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", MODEL, 1, 16, 64));
    let quick = ["instances", "create", "--name", "quick", "--gpu", "RTX 4090", "--wait"];
    let output = run(&c.api, &[&quick[..], &["--timeout", "60s", "--", "true"]].concat());
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "it ran: {stdout}{stderr}");
    assert!(!stderr.contains("without running"), "{stderr}");
    assert!(
        stderr.lines().last().is_some_and(|l| l.starts_with("terminated: exited: code 0")),
        "{stderr}"
    );
    let never = ["instances", "create", "--name", "never", "--gpu", "RTX 4090", "--count", "2"];
    let fail = ["--on-unavailable", "fail", "--wait", "--", "true"];
    let output = run(&c.api, &[&never[..], &fail[..]].concat());
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "it never ran: {stdout}{stderr}");
    assert!(stderr.contains("ended without running"), "{stderr}");
}
