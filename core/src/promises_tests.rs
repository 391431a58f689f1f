//! Reclaimed capacity is promised (docs/contracts.md#market): the units a regular request reclaimed
//! go to it, not to a later spot request or replacement; the promise ends when it is placed (there
//! or elsewhere), deleted, or its host is lost; it survives a restart.

use super::accounts::OPERATOR;
use super::cluster::Cluster;
use super::deployment::Mode;
use super::deployment_tests::{cluster, end, new, start_scheduled, t};
use super::instance::Promise;
use super::model::InstanceState;
use super::scheduling::tests::{create, regular, spot};
use gpuspot_common::protocol::WorkloadState;
use gpuspot_common::{AccountId, HostId, InstanceId};

/// Past the fixture's 10 s hold.
const PAST_HOLD: i64 = 11;

fn state(c: &Cluster, id: &InstanceId) -> InstanceState {
    c.instance(id).expect("known").state()
}

/// Running spot instances, one per bid, started at t(0).
fn running_spots(c: &mut Cluster, bids: &[i64]) -> Vec<InstanceId> {
    let ids = bids.iter().map(|&bid| create(c, spot(1, bid), 0)).collect();
    start_scheduled(c, t(0));
    ids
}

/// The agent reports `id` stopped at `at`: its units free.
fn stopped(c: &mut Cluster, id: &InstanceId, at: i64) {
    let instance = c.instance(id).expect("known").clone();
    end(c, &instance, WorkloadState::Stopped, t(at));
}

fn promise_of(c: &Cluster, id: &InstanceId) -> Option<Promise> {
    c.instance(id).and_then(|i| i.promise()).cloned()
}

#[test]
fn units_freed_one_at_a_time_go_to_the_regular_request_not_a_later_bid() {
    let mut c = cluster(&[("h", 2)]);
    let victims = running_spots(&mut c, &[300_000, 400_000]);
    let big = create(&mut c, regular(2), PAST_HOLD);
    assert!(victims.iter().all(|v| state(&c, v) == InstanceState::TerminationScheduled));
    let promise = promise_of(&c, &big).expect("a promise");
    assert_eq!(promise.host_id, HostId::from("h"));
    assert_eq!(promise.gpu_uuids.len(), 2, "{promise:?}");

    let bidder = create(&mut c, spot(1, 1_900_000), PAST_HOLD + 1);
    stopped(&mut c, &victims[0], PAST_HOLD + 5);
    assert_eq!(state(&c, &bidder), InstanceState::Queued, "the first freed unit is promised");
    let reason = c.instance(&bidder).unwrap().reason().unwrap().to_owned();
    assert!(reason.contains("promised to a request that reclaimed them"), "{reason}");
    assert_eq!(state(&c, &big), InstanceState::Queued);
    stopped(&mut c, &victims[1], PAST_HOLD + 5);
    assert_eq!(state(&c, &big), InstanceState::Scheduled);
    assert_eq!(c.instance(&big).unwrap().gpu_uuids(), promise.gpu_uuids.as_slice());
    assert_eq!(promise_of(&c, &big), None, "placed: the promise is kept and over");
    assert_eq!(state(&c, &bidder), InstanceState::Queued);
}

#[test]
fn a_replicasets_replacement_does_not_take_promised_units() {
    let mut c = cluster(&[("h", 2)]);
    let operator = AccountId::from(OPERATOR);
    let d = c.create_deployment(operator, new(Mode::Replicaset, 1, 0, 0), t(0)).unwrap();
    let other = running_spots(&mut c, &[300_000]);
    let replica = c.deployment_instances(&d)[0].id.clone();
    let big = create(&mut c, regular(2), PAST_HOLD);
    assert_eq!(state(&c, &replica), InstanceState::TerminationScheduled);

    stopped(&mut c, &other[0], PAST_HOLD + 5);
    c.reconcile_deployments(t(PAST_HOLD + 5));
    let placed: Vec<_> =
        c.deployment_instances(&d).into_iter().filter(|i| i.host_id().is_some()).collect();
    assert_eq!(placed.len(), 1, "only the noticed replica holds a unit: {placed:?}");
    stopped(&mut c, &replica, PAST_HOLD + 5);
    assert_eq!(state(&c, &big), InstanceState::Scheduled);
}

#[test]
fn two_regular_requests_are_promised_different_units() {
    let mut c = cluster(&[("h", 4)]);
    let victims = running_spots(&mut c, &[500_000, 600_000, 700_000, 800_000]);
    let first = create(&mut c, regular(2), PAST_HOLD);
    let second = create(&mut c, regular(2), PAST_HOLD);
    let (a, b) = (promise_of(&c, &first).unwrap(), promise_of(&c, &second).unwrap());
    assert!(a.gpu_uuids.iter().all(|u| !b.gpu_uuids.contains(u)), "{a:?} {b:?}");
    assert!(victims.iter().all(|v| state(&c, v) == InstanceState::TerminationScheduled));
    for victim in &victims {
        stopped(&mut c, victim, PAST_HOLD + 5);
    }
    assert_eq!(
        (state(&c, &first), state(&c, &second)),
        (InstanceState::Scheduled, InstanceState::Scheduled)
    );
}

#[test]
fn a_promised_request_that_fits_elsewhere_first_goes_there_and_frees_the_promise() {
    let mut c = cluster(&[("g", 1), ("h", 1)]);
    let held = create(&mut c, regular(1), 0);
    let victims = running_spots(&mut c, &[300_000]);
    let waiting = create(&mut c, regular(1), PAST_HOLD);
    let promised_host = promise_of(&c, &waiting).unwrap().host_id;
    assert_eq!(promised_host, c.instance(&victims[0]).unwrap().host_id().unwrap().clone());

    c.delete_instance(&held, t(PAST_HOLD + 1)).unwrap();
    stopped(&mut c, &held, PAST_HOLD + 1);
    assert_eq!(state(&c, &waiting), InstanceState::Scheduled, "placed where room came first");
    let bidder = create(&mut c, spot(1, 1_900_000), PAST_HOLD + 2);
    stopped(&mut c, &victims[0], PAST_HOLD + 5);
    assert_eq!(
        state(&c, &bidder),
        InstanceState::Scheduled,
        "the promise ended with the placement"
    );
}

#[test]
fn deleting_the_request_ends_its_promise() {
    let mut c = cluster(&[("h", 1)]);
    let victims = running_spots(&mut c, &[300_000]);
    let waiting = create(&mut c, regular(1), PAST_HOLD);
    let bidder = create(&mut c, spot(1, 1_900_000), PAST_HOLD + 1);
    c.delete_instance(&waiting, t(PAST_HOLD + 2)).unwrap();
    stopped(&mut c, &victims[0], PAST_HOLD + 5);
    assert_eq!(state(&c, &bidder), InstanceState::Scheduled);
}

#[test]
fn a_lost_host_breaks_the_promise_and_the_request_reclaims_elsewhere() {
    let mut c = cluster(&[("g", 1), ("h", 1)]);
    let victims = running_spots(&mut c, &[300_000, 400_000]);
    let waiting = create(&mut c, regular(1), PAST_HOLD);
    let lost = promise_of(&c, &waiting).unwrap().host_id;
    let spared = victims.iter().find(|v| state(&c, v) == InstanceState::Running).unwrap().clone();
    let kept = c.instance(&spared).unwrap().host_id().unwrap().clone();
    c.host_disconnected(&lost, t(PAST_HOLD + 1));
    c.heartbeat(&kept, &[], t(PAST_HOLD + 86_400));
    c.tick(t(PAST_HOLD + 1 + 86_401));
    let promise = promise_of(&c, &waiting).expect("a new promise");
    assert_ne!(promise.host_id, lost);
    assert_eq!(state(&c, &spared), InstanceState::TerminationScheduled);
}

#[test]
fn a_promise_survives_a_restart() {
    let mut c = cluster(&[("h", 1)]);
    let victims = running_spots(&mut c, &[300_000]);
    let waiting = create(&mut c, regular(1), PAST_HOLD);
    let stored: Vec<_> = c
        .instances()
        .map(|i| serde_json::from_str(&serde_json::to_string(i).unwrap()).unwrap())
        .collect();
    let hosts: Vec<_> = c
        .registry()
        .iter()
        .map(|h| serde_json::from_str(&serde_json::to_string(h).unwrap()).unwrap())
        .collect();
    let mut c = cluster(&[]).restore(hosts, stored, 100, t(PAST_HOLD + 1));
    assert!(promise_of(&c, &waiting).is_some());
    let host = HostId::from("h");
    let inventory = gpuspot_common::HostInventory {
        hostname: "h".into(),
        gpus: c.registry().get(&host).unwrap().units.iter().map(|s| s.unit.gpu.clone()).collect(),
        cpu_cores: 8,
        memory_gib: 64,
    };
    let runtimes = [gpuspot_common::protocol::GuestRuntime::Process];
    c.host_connected(&host, &inventory, "test", &runtimes, &[], t(PAST_HOLD + 2));
    let bidder = create(&mut c, spot(1, 1_900_000), PAST_HOLD + 2);
    stopped(&mut c, &victims[0], PAST_HOLD + 5);
    assert_eq!(state(&c, &bidder), InstanceState::Queued);
    assert_eq!(state(&c, &waiting), InstanceState::Scheduled);
}

#[test]
fn a_cordoned_host_breaks_the_promise_and_the_request_reclaims_elsewhere() {
    let mut c = cluster(&[("g", 1), ("h", 1)]);
    let victims = running_spots(&mut c, &[300_000, 400_000]);
    let waiting = create(&mut c, regular(1), PAST_HOLD);
    let cordoned = promise_of(&c, &waiting).unwrap().host_id;
    c.cordon_host(&cordoned, t(PAST_HOLD + 1)).unwrap();
    let promise = promise_of(&c, &waiting).expect("a new promise");
    assert_ne!(promise.host_id, cordoned);
    assert!(victims.iter().all(|v| state(&c, v) == InstanceState::TerminationScheduled));
}

#[test]
fn an_overdue_accounts_promise_ends_and_its_units_serve_others() {
    let mut c = cluster(&[("h", 1)]);
    let victims = running_spots(&mut c, &[300_000]);
    let tenant = c.create_account(super::accounts::NewAccount::named("late"), t(0));
    let waiting = c.create_instance(tenant.clone(), regular(1), t(PAST_HOLD)).unwrap();
    assert!(promise_of(&c, &waiting).is_some());
    let bidder = create(&mut c, spot(1, 1_900_000), PAST_HOLD + 1);
    c.ledger.update(&tenant, |a| a.overdue_since = Some(t(PAST_HOLD + 2)));
    stopped(&mut c, &victims[0], PAST_HOLD + 5);
    assert_eq!(promise_of(&c, &waiting), None);
    assert_eq!(state(&c, &bidder), InstanceState::Scheduled);
}

#[test]
fn promised_units_are_not_offered_as_free_in_the_pool() {
    let mut c = cluster(&[("h", 2)]);
    let victims = running_spots(&mut c, &[300_000, 400_000]);
    let busy = c.market_price("H100");
    create(&mut c, regular(2), PAST_HOLD);
    stopped(&mut c, &victims[0], PAST_HOLD + 5);
    let usage = super::pools::usage(&c.registry, "H100");
    assert_eq!((usage.free, usage.used, usage.unavailable()), (0, 2, 0), "{usage:?}");
    assert_eq!(c.market_price("H100"), busy, "a promised unit does not lower the price");
}
