//! Quotas through the cluster state machine (docs/contracts.md#failures-and-quotas): what counts
//! against a limit, which quota applies, and deployments that would pass one.

use super::accounts::OPERATOR;
use super::cluster::Cluster;
use super::deployment::{DeploymentState, Mode};
use super::deployment_tests::{cluster, end, new, start_scheduled, t};
use super::model::{EndReason, GpuRequest, InstanceRequest, InstanceState};
use super::quotas::{Quota, QuotaChange, QuotaError, QuotaUpdate, Usage};
use gpuspot_common::AccountId;
use gpuspot_common::protocol::WorkloadState;

fn account(c: &mut Cluster, quota: Quota) -> AccountId {
    let id = c.create_account(crate::accounts::NewAccount::named("acme"), t(0));
    let change =
        QuotaChange { max_gpus: Some(quota.max_gpus), max_instances: Some(quota.max_instances) };
    c.set_quota(&id, QuotaUpdate::Change(change), t(0)).unwrap();
    id
}

/// A regular request for `gpus` H100s (a deployment's fallback spec, resized).
fn request(gpus: u32) -> InstanceRequest {
    let mut probe = cluster(&[]);
    let id = probe.create_deployment(OPERATOR.into(), new(Mode::Job, 0, 0, 0), t(0)).unwrap();
    let mut request = probe.deployment(&id).unwrap().request(1);
    request.gpu = GpuRequest { models: vec!["H100".into()], count: gpus };
    request
}

fn usage(c: &Cluster, id: &AccountId) -> Usage {
    c.usage(id)
}

#[test]
fn queued_and_running_instances_count_and_the_third_gpu_is_refused() {
    // One GPU in the cluster: the second request queues, and still counts.
    let mut c = cluster(&[("h", 1)]);
    let acme = account(&mut c, Quota { max_gpus: Some(2), max_instances: None });
    let running = c.create_instance(acme.clone(), request(1), t(1)).unwrap();
    let queued = c.create_instance(acme.clone(), request(1), t(1)).unwrap();
    assert_eq!(c.instance(&queued).unwrap().state(), InstanceState::Queued);
    assert_eq!(usage(&c, &acme), Usage { gpus: 2, instances: 2 });

    let refused = c.check_quota(&acme, &request(1)).unwrap_err();
    assert_eq!(refused, QuotaError::Gpus { wanted: 3, limit: 2 });
    assert_eq!(
        refused.to_string(),
        "quota_exceeded: 3 GPUs would pass the account's max_gpus of 2"
    );

    // A final instance no longer counts.
    c.delete_instance(&queued, t(2)).unwrap();
    assert_eq!(usage(&c, &acme), Usage { gpus: 1, instances: 1 });
    assert_eq!(c.check_quota(&acme, &request(1)), Ok(()));
    assert!(c.check_quota(&acme, &request(2)).is_err(), "1 + 2 GPUs pass 2");
    assert!(c.instance(&running).is_some());
}

#[test]
fn max_instances_counts_instances_whatever_their_size() {
    let mut c = cluster(&[("h", 8)]);
    let acme = account(&mut c, Quota { max_gpus: None, max_instances: Some(1) });
    c.create_instance(acme.clone(), request(4), t(1)).unwrap();
    assert_eq!(
        c.check_quota(&acme, &request(1)),
        Err(QuotaError::Instances { wanted: 2, limit: 1 })
    );
    assert_eq!(
        QuotaError::Instances { wanted: 2, limit: 1 }.to_string(),
        "quota_exceeded: 2 instances would pass the account's max_instances of 1"
    );
}

#[test]
fn the_default_applies_until_the_admin_sets_one_and_the_operator_is_unlimited() {
    let default = Quota { max_gpus: Some(1), max_instances: Some(5) };
    let mut c = cluster(&[("h", 8)]).with_default_quota(default);
    let acme = c.create_account(crate::accounts::NewAccount::named("acme"), t(0));
    let quota_of = |c: &Cluster, id: &AccountId| c.quota(c.account(id).unwrap());
    assert_eq!(quota_of(&c, &acme), default);
    assert!(c.check_quota(&acme, &request(2)).is_err());
    assert_eq!(quota_of(&c, &OPERATOR.into()), Quota::UNLIMITED);
    assert_eq!(c.check_quota(&OPERATOR.into(), &request(8)), Ok(()));

    // A change keeps the limits it does not name; null clears one.
    let raise: QuotaChange = serde_json::from_str(r#"{"max_gpus": 4}"#).unwrap();
    c.set_quota(&acme, QuotaUpdate::Change(raise), t(1)).unwrap();
    assert_eq!(quota_of(&c, &acme), Quota { max_gpus: Some(4), max_instances: Some(5) });
    let clear: QuotaChange = serde_json::from_str(r#"{"max_instances": null}"#).unwrap();
    c.set_quota(&acme, QuotaUpdate::Change(clear), t(1)).unwrap();
    assert_eq!(quota_of(&c, &acme), Quota { max_gpus: Some(4), max_instances: None });
    c.set_quota(&acme, QuotaUpdate::Default, t(1)).unwrap();
    assert_eq!(quota_of(&c, &acme), default);
    assert!(serde_json::from_str::<QuotaChange>(r#"{"gpus": 1}"#).is_err(), "unknown key");
}

#[test]
fn an_older_stored_account_reads_without_a_quota() {
    let c = cluster(&[]);
    let mut stored = serde_json::to_value(c.account(&OPERATOR.into()).unwrap()).unwrap();
    stored.as_object_mut().unwrap().remove("quota");
    let account: super::billing::Account = serde_json::from_value(stored).unwrap();
    assert_eq!(account.quota, None);
}

#[test]
fn a_deployment_that_could_never_fit_is_refused() {
    let mut c = cluster(&[("h", 8)]);
    let acme = account(&mut c, Quota { max_gpus: Some(2), max_instances: None });
    let three = new(Mode::Replicaset, 3, 0, 0);
    assert_eq!(
        c.check_deployment_quota(&acme, &three),
        Err(QuotaError::Gpus { wanted: 3, limit: 2 })
    );
    assert_eq!(c.check_deployment_quota(&acme, &new(Mode::Replicaset, 2, 0, 0)), Ok(()));
    let job = new(Mode::Job, 0, 10, 2);
    assert_eq!(c.check_deployment_quota(&acme, &job), Ok(()), "two at a time fit");
}

#[test]
fn a_replica_set_at_its_quota_waits_to_replace_a_draining_replica() {
    let mut c = cluster(&[("h", 8)]);
    let acme = account(&mut c, Quota { max_gpus: Some(2), max_instances: None });
    let id = c.create_deployment(acme.clone(), new(Mode::Replicaset, 2, 0, 0), t(0)).unwrap();
    start_scheduled(&mut c, t(1));
    let noticed = c.deployment_instances(&id)[0].clone();
    c.give_notice(&noticed.id, EndReason::ReclaimedCapacity, t(2));
    c.reconcile_deployments(t(2)); // what settling the notice's operation does

    let d = c.deployment(&id).unwrap();
    assert_eq!(
        d.reason.as_deref(),
        Some("quota_exceeded: 3 GPUs would pass the account's max_gpus of 2"),
        "{d:?}"
    );
    assert_eq!(c.deployment_instances(&id).len(), 2, "no replacement past the quota");
    assert_eq!(usage(&c, &acme), Usage { gpus: 2, instances: 2 });

    // Once the drained replica is gone, the replacement starts.
    c.tick(t(60));
    let draining = c.instance(&noticed.id).unwrap().clone();
    end(&mut c, &draining, WorkloadState::Stopped, t(60));
    let active = c.deployment_instances(&id).into_iter().filter(|i| !i.is_terminated()).count();
    assert_eq!(active, 2);
    assert_eq!(usage(&c, &acme), Usage { gpus: 2, instances: 2 });
    assert_ne!(c.deployment(&id).unwrap().state(), DeploymentState::Failed);
}
