//! The one change set: what core operations changed, which the actor commits through the
//! store (rows to upsert, entries to append, hosts, ended instances and final deployments
//! to delete, history and old events to prune) and then acts on (messages to send once the
//! commit is durable).

use super::billing::{Account, LedgerEntry};
use super::deployment::Deployment;
use super::events::Event;
use super::instance::Instance;
use super::market::PricePoint;
use super::notices::Message;
use super::outbox::Send;
use super::registry::{Host, RemovedHost};
use super::snapshot::SnapshotRecord;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, DeploymentId, InstanceId};

/// Applied atomically by the store (deletions last, so a host upserted and then forgotten
/// is gone); `sends` are not stored, they leave after the commit.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub instances: Vec<Instance>,
    pub snapshots: Vec<SnapshotRecord>,
    pub deployments: Vec<Deployment>,
    pub hosts: Vec<Host>,
    pub accounts: Vec<Account>,
    pub ledger: Vec<LedgerEntry>,
    pub events: Vec<Event>,
    /// Inbox messages, with the mail still to send for them (docs/contracts.md#messages).
    pub messages: Vec<Message>,
    pub price_points: Vec<PricePoint>,
    /// Price history older than this is dropped (retention, docs/contracts.md#market).
    pub prune_prices_before: Option<DateTime<Utc>>,
    /// Ended instances retention forgot: their rows go (docs/contracts.md#retention).
    pub forgotten_instances: Vec<InstanceId>,
    /// Final deployments retention forgot: their rows go (docs/contracts.md#retention).
    pub forgotten_deployments: Vec<DeploymentId>,
    /// Events older than this go, with the inbox messages they made (pending mail stays).
    pub prune_events_before: Option<DateTime<Utc>>,
    /// Accounts past their event cap: all but each one's newest N events go.
    pub trim_events: Vec<(AccountId, usize)>,
    pub sends: Vec<Send>,
    /// Hosts the operator deleted: their rows go, their certificates are revoked.
    pub removed_hosts: Vec<RemovedHost>,
}

impl Changes {
    /// Nothing to store (messages to send do not count).
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
            && self.snapshots.is_empty()
            && self.deployments.is_empty()
            && self.hosts.is_empty()
            && self.accounts.is_empty()
            && self.ledger.is_empty()
            && self.events.is_empty()
            && self.messages.is_empty()
            && self.price_points.is_empty()
            && self.prune_prices_before.is_none()
            && self.forgotten_instances.is_empty()
            && self.forgotten_deployments.is_empty()
            && self.prune_events_before.is_none()
            && self.trim_events.is_empty()
            && self.removed_hosts.is_empty()
    }

    /// With new price points, history older than `retention` before the newest goes.
    pub fn with_price_retention(mut self, retention: std::time::Duration) -> Self {
        let newest = self.price_points.iter().map(|p| p.at).max();
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        self.prune_prices_before = newest.and_then(|at| at.checked_sub_signed(retention));
        self
    }
}
