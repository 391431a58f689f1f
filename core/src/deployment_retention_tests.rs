//! Retention of deployments (docs/contracts.md#retention): a final deployment is forgotten `ended`
//! after it and its last instance ended, with its instances; each account keeps its newest
//! `max_ended_per_account` final deployments; a live one stays; names (and the live ones) are found
//! through indexes kept in step with create, end and forget.

use super::cluster::Cluster;
use super::deployment::{DeploymentState, Mode};
use super::deployment_tests::{cluster, end, new, start_scheduled, t};
use super::retention_tests::{ENDED, account, retention};
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::WorkloadState;
use gpuspot_common::{AccountId, DeploymentId};

/// What the cluster does at `at` when its timer fires; the deployments the commit deletes.
fn wake(c: &mut Cluster, at: DateTime<Utc>) -> Vec<DeploymentId> {
    c.handle_timeout(at);
    c.take_changes().forgotten_deployments
}

/// The ids `name` finds, sorted (ids are random).
fn named(c: &Cluster, name: &str) -> Vec<DeploymentId> {
    let mut ids: Vec<_> = c.deployments_named(name).map(|d| d.id.clone()).collect();
    ids.sort();
    ids
}

/// A replica set of one, named `name`, deleted at `at` (its queued replica ends at once on
/// a cluster with no hosts).
fn deleted(c: &mut Cluster, account: &AccountId, name: &str, at: DateTime<Utc>) -> DeploymentId {
    let mut request = new(Mode::Replicaset, 1, 0, 0);
    request.name = name.into();
    let id = c.create_deployment(account.clone(), request, at).unwrap();
    c.delete_deployment(&id, at).unwrap();
    assert_eq!(c.deployment(&id).unwrap().ended_at, Some(at), "nothing of it is active");
    id
}

#[test]
fn a_final_deployment_is_forgotten_at_its_deadline_counted_from_its_last_instances_end() {
    let mut c = cluster(&[("h", 1)]).with_retention(retention(1000));
    let acme = account(&mut c, "acme", None);
    let id = c.create_deployment(acme, new(Mode::Replicaset, 1, 0, 0), t(1)).unwrap();
    start_scheduled(&mut c, t(2));
    let replica = c.deployment_instances(&id)[0].clone();
    c.delete_deployment(&id, t(3)).unwrap();
    let d = c.deployment(&id).unwrap();
    assert_eq!((d.state(), d.ended_at), (DeploymentState::Deleted, None), "still stopping");
    assert!(wake(&mut c, t(3 + 10 * ENDED)).is_empty(), "not while its replica stops");

    let stopped = t(4 + 10 * ENDED);
    end(&mut c, &replica, WorkloadState::Exited { code: Some(0) }, stopped);
    assert_eq!(c.deployment(&id).unwrap().ended_at, Some(stopped));
    let deadline = stopped + chrono::Duration::seconds(ENDED);
    assert_eq!(c.next_forget(), Some(deadline), "the timer names its deadline");
    assert!(wake(&mut c, deadline - chrono::Duration::milliseconds(1)).is_empty());
    c.handle_timeout(deadline);
    let changes = c.take_changes();
    assert_eq!(changes.forgotten_deployments, vec![id.clone()], "forgotten at its deadline");
    assert_eq!(changes.forgotten_instances, vec![replica.id.clone()], "with its replica");
    assert!(c.deployment(&id).is_none() && c.instance(&replica.id).is_none());
    assert!(named(&c, "d").is_empty(), "its name is free of it");
    assert_eq!(c.next_forget(), None);
}

#[test]
fn an_account_keeps_only_its_newest_final_deployments_and_others_keep_theirs() {
    let mut c = cluster(&[]).with_retention(retention(2));
    let (acme, other) = (account(&mut c, "acme", None), account(&mut c, "other", None));
    let theirs = deleted(&mut c, &other, "theirs", t(1));
    let ids: Vec<DeploymentId> = (2..5).map(|s| deleted(&mut c, &acme, "mine", t(s))).collect();
    assert_eq!(c.next_forget(), Some(DateTime::<Utc>::MIN_UTC), "due at once");
    assert_eq!(wake(&mut c, t(5)), vec![ids[0].clone()], "the oldest of acme's three");
    let mut kept = ids[1..].to_vec();
    kept.sort();
    assert_eq!(named(&c, "MINE"), kept);
    assert!(c.deployment(&theirs).is_some());
    assert_eq!(c.next_forget(), Some(t(1 + ENDED)), "next: the other account's, by age");
}

#[test]
fn a_live_deployment_is_never_forgotten() {
    let mut c = cluster(&[("h", 1)]).with_retention(retention(1));
    let acme = account(&mut c, "acme", None);
    let live = c.create_deployment(acme.clone(), new(Mode::Replicaset, 1, 0, 0), t(1)).unwrap();
    start_scheduled(&mut c, t(2));
    let mut second = new(Mode::Replicaset, 1, 0, 0);
    second.name = "second".into();
    let queued = c.create_deployment(acme, second, t(3)).unwrap();
    assert!(wake(&mut c, t(100 * ENDED)).is_empty());
    assert!(c.deployment(&live).is_some() && c.deployment(&queued).is_some());
    assert!(c.deployments().all(|d| d.ended_at.is_none()));
}

#[test]
fn the_name_index_follows_create_delete_forget_and_restore() {
    let mut c = cluster(&[]).with_retention(retention(1000));
    let acme = account(&mut c, "acme", None);
    let old = deleted(&mut c, &acme, "Web", t(1));
    assert!(!c.name_taken("web"), "a deleted deployment holds no name");
    assert_eq!(named(&c, "WEB"), vec![old.clone()], "but is still found by it");
    let mut request = new(Mode::Replicaset, 1, 0, 0);
    request.name = "wEb".into();
    let live = c.create_deployment(acme, request, t(2)).unwrap();
    assert!(c.name_taken("WEB"));
    let mut both = vec![old.clone(), live.clone()];
    both.sort();
    assert_eq!(named(&c, "web"), both);
    let live_ids: Vec<_> = c.live_deployments().map(|d| d.id.clone()).collect();
    assert_eq!(live_ids, vec![live.clone()], "reconciles and routes see the live one only");

    let stored = c.take_changes().deployments;
    assert_eq!(wake(&mut c, t(1 + ENDED)), vec![old.clone()]);
    assert_eq!(named(&c, "web"), vec![live.clone()]);
    assert!(c.name_taken("web"));

    // A row stored before deployments had an end: it ended with its last instance, or
    // when it was created if none is kept.
    let mut legacy = stored;
    legacy.iter_mut().for_each(|d| d.ended_at = None);
    let restored = Cluster::new(vec![], Default::default())
        .with_retention(retention(1000))
        .with_deployments(legacy);
    assert_eq!(restored.deployment(&old).unwrap().ended_at, Some(t(1)));
    assert_eq!(restored.deployment(&live).unwrap().ended_at, None);
    assert_eq!(restored.next_forget(), Some(t(1 + ENDED)));
}
