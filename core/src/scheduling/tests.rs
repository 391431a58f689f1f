//! What a request that cannot be placed at once sees: `on_unavailable: "fail"` ends it
//! `failed` with `out_of_stock: …` and costs nobody a notice; a waiting one's reason names
//! what holds the matching hosts and, for spot, whether the bid is the obstacle.

use crate::accounts::{NewAccount, OPERATOR};
use crate::cluster::Cluster;
use crate::deployment_tests::{cluster, start_scheduled, t};
use crate::model::{Billing, GpuRequest, InstanceRequest, InstanceState, OnUnavailable, Range};
use gpuspot_common::{AccountId, InstanceId, Money};

const HOLD: i64 = 10;

/// A process request for `count` H100s (the other scheduling tests build theirs from it).
pub(crate) fn request(
    count: u32,
    billing: Billing,
    on_unavailable: OnUnavailable,
) -> InstanceRequest {
    InstanceRequest {
        name: String::new(),
        gpu: GpuRequest { models: vec!["H100".into()], count },
        cpu_cores: Range::default(),
        memory_gib: Range::default(),
        billing,
        command: vec!["run".into()],
        env: Default::default(),
        snapshot: Default::default(),
        image: None,
        data_disk_gib: 50,
        on_unavailable,
        ports: Vec::new(),
        readiness: None,
    }
}

pub(crate) fn regular(count: u32) -> InstanceRequest {
    request(count, Billing::Regular, OnUnavailable::Queue)
}

pub(crate) fn spot(count: u32, bid: i64) -> InstanceRequest {
    request(count, Billing::Spot { max_price: Money(bid) }, OnUnavailable::Queue)
}

pub(crate) fn create(c: &mut Cluster, request: InstanceRequest, at: i64) -> InstanceId {
    c.create_instance(AccountId::from(OPERATOR), request, t(at)).unwrap()
}

/// Created by another tenant: what its instances hold is not the operator's to read.
fn create_for_other(c: &mut Cluster, request: InstanceRequest, at: i64) -> InstanceId {
    let known = c.accounts().find(|a| a.name == "other").map(|a| a.id.clone());
    let other = known.unwrap_or_else(|| c.create_account(NewAccount::named("other"), t(at)));
    c.create_instance(other, request, t(at)).unwrap()
}

fn state_and_reason(c: &Cluster, id: &InstanceId) -> (InstanceState, String) {
    let i = c.instance(id).expect("known");
    (i.state(), i.reason().unwrap_or_default().to_owned())
}

#[test]
fn fail_on_a_full_pool_ends_failed_out_of_stock_at_once_and_reclaims_nobody() {
    let mut c = cluster(&[("h", 2)]);
    let spot_run = create_for_other(&mut c, spot(2, 1_000_000), 0);
    start_scheduled(&mut c, t(0));
    let failing = create(&mut c, request(1, Billing::Regular, OnUnavailable::Fail), HOLD + 1);
    let (state, reason) = state_and_reason(&c, &failing);
    assert_eq!(state, InstanceState::Failed, "{reason}");
    assert_eq!(
        reason,
        "out_of_stock: no matching capacity is free now (no matching host has free units for \
         1 x [H100]: 1 matching host (h): 2 units busy)"
    );
    let spot_state = c.instance(&spot_run).unwrap().state();
    assert_eq!(spot_state, InstanceState::Running, "no notice for a request that failed");
}

#[test]
fn fail_with_no_host_that_could_ever_take_it_says_so() {
    let mut c = cluster(&[("h", 2)]);
    let failing = create(&mut c, request(4, Billing::Regular, OnUnavailable::Fail), 0);
    let (state, reason) = state_and_reason(&c, &failing);
    assert_eq!(state, InstanceState::Failed);
    assert_eq!(reason, "out_of_stock: no known host can satisfy 4 x [H100]");
}

#[test]
fn fail_that_fits_is_placed_like_any_request() {
    let mut c = cluster(&[("h", 2)]);
    let placed = create(&mut c, request(2, Billing::Regular, OnUnavailable::Fail), 0);
    assert_eq!(c.instance(&placed).unwrap().state(), InstanceState::Scheduled);
}

#[test]
fn a_regular_request_on_a_full_host_says_it_is_busy_and_not_whose() {
    let mut c = cluster(&[("h", 2)]);
    create_for_other(&mut c, regular(2), 0);
    start_scheduled(&mut c, t(0));
    let waiting = create(&mut c, regular(1), 1);
    let (state, reason) = state_and_reason(&c, &waiting);
    assert_eq!(state, InstanceState::Queued);
    assert_eq!(
        reason,
        "waiting for capacity: no host can make room for 1 x [H100] now: \
         1 matching host (h): 2 units busy"
    );
}

#[test]
fn a_request_behind_its_own_and_others_instances_tells_them_apart() {
    let mut c = cluster(&[("h", 3)]);
    create_for_other(&mut c, regular(1), 0);
    create_for_other(&mut c, spot(1, 1_000_000), 0);
    create(&mut c, regular(1), 0);
    start_scheduled(&mut c, t(0));
    let waiting = create(&mut c, regular(1), 1);
    let (_, reason) = state_and_reason(&c, &waiting);
    assert!(reason.ends_with("2 units busy, 1 held by your own instances"), "{reason}");
    assert!(!reason.contains("spot") && !reason.contains("regular"), "{reason}");
}

#[test]
fn a_spot_request_on_a_full_host_says_its_bid_is_not_the_obstacle() {
    let mut c = cluster(&[("h", 1)]);
    create_for_other(&mut c, regular(1), 0);
    start_scheduled(&mut c, t(0));
    let waiting = create(&mut c, spot(1, 1_500_000), 1);
    let (state, reason) = state_and_reason(&c, &waiting);
    assert_eq!(state, InstanceState::Queued);
    assert!(
        reason.starts_with(
            "waiting for capacity: Spot capacity is currently insufficient to run 1 x [H100]: \
             1 matching host (h): 1 unit busy; your bid 1.50 covers the market price"
        ),
        "{reason}"
    );
}

#[test]
fn a_spot_request_below_the_price_on_a_full_host_is_outbid_as_well() {
    let mut c = cluster(&[("h", 1)]);
    create(&mut c, regular(1), 0);
    start_scheduled(&mut c, t(0));
    let waiting = create(&mut c, spot(1, 1), 1);
    let (_, reason) = state_and_reason(&c, &waiting);
    assert!(reason.starts_with("outbid: your bid 0.000001 is below the market price"), "{reason}");
    assert!(reason.contains("and no matching host has free units"), "{reason}");
}

#[test]
fn a_disconnected_matching_host_is_named_as_such() {
    let mut c = cluster(&[("h", 1)]);
    create_for_other(&mut c, regular(1), 0);
    start_scheduled(&mut c, t(0));
    c.host_disconnected(&"h".into(), t(1));
    let waiting = create(&mut c, regular(1), 2);
    let (_, reason) = state_and_reason(&c, &waiting);
    assert!(reason.contains("1 unit busy, host h is disconnected"), "{reason}");
}
