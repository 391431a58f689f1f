//! Building a cluster: the settings the coordinator's config gives it, and the state a
//! previous run committed (hosts, instances, accounts, deployments, prices), restored at
//! `now`.

use super::cluster::{Cluster, RESTART_GRACE};
use super::ids::Ids;
use super::instance::Instance;
use super::registry::Host;
use chrono::{DateTime, Utc};
use gpuspot_common::Money;

impl Cluster {
    /// Where new ids come from (counted in tests).
    pub fn with_ids(mut self, ids: Ids) -> Self {
        self.ids = ids;
        self
    }

    /// Rebuilds the state a previous run committed. Hosts start disconnected with a fresh
    /// `host_lost_after` to come back in: their agents are reconnecting right now.
    pub fn restore(
        mut self,
        hosts: Vec<Host>,
        instances: Vec<Instance>,
        last_event_id: u64,
        now: DateTime<Utc>,
    ) -> Self {
        for mut host in hosts {
            host.restored(now);
            self.learn_pools(&host);
            self.registry.insert(host);
        }
        for instance in instances {
            self.next_seq = self.next_seq.max(instance.seq + 1);
            self.instances.restore(instance);
        }
        self.mark_promises();
        // Like Nomad's failover heartbeat TTL: a restart is not the agents' fault.
        let grace = self.timers.host_lost_after.max(RESTART_GRACE);
        self.restart_grace = chrono::Duration::from_std(grace).ok().map(|g| (now, now + g));
        self.outbox.continue_after(last_event_id);
        self
    }

    /// Accounts and the last ledger entry id a previous run committed, restored at `now`.
    pub fn with_accounts(
        mut self,
        accounts: Vec<super::billing::Account>,
        last_id: u64,
        now: DateTime<Utc>,
    ) -> Self {
        self.ledger.restore(accounts, last_id, now);
        self
    }

    /// Inbox messages are mailed to their account's `email` too (an `[smtp]` is set).
    pub fn with_mail(mut self, enabled: bool) -> Self {
        self.mail = enabled;
        self
    }

    /// How long before its deadline a noticed replica leaves the gateway's rotation at the
    /// latest (config `[gateway] drain_margin`).
    pub fn with_drain_margin(mut self, margin: std::time::Duration) -> Self {
        self.drain_margin = super::rotation::DrainMargin::new(margin);
        self
    }

    /// Largest snapshot accepted (config `[snapshots] max_bytes`).
    pub fn with_snapshot_limit(mut self, max_bytes: u64) -> Self {
        self.snapshots.max_bytes = max_bytes;
        self
    }

    /// Deployments a previous run committed.
    pub fn with_deployments(mut self, deployments: Vec<super::deployment::Deployment>) -> Self {
        for mut d in deployments {
            self.next_seq = self.next_seq.max(d.seq + 1);
            d.ended_at = self.restored_end(&d);
            self.deployments.restore(d);
        }
        self
    }

    /// The last market prices a previous run recorded.
    pub fn with_prices(mut self, prices: std::collections::BTreeMap<String, Money>) -> Self {
        self.prices.restore(prices);
        self
    }
}
