//! Crash-loop backoff through the cluster state machine: a replica set whose command keeps
//! crashing is replaced 10 s, 20 s, 40 s … after each crash, a long good run resets that,
//! new conditions start afresh, and the wait survives a coordinator restart.

use super::accounts::OPERATOR;
use super::cluster::Cluster;
use super::crash_loop::CrashBackoff;
use super::deployment::{Deployment, DeploymentState, Mode, Template};
use super::deployment_tests::{cluster, end, new, running, start_scheduled, t};
use super::deployments::DeploymentChange;
use super::model::EndReason;
use gpuspot_common::protocol::WorkloadState;
use gpuspot_common::{AccountId, DeploymentId};
use std::time::Duration;

/// The deployment's instances that have not ended.
fn live(c: &Cluster, id: &DeploymentId) -> usize {
    c.deployment_instances(id).iter().filter(|i| !i.is_terminated()).count()
}

/// Starts what was placed at `at`, then its command exits with `code` `ran` seconds later.
fn run_and_exit(c: &mut Cluster, id: &DeploymentId, at: i64, ran: i64, code: i32) {
    start_scheduled(c, t(at));
    let run = running(c, id).pop().expect("a running replica");
    end(c, &run, WorkloadState::Exited { code: Some(code) }, t(at + ran));
}

fn replicaset(c: &mut Cluster) -> DeploymentId {
    c.create_deployment(AccountId::from(OPERATOR), new(Mode::Replicaset, 1, 0, 0), t(0)).unwrap()
}

fn shown(c: &Cluster, id: &DeploymentId) -> Deployment {
    c.deployment(id).unwrap().clone()
}

#[test]
fn the_backoff_doubles_from_10s_to_a_5_minute_cap() {
    let backoff = CrashBackoff::default();
    let delays: Vec<u64> = (1..=8).map(|n| backoff.delay(n).as_secs()).collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(300), "no overflow");
}

#[test]
fn a_crashing_replica_is_replaced_only_once_its_backoff_is_over() {
    let mut c = cluster(&[("h", 1)]);
    let id = replicaset(&mut c);
    let mut at = 0;
    for (crash, delay) in [(1, 10), (2, 20), (3, 40)] {
        run_and_exit(&mut c, &id, at, 1, 1);
        let d = shown(&c, &id);
        let reason = format!("crash_loop: exit code 1, next start in {delay}s");
        assert_eq!(d.reason.as_deref(), Some(reason.as_str()), "{d:?}");
        assert_eq!((d.state(), d.failed, d.restarts), (DeploymentState::Waiting, crash, crash - 1));
        assert_eq!(live(&c, &id), 0, "nothing starts while the backoff runs");
        let half = format!("crash_loop: exit code 1, next start in {}s", delay / 2);
        assert_eq!(d.reason_at(t(at + 1 + delay / 2)).as_deref(), Some(half.as_str()));
        c.tick(t(at + delay));
        assert_eq!(live(&c, &id), 0, "still waiting a second before its time");
        c.tick(t(at + 1 + delay));
        assert_eq!(live(&c, &id), 1, "replaced at its time");
        assert_eq!(shown(&c, &id).restarts, crash);
        assert_eq!(shown(&c, &id).reason.as_deref(), Some("starting"));
        at += 1 + delay;
    }
    start_scheduled(&mut c, t(at));
    let d = shown(&c, &id);
    assert_eq!((d.state(), d.reason.as_deref()), (DeploymentState::Running, None), "{d:?}");
}

/// Under the default backoff, a command that crashes the moment it starts, with the
/// cluster ticking every second: how many runs start within `seconds`.
fn runs_of_a_crash_loop_within(seconds: i64) -> usize {
    let mut c = cluster(&[("h", 1)]);
    let id = replicaset(&mut c);
    for now in 0..seconds {
        c.tick(t(now));
        start_scheduled(&mut c, t(now));
        if let Some(run) = running(&c, &id).pop() {
            end(&mut c, &run, WorkloadState::Exited { code: Some(1) }, t(now));
        }
    }
    c.deployment_instances(&id).len()
}

#[test]
fn a_crash_loop_starts_3_runs_in_its_first_minute_and_6_in_ten() {
    // Runs at 0, 10, 30 s; then 70, 150, 310 s; then one every 5 minutes.
    assert_eq!(runs_of_a_crash_loop_within(60), 3);
    assert_eq!(runs_of_a_crash_loop_within(600), 6);
    assert_eq!(runs_of_a_crash_loop_within(3600), 16);
}

#[test]
fn exit_code_0_and_failures_are_crashes_but_a_notice_is_not() {
    let mut c = cluster(&[("h", 2)]);
    let id = replicaset(&mut c);
    run_and_exit(&mut c, &id, 0, 1, 0);
    assert_eq!(
        shown(&c, &id).reason.as_deref(),
        Some("crash_loop: exit code 0, next start in 10s")
    );
    c.tick(t(11));
    start_scheduled(&mut c, t(11));
    let run = running(&c, &id).remove(0);
    end(&mut c, &run, WorkloadState::Failed { message: "no such file".into() }, t(12));
    let d = shown(&c, &id);
    let reason = "crash_loop: failed: no such file, next start in 20s";
    assert_eq!((d.reason.as_deref(), d.failed), (Some(reason), 2));

    // A noticed replica is replaced at once, and however it then ends is no crash.
    c.tick(t(32));
    start_scheduled(&mut c, t(32));
    let run = running(&c, &id).remove(0);
    c.schedule_termination(&run.id, EndReason::ReclaimedPrice, t(40));
    assert_eq!(live(&c, &id), 2, "the replacement starts at notice time");
    end(&mut c, &run, WorkloadState::Exited { code: Some(143) }, t(41));
    let d = shown(&c, &id);
    assert_eq!((d.failed, d.restarts, d.crash_loop.next_start_at), (2, 2, None), "{d:?}");
}

#[test]
fn ten_minutes_of_good_running_resets_the_backoff() {
    let mut c = cluster(&[("h", 1)]);
    let id = replicaset(&mut c);
    run_and_exit(&mut c, &id, 0, 1, 1);
    c.tick(t(11));
    run_and_exit(&mut c, &id, 11, 1, 1);
    assert!(shown(&c, &id).reason.unwrap().ends_with("next start in 20s"));
    c.tick(t(32));
    // Runs 10 minutes, then crashes: counted as the first crash again.
    run_and_exit(&mut c, &id, 32, 600, 1);
    let d = shown(&c, &id);
    assert_eq!(d.reason.as_deref(), Some("crash_loop: exit code 1, next start in 10s"), "{d:?}");
    assert_eq!((d.failed, d.restarts, d.crash_loop.consecutive), (3, 2, 1));
}

#[test]
fn new_conditions_are_started_at_once() {
    let mut c = cluster(&[("h", 1)]);
    let id = replicaset(&mut c);
    run_and_exit(&mut c, &id, 0, 1, 1);
    let fixed = Template { command: vec!["fixed".into()], ..shown(&c, &id).template };
    c.change_deployment(
        &id,
        DeploymentChange { template: Some(fixed), ..Default::default() },
        t(2),
    )
    .unwrap();
    assert_eq!(live(&c, &id), 1, "a new template does not wait out the old one's backoff");
    let d = shown(&c, &id);
    assert_eq!((d.failed, d.restarts, d.crash_loop.consecutive), (1, 0, 0));
}

#[test]
fn the_backoff_survives_a_coordinator_restart() {
    let mut c = cluster(&[("h", 1)]);
    let id = replicaset(&mut c);
    run_and_exit(&mut c, &id, 0, 1, 1);
    let stored = serde_json::to_string(&shown(&c, &id)).unwrap();
    let saved: Deployment = serde_json::from_str(&stored).unwrap();
    assert_eq!(saved, shown(&c, &id), "the crash-loop state round-trips");
    assert_eq!(saved.crash_loop.next_start_at, Some(t(11)));

    let mut restarted = cluster(&[("h", 1)]).with_deployments(vec![saved]);
    restarted.reconcile_deployments(t(5));
    restarted.tick(t(5));
    assert_eq!(live(&restarted, &id), 0, "the restored wait holds");
    restarted.tick(t(11));
    assert_eq!(live(&restarted, &id), 1);
    assert_eq!(shown(&restarted, &id).restarts, 1);
}

#[test]
fn records_from_before_the_backoff_load_with_none_of_it() {
    let mut c = cluster(&[("h", 1)]);
    let id = replicaset(&mut c);
    let mut old = serde_json::to_value(shown(&c, &id)).unwrap();
    let fields = old.as_object_mut().unwrap();
    fields.remove("restarts");
    fields.remove("crash_loop");
    let loaded: Deployment = serde_json::from_value(old).unwrap();
    assert_eq!((loaded.restarts, loaded.crash_loop), (0, Default::default()));
}
