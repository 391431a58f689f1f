//! The rotation through the cluster state machine (docs/contracts.md#serving, #operating-hosts): a
//! drained host's replicas keep serving until their replacements are ready, one for one, or until
//! the drain margin before their deadline, a moment the core's timer names.

use super::accounts::OPERATOR;
use super::cluster::Cluster;
use super::deployment::Mode;
use super::deployment_tests::{cluster, new, start_scheduled, t};
use super::model::InstanceState;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, HostId};
use std::time::Duration;

/// The test cluster's notice is 5 s: a drain at t(10) stops its replicas at t(15).
const MARGIN: Duration = Duration::from_secs(2);

/// Whether each replica of `id` is draining, oldest first.
fn draining(c: &Cluster, id: &DeploymentId) -> Vec<bool> {
    c.endpoints(id).into_iter().map(|(_, e)| e.draining).collect()
}

fn backends(c: &Cluster) -> usize {
    c.routes().iter().map(|r| r.backends.len()).sum()
}

/// Two replicas running on host `a` (host `b`, if any, cordoned meanwhile).
fn two_replicas_on_a(hosts: &[(&str, u32)]) -> (Cluster, DeploymentId) {
    let mut c = cluster(hosts).with_drain_margin(MARGIN);
    let b = HostId::from("b");
    c.cordon_host(&b, t(0));
    let id = c
        .create_deployment(AccountId::from(OPERATOR), new(Mode::Replicaset, 2, 0, 0), t(0))
        .unwrap();
    start_scheduled(&mut c, t(1));
    c.uncordon_host(&b, t(1));
    c.handle_timeout(t(1));
    assert_eq!(draining(&c, &id), [false, false]);
    (c, id)
}

/// Runs the core's timer up to (not including) `until`.
fn run_timer_before(c: &mut Cluster, until: DateTime<Utc>) {
    while let Some(at) = c.poll_timeout().filter(|at| *at < until) {
        c.handle_timeout(at);
    }
}

#[test]
fn without_a_replacement_a_noticed_replica_serves_until_the_margin_before_its_deadline() {
    let (mut c, id) = two_replicas_on_a(&[("a", 2)]);
    c.drain_host(&HostId::from("a"), None, t(10));
    assert_eq!(draining(&c, &id), [false, false], "noticed, and still serving");
    c.take_routes_changed();
    assert_eq!(backends(&c), 2);

    let margin_at = t(15 - 2);
    assert!(c.poll_timeout().is_some_and(|at| at <= margin_at), "the core wakes for the margin");
    run_timer_before(&mut c, margin_at);
    assert_eq!(c.poll_timeout(), Some(margin_at), "the margin is the next moment");
    assert_eq!(draining(&c, &id), [false, false], "still serving just before the margin");
    c.take_routes_changed();
    c.handle_timeout(margin_at);
    assert!(c.take_routes_changed(), "the gateway is told");
    assert_eq!(draining(&c, &id), [true, true], "out of the rotation at the margin");
    assert_eq!(backends(&c), 0);
    let states: Vec<InstanceState> = c.endpoints(&id).iter().map(|(i, _)| i.state()).collect();
    assert_eq!(states, [InstanceState::TerminationScheduled; 2], "while they still run");
    assert!(c.poll_timeout().is_some_and(|at| at > margin_at), "no wake-up spins on it");
}

#[test]
fn each_ready_replacement_takes_one_noticed_replica_out_of_the_rotation() {
    let (mut c, id) = two_replicas_on_a(&[("a", 2), ("b", 2)]);
    c.drain_host(&HostId::from("a"), None, t(10));
    let replacements: Vec<_> = c
        .deployment_instances(&id)
        .into_iter()
        .filter(|i| i.state() == InstanceState::Scheduled)
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(replacements.len(), 2, "replaced on b at notice time");
    assert_eq!(draining(&c, &id), [false, false], "replacements not running yet");
    assert_eq!(backends(&c), 2, "the noticed replicas serve meanwhile");

    let b = HostId::from("b");
    let report = |id| gpuspot_common::protocol::InstanceReport {
        instance_id: id,
        state: gpuspot_common::protocol::WorkloadState::Running,
    };
    c.instance_update(&b, &report(replacements[0].clone()), t(11));
    assert_eq!(draining(&c, &id), [true, false, false], "one ready: one noticed leaves");
    assert_eq!(backends(&c), 2);
    start_scheduled(&mut c, t(12));
    assert_eq!(draining(&c, &id), [true, true, false, false], "both ready: both leave");
    let serving: Vec<_> = c.routes().into_iter().flat_map(|r| r.backends).map(|b| b.0).collect();
    assert_eq!(serving, replacements, "only the replacements take traffic");
}
