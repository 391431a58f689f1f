//! Durable coordinator state (DESIGN §10). [`Store`] is the seam a PostgreSQL backend would
//! fill; [`sqlite::SqliteStore`] is the one we ship. Writes go through [`writer::Writer`],
//! one thread that group-commits batches so that nothing blocks the actors.

pub mod sqlite;
pub mod writer;

use crate::core::billing::{Account, LedgerEntry};
use crate::core::cluster::{Event, PricePoint};
use crate::core::deployment::Deployment;
use crate::core::snapshots::SnapshotRecord;
use crate::core::{Host, Instance};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, HostId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored row {0} is unreadable: {1}")]
    Corrupt(String, String),
    #[error("cannot create data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("the store writer has stopped")]
    WriterGone,
}

/// What a batch of core operations changed: upserts and appends, applied atomically.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub deployments: Vec<Deployment>,
    pub snapshots: Vec<SnapshotRecord>,
    pub hosts: Vec<Host>,
    pub instances: Vec<Instance>,
    pub accounts: Vec<Account>,
    pub ledger: Vec<LedgerEntry>,
    pub events: Vec<Event>,
    pub price_points: Vec<PricePoint>,
    /// Price history older than this is dropped (retention, DESIGN §4).
    pub prune_prices_before: Option<DateTime<Utc>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.deployments.is_empty()
            && self.snapshots.is_empty()
            && self.instances.is_empty()
            && self.accounts.is_empty()
            && self.ledger.is_empty()
            && self.events.is_empty()
            && self.price_points.is_empty()
            && self.prune_prices_before.is_none()
    }
}

/// Everything a restarting coordinator needs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub hosts: Vec<Host>,
    pub instances: Vec<Instance>,
    pub last_event_id: u64,
    pub accounts: Vec<Account>,
    pub last_ledger_id: u64,
    pub deployments: Vec<Deployment>,
    pub snapshots: Vec<SnapshotRecord>,
    /// The latest market price of each pool.
    pub prices: std::collections::BTreeMap<String, gpuspot_common::Money>,
}

pub trait Store: Send + Sync + 'static {
    fn load(&self) -> Result<Loaded, StoreError>;
    fn commit(&self, batches: &[Batch]) -> Result<(), StoreError>;
    fn add_join_token(&self, secret_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    fn join_token_exists(&self, secret_hash: &str) -> Result<bool, StoreError>;
    fn add_host_certificate(
        &self,
        fingerprint: &str,
        host: &HostId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    fn host_for_certificate(&self, fingerprint: &str) -> Result<Option<HostId>, StoreError>;
    fn events_after(&self, after_id: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    fn ledger(&self, account: &AccountId, limit: usize) -> Result<Vec<LedgerEntry>, StoreError>;
    fn price_history(
        &self,
        model: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<PricePoint>, StoreError>;
}
