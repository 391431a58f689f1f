//! The messages the cluster actor accepts. API requests are one enum ([`ApiRequest`]) so the
//! HTTP layer and the actor agree on a single, exhaustive boundary; each variant carries
//! its typed [`Reply`].

use super::reply::Reply;
use crate::config::PoolSettings;
use crate::core::billing::{Account, LedgerEntry};
use crate::core::deployment::Deployment;
use crate::core::deployments::{DeploymentChange, NewDeployment};
use crate::core::listing::{Listing, Page};
use crate::core::pools::PoolUsage;
use crate::core::quotas::{Quota, Usage};
use crate::core::snapshots::SnapshotRecord;
use crate::core::{Host, Instance, InstanceRequest};
use actix::Message;
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage, GuestRuntime, InstanceReport};
use gpuspot_common::{AccountId, DeploymentId, HostId, HostInventory, InstanceId, Money};
use tokio::sync::mpsc::UnboundedSender;

/// Whose view a request has: the admin sees everything, an account only its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Account(AccountId),
}

impl Scope {
    pub fn may_see(&self, owner: &AccountId) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Account(account) => account == owner,
        }
    }
}

/// Every API request, each with the [`Reply`] for the one type it answers. Reads are
/// answered at once; writes once the store has committed them.
#[derive(Debug)]
pub enum ApiRequest {
    CreateInstance {
        account: AccountId,
        request: InstanceRequest,
        reply: Reply<Instance>,
    },
    GetInstance {
        scope: Scope,
        id: InstanceId,
        reply: Reply<Instance>,
    },
    ListInstances {
        scope: Scope,
        listing: Listing,
        reply: Reply<Page<Instance>>,
    },
    DeleteInstance {
        scope: Scope,
        id: InstanceId,
        reply: Reply<Instance>,
    },
    /// Name and env may change; `resize` says the body also tried billing or size.
    ChangeInstance {
        scope: Scope,
        id: InstanceId,
        name: Option<String>,
        env: Option<std::collections::BTreeMap<String, String>>,
        resize: bool,
        reply: Reply<Instance>,
    },
    ListHosts {
        listing: Listing,
        reply: Reply<Page<Host>>,
    },
    GetHost {
        id: HostId,
        reply: Reply<Host>,
    },
    Pools {
        reply: Reply<Vec<PoolView>>,
    },
    /// Whether any pool or known host offers this model (for validation).
    KnownModel {
        model: String,
        reply: Reply<bool>,
    },
    CreateAccount {
        new: crate::core::accounts::NewAccount,
        reply: Reply<AccountView>,
    },
    GetAccount {
        scope: Scope,
        id: AccountId,
        reply: Reply<AccountView>,
    },
    ListAccounts {
        listing: Listing,
        reply: Reply<Page<AccountView>>,
    },
    /// Counts for `/metrics`.
    Stats {
        reply: Reply<Stats>,
    },
    ListSnapshots {
        scope: Scope,
        listing: Listing,
        reply: Reply<Page<SnapshotRecord>>,
    },
    /// Everything about deployments goes through one variant per verb.
    Deployment(DeploymentRequest),
    Pay {
        scope: Scope,
        id: AccountId,
        amount: Money,
        reply: Reply<Payment>,
    },
    RotateToken {
        scope: Scope,
        id: AccountId,
        token_hash: String,
        reply: Reply<AccountView>,
    },
    /// `disabled`, `quota` and `webhook_url` are the admin's alone (checked by the API);
    /// an account may change its own `email`.
    ChangeAccount {
        scope: Scope,
        id: AccountId,
        change: super::AccountChange,
        reply: Reply<AccountView>,
    },
    /// Admin only (checked by the API): forget the host, revoke its certificate. Answers
    /// with the host as it was.
    DeleteHost {
        id: HostId,
        reply: Reply<Host>,
    },
    /// Admin only: cordon, uncordon or drain a host (docs/contracts.md#operating-hosts). Answers
    /// with the host.
    HostMaintenance {
        id: HostId,
        action: HostAction,
        reply: Reply<Host>,
    },
    /// Drills, and GPU faults injected or cleared (docs/architecture.md).
    Fault(super::faults::FaultRequest),
}

/// What the operator does to a host.
#[derive(Debug, Clone, Copy)]
pub enum HostAction {
    Cordon,
    Uncordon,
    /// Notices within this deadline at the latest (None: each instance's own notice).
    Drain(Option<std::time::Duration>),
}

#[derive(Debug, Clone)]
pub struct PoolView {
    pub settings: PoolSettings,
    pub usage: PoolUsage,
    pub market_price: Money,
}

/// A booked payment and the account after it.
#[derive(Debug, Clone)]
pub struct Payment {
    pub entry: LedgerEntry,
    pub account: AccountView,
}

/// An account as the API shows it: with the quota that applies to it and what it holds.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub account: Account,
    pub quota: Quota,
    pub usage: Usage,
}

/// Cluster-wide counts, cheap to compute, for monitoring.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub hosts_by_state: std::collections::BTreeMap<&'static str, usize>,
    pub instances_by_state: std::collections::BTreeMap<&'static str, usize>,
    pub pools: Vec<PoolView>,
    pub deployments: usize,
    pub accounts: usize,
    /// Queued requests per pool that they may take (a request of several models counts
    /// for each).
    pub queued_by_pool: std::collections::BTreeMap<String, usize>,
    /// Seconds since each host (not lost) was last heard from.
    pub heartbeat_ages: Vec<(String, f64)>,
}

#[derive(Debug)]
pub enum DeploymentRequest {
    Create {
        account: AccountId,
        new: NewDeployment,
        reply: Reply<DeploymentView>,
    },
    Get {
        scope: Scope,
        id: DeploymentId,
        reply: Reply<DeploymentView>,
    },
    List {
        scope: Scope,
        listing: Listing,
        reply: Reply<Page<DeploymentView>>,
    },
    Change {
        scope: Scope,
        id: DeploymentId,
        change: DeploymentChange,
        reply: Reply<DeploymentView>,
    },
    Rebuild {
        scope: Scope,
        id: DeploymentId,
        reply: Reply<DeploymentView>,
    },
    Delete {
        scope: Scope,
        id: DeploymentId,
        reply: Reply<DeploymentView>,
    },
    Endpoints {
        scope: Scope,
        id: DeploymentId,
        reply: Reply<Vec<Endpoint>>,
    },
}

/// A deployment with its instances, as the API shows it.
#[derive(Debug, Clone)]
pub struct DeploymentView {
    pub deployment: Deployment,
    pub instances: Vec<Instance>,
    /// Set by a rebuild: how many replicas moved back to spot.
    pub moved: Option<usize>,
}

/// A running replica of a deployment and the hostname it is reached at.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub instance: Instance,
    pub hostname: Option<String>,
    pub info: crate::core::routes::EndpointInfo,
}

impl Message for ApiRequest {
    type Result = ();
}

/// A join token let a host in (the QUIC join): the actor records `host_joined` and answers
/// once that is committed, before the agent gets its certificate.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct HostJoined(pub crate::core::agents::Joined);

/// What a QUIC session tells the actor about its agent.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum AgentEvent {
    Connected {
        host_id: HostId,
        link_id: u64,
        outbox: UnboundedSender<Box<CoordinatorMessage>>,
        inventory: HostInventory,
        agent_version: String,
        /// How the host runs guests (docs/contracts.md#guests).
        runtimes: Vec<GuestRuntime>,
        /// Where its guests listen (docs/contracts.md#serving).
        network: crate::core::registry::HostNetwork,
        reports: Vec<InstanceReport>,
    },
    Message {
        host_id: HostId,
        link_id: u64,
        message: AgentMessage,
    },
    Disconnected {
        host_id: HostId,
        link_id: u64,
    },
}
