//! The autoscaler as a periodic job of the core's one timer: `poll_timeout` names its next
//! look, `handle_timeout` takes it with the request counters the shell last observed.

use super::accounts::OPERATOR;
use super::autoscale::Autoscaling;
use super::deployment::Mode;
use super::deployment_tests::{cluster, new, t};
use super::events::{EventData, EventKind};
use std::collections::HashMap;
use std::time::Duration;

#[test]
fn the_autoscaler_looks_every_interval_through_the_timer() {
    let mut c = cluster(&[("h", 4)]);
    let interval = c.timers().autoscale_interval.as_secs() as i64;
    let mut replicaset = new(Mode::Replicaset, 1, 0, 0);
    replicaset.autoscaling = Some(Autoscaling {
        min_replicas: 1,
        max_replicas: 3,
        target_rps_per_replica: Some(10.0),
        target_gpu_utilization: None,
        scale_in_delay: Duration::from_secs(300),
    });
    let id = c.create_deployment(OPERATOR.into(), replicaset, t(0)).unwrap();
    let seen = |n: u64| HashMap::from([(id.clone(), n)]);

    assert!(c.autoscale_due(t(1)), "the first look is due at the first wake-up");
    c.observe_requests(seen(0));
    c.handle_timeout(t(1));
    let next = t(1 + interval);
    assert!(c.poll_timeout().is_some_and(|at| at <= next), "the next look wakes the actor");
    assert!(!c.autoscale_due(next - chrono::Duration::milliseconds(1)));

    // 40 requests per second wanted 4 replicas of 10: capped at the maximum, 3.
    c.observe_requests(seen(40 * interval as u64));
    c.handle_timeout(next);
    assert_eq!(c.deployment(&id).unwrap().replicas, 3);
    let scaled =
        c.take_changes().events.into_iter().find(|e| e.kind == EventKind::DeploymentScaled);
    let scaled = scaled.expect("a deployment_scaled event");
    let EventData::Scaled(scaled) = scaled.data else { panic!("{scaled:?}") };
    assert_eq!((scaled.from, scaled.to), (1, 3));
}
