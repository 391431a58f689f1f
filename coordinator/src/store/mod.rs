//! Durable coordinator state (docs/architecture.md#store) behind [`Store`]:
//! [`sqlite::SqliteStore`], the embedded default, or [`postgres::PostgresStore`], which several
//! coordinators share (one leads; docs/architecture.md). [`url::StoreUrl`] says which. Writes go
//! through [`writer::Writer`], one thread that group-commits batches so that nothing blocks the
//! actors.

pub mod backup;
pub mod credentials;
#[cfg(test)]
mod credentials_tests;
pub mod files;
pub mod lock;
pub mod messages;
pub mod migrate;
pub mod postgres;
pub mod retention;
pub mod sqlite;
pub mod url;
pub mod writer;

use crate::core::billing::{Account, LedgerEntry};
use crate::core::cluster::{Event, PricePoint};
use crate::core::deployment::Deployment;
use crate::core::notices::Message;
use crate::core::snapshots::SnapshotRecord;
use crate::core::{Host, Instance};
use chrono::{DateTime, Utc};
use credentials::{CertificateRecord, JoinRefusal, JoinTokenRecord, NewCertificate, NewJoinToken};
use gpuspot_common::AccountId;
use messages::{MailOutcome, PendingMail};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("store URL: {0}")]
    Url(String),
    #[error(
        "the database's schema is version {found}, newer than this coordinator knows ({known}): \
         upgrade this coordinator"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error("this coordinator's lease (epoch {epoch}) was taken by another: not committed")]
    Fenced { epoch: i64 },
    /// The database cannot be reached: nothing was written; retrying later may succeed.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    #[error("stored row {0} is unreadable: {1}")]
    Corrupt(String, String),
    #[error("cannot create data dir {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Conflict(String),
}

/// What the store commits: the core's change set, as is.
pub use crate::core::changes::Changes as Batch;

/// Which end of an account's ledger a page starts from: the oldest entry (the default), or
/// the newest, which a dashboard or a user checking recent charges wants without reading
/// every older page first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LedgerOrder {
    #[default]
    Oldest,
    Newest,
}

impl LedgerOrder {
    pub const ALL: [LedgerOrder; 2] = [LedgerOrder::Oldest, LedgerOrder::Newest];

    /// The id a page starts past (exclusive), for a cursor `after` or none: entry ids start
    /// at 1 and beyond i64 there are none, so both backends bound the same way.
    pub fn bound(self, after: Option<u64>) -> i64 {
        match (after, self) {
            (Some(after), _) => i64::try_from(after).unwrap_or(i64::MAX),
            (None, LedgerOrder::Oldest) => 0,
            (None, LedgerOrder::Newest) => i64::MAX,
        }
    }

    /// The name `?order=` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerOrder::Oldest => "oldest",
            LedgerOrder::Newest => "newest",
        }
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
    /// Up to `limit` of the account's inbox messages, newest first (docs/contracts.md#messages),
    /// those older than message `after` when given; `None` when `after` is not the account's.
    fn messages(
        &self,
        account: &AccountId,
        unread_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, StoreError>;
    /// Marks the account's message read; `None` when the account has no such message.
    fn mark_message_read(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<Message>, StoreError>;
    /// Messages whose mail is due at `now`, oldest first.
    fn mail_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<PendingMail>, StoreError>;
    /// When the next mail still to send is due.
    fn next_mail_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// What became of an attempt to mail message `id`.
    fn record_mail(&self, id: &str, outcome: &MailOutcome) -> Result<(), StoreError>;
    /// Records a new join token; a token whose id is taken is a `Conflict`.
    fn add_join_token(&self, token: &NewJoinToken) -> Result<JoinTokenRecord, StoreError>;
    /// Every join token, oldest first.
    fn join_tokens(&self) -> Result<Vec<JoinTokenRecord>, StoreError>;
    /// Revokes the token with this id; None when there is none.
    fn revoke_join_token(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<JoinTokenRecord>, StoreError>;
    /// A join: if the token is active, one use is counted and `certificate` recorded, both
    /// at once and atomically with every other join; otherwise why it is refused.
    fn redeem_join_token(
        &self,
        secret_hash: &str,
        certificate: &NewCertificate,
    ) -> Result<Result<JoinTokenRecord, JoinRefusal>, StoreError>;
    /// Where a replay of at most `max` events after `after_id` starts: the id just before
    /// the `max`-th newest event `account` may see (all events with `None`), or `after_id`
    /// when there are fewer (docs/contracts.md#limits: a bounded replay).
    fn replay_start(
        &self,
        after_id: u64,
        account: Option<&AccountId>,
        max: usize,
    ) -> Result<u64, StoreError>;
    /// Up to `limit` events after `after_id` that `account` may see, oldest first.
    fn events_visible_after(
        &self,
        after_id: u64,
        account: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// The host a certificate names, and whether it was revoked.
    fn host_certificate(&self, fingerprint: &str) -> Result<Option<CertificateRecord>, StoreError>;
    fn events_after(&self, after_id: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// Up to `limit` of an account's ledger entries in `order`, those past entry `after` (in
    /// that order) when given.
    fn ledger(
        &self,
        account: &AccountId,
        order: LedgerOrder,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
    fn price_history(
        &self,
        model: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<PricePoint>, StoreError>;
}
