//! The messages the cluster actor accepts. API requests are one enum ([`ApiRequest`]) so the
//! HTTP layer and the actor agree on a single, exhaustive boundary.

use crate::config::PoolSettings;
use crate::core::billing::{Account, LedgerEntry};
use crate::core::deployment::{Deployment, DeploymentSpec, Template};
use crate::core::deployments::NewDeployment;
use crate::core::pools::PoolUsage;
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

#[derive(Debug)]
pub enum ApiRequest {
    CreateInstance {
        account: AccountId,
        request: InstanceRequest,
    },
    GetInstance {
        scope: Scope,
        id: InstanceId,
    },
    ListInstances {
        scope: Scope,
    },
    DeleteInstance {
        scope: Scope,
        id: InstanceId,
    },
    /// Name and env may change; `resize` says the body also tried billing or size.
    ChangeInstance {
        scope: Scope,
        id: InstanceId,
        name: Option<String>,
        env: Option<std::collections::BTreeMap<String, String>>,
        resize: bool,
    },
    ListHosts,
    GetHost {
        id: HostId,
    },
    Pools,
    /// Whether any pool or known host offers this model (for validation).
    KnownModel {
        model: String,
    },
    CreateAccount {
        name: String,
        token_hash: String,
        webhook_url: Option<String>,
    },
    GetAccount {
        scope: Scope,
        id: AccountId,
    },
    ListAccounts,
    /// Counts for `/metrics`.
    Stats,
    ListSnapshots {
        scope: Scope,
    },
    /// Everything about deployments goes through one variant per verb.
    Deployment(DeploymentRequest),
    Pay {
        scope: Scope,
        id: AccountId,
        amount: Money,
    },
    RotateToken {
        scope: Scope,
        id: AccountId,
        token_hash: String,
    },
    /// Admin only (checked by the API).
    ChangeAccount {
        id: AccountId,
        disabled: Option<bool>,
    },
    /// Admin only (checked by the API): forget the host, revoke its certificate.
    DeleteHost {
        id: HostId,
    },
}

#[derive(Debug, Clone)]
pub struct PoolView {
    pub settings: PoolSettings,
    pub usage: PoolUsage,
    pub market_price: Money,
}

#[derive(Debug)]
pub enum ApiReply {
    Instance(Box<Instance>),
    Instances(Vec<Instance>),
    Host(Box<Host>),
    Hosts(Vec<Host>),
    Pools(Vec<PoolView>),
    Known(bool),
    Account(Box<Account>),
    Accounts(Vec<Account>),
    Payment(Box<LedgerEntry>, Box<Account>),
    Stats(Box<Stats>),
    Snapshots(Vec<crate::core::snapshots::SnapshotRecord>),
    Deployment(Box<DeploymentView>),
    Deployments(Vec<DeploymentView>),
    Endpoints(Vec<(Instance, Option<String>)>),
}

/// Cluster-wide counts, cheap to compute, for monitoring.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub hosts_by_state: std::collections::BTreeMap<&'static str, usize>,
    pub instances_by_state: std::collections::BTreeMap<&'static str, usize>,
    pub pools: Vec<PoolView>,
    pub deployments: usize,
    pub accounts: usize,
}

#[derive(Debug)]
pub enum DeploymentRequest {
    Create {
        account: AccountId,
        new: NewDeployment,
    },
    Get {
        scope: Scope,
        id: DeploymentId,
    },
    List {
        scope: Scope,
    },
    Change {
        scope: Scope,
        id: DeploymentId,
        replicas: Option<u32>,
        specs: Option<Vec<DeploymentSpec>>,
        template: Option<Template>,
    },
    Rebuild {
        scope: Scope,
        id: DeploymentId,
    },
    Delete {
        scope: Scope,
        id: DeploymentId,
    },
    Endpoints {
        scope: Scope,
        id: DeploymentId,
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

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("could not persist the change: {0}")]
    Store(String),
}

impl Message for ApiRequest {
    type Result = Result<ApiReply, ApiError>;
}

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
        /// How the host runs guests (DESIGN §14).
        runtimes: Vec<GuestRuntime>,
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
