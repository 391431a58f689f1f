//! Retention through the cluster state machine (docs/contracts.md#retention): when an ended
//! instance is forgotten, what counts against a quota until then, the per-account cap, the event
//! sweep, and a restored state past its retention.

use super::cluster::Cluster;
use super::deployment_tests::{cluster, end, start_scheduled, t};
use super::model::{Billing, InstanceRequest, InstanceState, OnUnavailable};
use super::quotas::{QuotaChange, QuotaError, QuotaUpdate, Usage};
use super::retention::Retention;
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::protocol::WorkloadState;
use gpuspot_common::{AccountId, InstanceId};

const FAILED: i64 = 10;
pub(super) const ENDED: i64 = 20;
const EVENTS: i64 = 100;

pub(super) fn retention(max_ended_per_account: usize) -> Retention {
    let secs = |s: i64| std::time::Duration::from_secs(s as u64);
    Retention {
        ended: secs(ENDED),
        failed: secs(FAILED),
        events: secs(EVENTS),
        max_ended_per_account,
        max_events_per_account: 100,
    }
}

pub(super) fn account(c: &mut Cluster, name: &str, max_instances: Option<u32>) -> AccountId {
    let id = c.create_account(crate::accounts::NewAccount::named(name), t(0));
    let change = QuotaChange { max_gpus: None, max_instances: Some(max_instances) };
    c.set_quota(&id, QuotaUpdate::Change(change), t(0)).unwrap();
    id
}

/// A regular request for 4 H100s: more than any host here has.
fn request(on_unavailable: OnUnavailable) -> InstanceRequest {
    crate::scheduling::tests::request(4, Billing::Regular, on_unavailable)
}

fn failed(c: &mut Cluster, account: &AccountId, at: DateTime<Utc>) -> InstanceId {
    let id = c.create_instance(account.clone(), request(OnUnavailable::Fail), at).unwrap();
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Failed);
    id
}

/// What the cluster does at `at` when its timer fires; the ids the commit deletes.
fn wake(c: &mut Cluster, at: DateTime<Utc>) -> Vec<InstanceId> {
    c.handle_timeout(at);
    c.take_changes().forgotten_instances
}

#[test]
fn a_failed_request_counts_against_the_quota_until_failed_has_passed() {
    let mut c = cluster(&[("h", 1)]).with_retention(retention(1000));
    let acme = account(&mut c, "acme", Some(1));
    wake(&mut c, t(0));
    let id = failed(&mut c, &acme, t(1));
    assert_eq!(c.usage(&acme), Usage { gpus: 4, instances: 1 });
    let refused = c.check_quota(&acme, &request(OnUnavailable::Fail));
    assert_eq!(refused, Err(QuotaError::Instances { wanted: 2, limit: 1 }));
    assert_eq!(c.next_forget(), Some(t(1 + FAILED)), "the timer names its deadline");
    assert!(c.poll_timeout().unwrap() <= t(1 + FAILED));

    assert!(wake(&mut c, t(FAILED)).is_empty(), "kept for `failed`: still counted");
    assert_eq!(c.usage(&acme), Usage { gpus: 4, instances: 1 });
    assert!(c.instance(&id).is_some());
    assert_eq!(wake(&mut c, t(1 + FAILED)), vec![id.clone()], "then forgotten for good");
    assert!(c.instance(&id).is_none());
    assert_eq!(c.usage(&acme), Usage::default());
    assert_eq!(c.check_quota(&acme, &request(OnUnavailable::Fail)), Ok(()));
}

#[test]
fn deleting_a_failed_request_forgets_it_and_frees_the_quota_at_once() {
    let mut c = cluster(&[("h", 1)]).with_retention(retention(1000));
    let acme = account(&mut c, "acme", Some(1));
    let id = failed(&mut c, &acme, t(1));
    assert!(c.check_quota(&acme, &request(OnUnavailable::Fail)).is_err());

    c.delete_instance(&id, t(2)).unwrap();
    assert!(c.instance(&id).is_none(), "a request that never ran goes with its DELETE");
    assert_eq!(c.take_changes().forgotten_instances, vec![id.clone()], "and so does its row");
    assert_eq!(c.usage(&acme), Usage::default());
    assert_eq!(c.check_quota(&acme, &request(OnUnavailable::Fail)), Ok(()));
    assert!(c.delete_instance(&id, t(3)).is_err(), "a second DELETE finds nothing");
}

#[test]
fn an_instance_that_ran_is_kept_for_ended_and_never_counts_once_ended() {
    let mut c = cluster(&[("h", 1)]).with_retention(retention(1000));
    let acme = account(&mut c, "acme", Some(1));
    let mut small = request(OnUnavailable::Queue);
    small.gpu.count = 1;
    let id = c.create_instance(acme.clone(), small, t(1)).unwrap();
    start_scheduled(&mut c, t(2));
    let running = c.instance(&id).unwrap().clone();
    end(&mut c, &running, WorkloadState::Exited { code: Some(0) }, t(3));
    assert_eq!(c.instance(&id).unwrap().state(), InstanceState::Terminated);
    assert_eq!(c.usage(&acme), Usage::default(), "a run that ended holds nothing");

    assert_eq!(c.next_forget(), Some(t(3 + ENDED)));
    assert!(wake(&mut c, t(3 + FAILED + 1)).is_empty(), "`failed` is not its retention");
    assert!(wake(&mut c, t(3 + ENDED - 1)).is_empty());
    assert_eq!(wake(&mut c, t(3 + ENDED)), vec![id.clone()], "forgotten at its deadline");
    assert!(c.instances().all(|i| i.id != id), "gone from the table too");
}

#[test]
fn an_account_keeps_only_its_newest_ended_instances_and_others_keep_theirs() {
    let mut c = cluster(&[("h", 1)]).with_retention(retention(2));
    let (acme, other) = (account(&mut c, "acme", None), account(&mut c, "other", None));
    wake(&mut c, t(0));
    let theirs = failed(&mut c, &other, t(1));
    let ids: Vec<InstanceId> = (2..5).map(|s| failed(&mut c, &acme, t(s))).collect();
    assert_eq!(c.next_forget(), Some(DateTime::<Utc>::MIN_UTC), "due at once");
    assert_eq!(c.poll_timeout(), Some(DateTime::<Utc>::MIN_UTC));
    assert_eq!(wake(&mut c, t(5)), vec![ids[0].clone()], "the oldest of acme's three");
    assert!(c.instance(&ids[1]).is_some() && c.instance(&ids[2]).is_some());
    assert!(c.instance(&theirs).is_some());
    assert_eq!(c.next_forget(), Some(t(1 + FAILED)), "next: the other account's, by age");
}

#[test]
fn events_older_than_their_retention_are_swept_every_twentieth_of_it() {
    let mut c = cluster(&[]).with_retention(retention(1000));
    c.handle_timeout(t(EVENTS));
    let changes = c.take_changes();
    assert_eq!(changes.prune_events_before, Some(t(0)));
    c.handle_timeout(t(EVENTS + 1));
    assert_eq!(c.take_changes().prune_events_before, None, "not before the next sweep");
    let next = t(EVENTS) + Duration::seconds(EVENTS / 20);
    assert!(c.poll_timeout().unwrap() <= next);
    c.handle_timeout(next);
    assert_eq!(c.take_changes().prune_events_before, Some(next - Duration::seconds(EVENTS)));
}

#[test]
fn a_restored_state_past_its_retention_is_pruned_at_the_first_wake() {
    let mut before = cluster(&[("h", 1)]);
    let acme = account(&mut before, "acme", None);
    let id = failed(&mut before, &acme, t(1));
    let stored: Vec<_> = before.take_changes().instances;
    let mut after = Cluster::new(vec![], Default::default())
        .with_retention(retention(1000))
        .restore(vec![], stored, 0, t(1 + FAILED + 1));
    assert!(after.instance(&id).is_some(), "loaded");
    assert_eq!(wake(&mut after, t(1 + FAILED + 1)), vec![id]);
}

#[test]
fn an_account_a_tenth_past_its_event_cap_is_trimmed_back_to_it() {
    let mut c = cluster(&[("h", 1)]).with_retention(retention(1000));
    let acme = account(&mut c, "acme", None);
    let other = account(&mut c, "other", None);
    let made =
        c.take_changes().events.iter().filter(|e| e.account_id == Some(acme.clone())).count();
    let pay = |c: &mut Cluster, id: &AccountId, n: i64| {
        c.pay(id, gpuspot_common::Money(1), t(n)).unwrap();
    };
    for n in made..110 {
        pay(&mut c, &acme, n as i64);
    }
    pay(&mut c, &other, 1);
    assert!(c.take_changes().trim_events.is_empty(), "110 events: within the slack");
    pay(&mut c, &acme, 200);
    assert_eq!(c.take_changes().trim_events, vec![(acme.clone(), 100)], "the 111th trims");
    pay(&mut c, &acme, 201);
    assert!(c.take_changes().trim_events.is_empty(), "counted from the cap again");
}
