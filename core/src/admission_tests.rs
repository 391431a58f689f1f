//! Admission through the cluster: each refusal of a new instance or deployment, and that a
//! refused one leaves nothing behind.

use super::accounts::{NewAccount, OPERATOR};
use super::admission::Refusal;
use super::cluster::Cluster;
use super::deployment::Mode;
use super::deployment_tests::{cluster, new, t};
use super::error::{AccountError, DeploymentError, QuotaError};
use super::model::{InstanceRequest, SnapshotOptions};
use super::quotas::{QuotaChange, QuotaUpdate};
use super::snapshots::SnapshotRecord;
use gpuspot_common::protocol::SnapshotRef;
use gpuspot_common::{AccountId, InstanceId, Money};

/// A regular one-GPU request (a deployment's fallback spec).
fn request() -> InstanceRequest {
    let mut probe = cluster(&[]);
    let id = probe.create_deployment(OPERATOR.into(), new(Mode::Job, 0, 0, 0), t(0)).unwrap();
    probe.deployment(&id).unwrap().request(1)
}

fn acme(c: &mut Cluster) -> AccountId {
    c.create_account(NewAccount::named("acme"), t(0))
}

/// `c` as restarted with `id` overdue since `t(1)`.
fn overdue(c: &Cluster, id: &AccountId) -> Cluster {
    let mut account = c.account(id).unwrap().clone();
    account.overdue_since = Some(t(1));
    account.overdue_deadline = Some(t(1000));
    cluster(&[("h", 1)]).with_accounts(vec![account], 0, t(2))
}

fn nothing_created(c: &Cluster) -> bool {
    c.instances().count() == 0 && c.deployments().count() == 0
}

#[test]
fn an_unknown_disabled_or_overdue_account_creates_no_instance() {
    let mut c = cluster(&[("h", 1)]);
    let nobody = AccountId::from("a-nobody");
    let unknown = c.create_instance(nobody.clone(), request(), t(1));
    assert_eq!(unknown, Err(Refusal::UnknownAccount(nobody)));
    assert_eq!(unknown.unwrap_err().to_string(), "account a-nobody not found");

    let acme = acme(&mut c);
    let mut late = overdue(&c, &acme);
    let refused = late.create_instance(acme.clone(), request(), t(3));
    let expected = Refusal::OverdueForInstances { account: acme.clone(), balance: Money::ZERO };
    assert_eq!(refused, Err(expected));
    assert!(nothing_created(&late));

    c.set_disabled(&acme, true, t(1)).unwrap();
    let disabled = c.create_instance(acme.clone(), request(), t(2));
    assert_eq!(disabled, Err(Refusal::Account(AccountError::Disabled(acme))));
    assert!(nothing_created(&c));
}

#[test]
fn only_the_owner_restores_a_snapshot() {
    let record = SnapshotRecord {
        snapshot: SnapshotRef { id: "s-1".into(), sha256: String::new(), size: 1 },
        instance_id: InstanceId::from("i-1"),
        deployment_id: None,
        account_id: AccountId::from(OPERATOR),
        created_at: t(0),
    };
    let mut c = cluster(&[("h", 1)]).with_snapshots(vec![record]);
    let acme = acme(&mut c);
    let mut restoring = request();
    restoring.snapshot = SnapshotOptions { enabled: false, restore_from: Some("s-1".into()) };
    let theirs = c.create_instance(acme, restoring.clone(), t(1));
    assert_eq!(theirs, Err(Refusal::UnknownSnapshot("s-1".into())));
    assert!(nothing_created(&c));
    assert!(c.create_instance(OPERATOR.into(), restoring, t(1)).is_ok(), "the owner's own");
}

#[test]
fn a_request_past_the_quota_is_refused_before_it_queues() {
    let mut c = cluster(&[("h", 1)]);
    let acme = acme(&mut c);
    let change = QuotaChange { max_gpus: Some(Some(1)), max_instances: Some(None) };
    c.set_quota(&acme, QuotaUpdate::Change(change), t(0)).unwrap();
    c.create_instance(acme.clone(), request(), t(1)).unwrap();
    let second = c.create_instance(acme, request(), t(1));
    assert_eq!(second, Err(Refusal::Quota(QuotaError::Gpus { wanted: 2, limit: 1 })));
    assert_eq!(c.instances().count(), 1);
}

#[test]
fn a_deployment_is_refused_for_its_owner_its_quota_or_its_name() {
    let mut c = cluster(&[("h", 1)]);
    let nobody = AccountId::from("a-nobody");
    let unknown = c.create_deployment(nobody.clone(), new(Mode::Replicaset, 1, 0, 0), t(1));
    assert_eq!(unknown, Err(Refusal::UnknownAccount(nobody)));

    let acme = acme(&mut c);
    let change = QuotaChange { max_gpus: Some(Some(1)), max_instances: Some(None) };
    c.set_quota(&acme, QuotaUpdate::Change(change), t(0)).unwrap();
    let too_big = c.create_deployment(acme.clone(), new(Mode::Replicaset, 2, 0, 0), t(1));
    assert_eq!(too_big, Err(Refusal::Quota(QuotaError::Gpus { wanted: 2, limit: 1 })));
    assert!(nothing_created(&c));

    let mut late = overdue(&c, &acme);
    let refused = late.create_deployment(acme.clone(), new(Mode::Replicaset, 1, 0, 0), t(3));
    assert_eq!(refused, Err(Refusal::OverdueForDeployments(acme.clone())));

    c.create_deployment(acme.clone(), new(Mode::Replicaset, 1, 0, 0), t(1)).unwrap();
    let again = c.create_deployment(acme, new(Mode::Replicaset, 1, 0, 0), t(2));
    assert_eq!(again, Err(Refusal::Deployment(DeploymentError::NameTaken("d".into()))));
    assert_eq!(c.deployments().count(), 1);
}
