//! PostgreSQL backend (docs/architecture.md, PostgreSQL store): several coordinators share
//! one database; one leads by the lease in [`lease`], and only its commits pass the fence.
//! The sync `postgres` crate is used from the writer thread and from blocking tasks (never
//! from an async task: it runs its own small runtime). Separate connections for commits,
//! reads and the lease keep a long group commit from delaying a renewal; a connection
//! that broke is opened again on its next use, so the store recovers by itself when the
//! database returns.

pub mod lease;
mod read;
pub mod schema;
mod tokens;
mod write;

use super::credentials::{
    CertificateRecord, JoinRefusal, JoinTokenRecord, NewCertificate, NewJoinToken,
};
use super::messages::{MailOutcome, PendingMail};
use super::{Batch, LedgerOrder, Loaded, Store, StoreError};
use crate::core::billing::LedgerEntry;
use crate::core::cluster::{Event, PricePoint};
use crate::core::notices::Message;
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use lease::{Candidate, LeaseRow};
use postgres::{Client, NoTls};
use std::sync::Mutex;
use std::time::Duration;

/// How long opening a connection may take before the store answers "unavailable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Session settings of every connection. A leader paused or cut off in the middle of a
/// commit would hold the lease row's lock, and no standby could take over: the server ends
/// a transaction left idle this long. Our transactions never wait on anything but the
/// database, so this never cuts a healthy one. Waits for a lock are bounded likewise.
const SESSION: &str = "-c idle_in_transaction_session_timeout=1000 -c lock_timeout=2000 -c client_min_messages=warning";

/// One connection, opened on first use and again after it broke.
struct Conn {
    config: postgres::Config,
    client: Mutex<Option<Client>>,
}

impl Conn {
    fn new(config: &postgres::Config) -> Self {
        Self { config: config.clone(), client: Mutex::new(None) }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            let client = self.config.connect(NoTls);
            *slot = Some(client.map_err(|e| StoreError::Unavailable(e.to_string()))?);
        }
        let client = slot.as_mut().expect("connected above");
        match f(client) {
            Err(StoreError::Postgres(e)) if client.is_closed() => {
                *slot = None;
                Err(StoreError::Unavailable(e.to_string()))
            }
            result => result,
        }
    }
}

impl Drop for Conn {
    /// A client owns a small runtime, which must not be dropped on an async thread (the
    /// last holder of the store may be one at shutdown): it is dropped on a thread of its own.
    fn drop(&mut self) {
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(client) = client
            && tokio::runtime::Handle::try_current().is_ok()
        {
            std::thread::spawn(move || drop(client));
        }
    }
}

pub struct PostgresStore {
    writer: Conn,
    reader: Conn,
    lease: Conn,
    /// The epoch this coordinator leads with; every commit checks it. None: no fence (the
    /// `migrate` command, which runs with no coordinator up).
    fence: Mutex<Option<i64>>,
    /// Set when a commit found the lease taken: the coordinator must step down.
    deposed: tokio::sync::watch::Sender<bool>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://USER[:PASS]@HOST:PORT/DB`) and migrates the schema.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut config: postgres::Config =
            url.parse().map_err(|e: postgres::Error| StoreError::Url(e.to_string()))?;
        config.connect_timeout(CONNECT_TIMEOUT).application_name("gpuspot-coordinator");
        config.keepalives(true).keepalives_idle(Duration::from_secs(10)).options(SESSION);
        let store = Self {
            writer: Conn::new(&config),
            reader: Conn::new(&config),
            lease: Conn::new(&config),
            fence: Mutex::new(None),
            deposed: tokio::sync::watch::channel(false).0,
        };
        store.writer.with(schema::migrate)?;
        Ok(store)
    }

    /// Takes the lease if it has expired, and fences every later commit with its epoch.
    pub fn try_lead(&self, me: &Candidate, lease: Duration) -> Result<Option<i64>, StoreError> {
        let epoch = self.lease.with(|c| lease::try_take(c, me, lease))?;
        if let Some(epoch) = epoch {
            *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = Some(epoch);
        }
        Ok(epoch)
    }

    /// Renews the lease of `epoch`; false when it was taken by another coordinator.
    pub fn renew(&self, epoch: i64, lease: Duration) -> Result<bool, StoreError> {
        let kept = self.lease.with(|c| lease::renew(c, epoch, lease))?;
        if !kept {
            self.deposed.send_replace(true);
        }
        Ok(kept)
    }

    pub fn release(&self, epoch: i64) -> Result<(), StoreError> {
        self.lease.with(|c| lease::release(c, epoch))
    }

    pub fn lease_row(&self) -> Result<LeaseRow, StoreError> {
        self.lease.with(lease::read)
    }

    /// Becomes true once this coordinator learns that it lost the lease.
    pub fn deposed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.deposed.subscribe()
    }

    /// Offers this coordinator's CA; answers the one every coordinator of the database
    /// uses (the first offered), so that agents trust whichever leads.
    pub fn share_ca(&self, cert_pem: &str, key_pem: &str) -> Result<(String, String), StoreError> {
        self.writer.with(|c| {
            c.execute(
                "INSERT INTO certificate_authority (id, cert_pem, key_pem) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO NOTHING",
                &[&cert_pem, &key_pem],
            )?;
            let row = c.query_one("SELECT cert_pem, key_pem FROM certificate_authority", &[])?;
            Ok((row.get(0), row.get(1)))
        })
    }

    /// Runs `f` in one transaction on the writer's connection, unfenced (for `migrate`).
    pub fn with_transaction(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.writer.with(|c| {
            let mut tx = c.transaction()?;
            f(&mut tx)?;
            Ok(tx.commit()?)
        })
    }

    fn fence(&self) -> Option<i64> {
        *self.fence.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for PostgresStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        self.reader.with(read::load)
    }

    fn commit(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let fence = self.fence();
        let result = self.writer.with(|c| {
            let mut tx = c.transaction()?;
            if let Some(epoch) = fence {
                write::check_fence(&mut tx, epoch)?;
            }
            for batch in batches {
                write::write_batch(&mut tx, batch)?;
            }
            tx.commit()?;
            Ok(())
        });
        if let Err(StoreError::Fenced { epoch }) = &result {
            tracing::error!(
                epoch,
                "another coordinator holds the lease: nothing more is committed"
            );
            self.deposed.send_replace(true);
        }
        result
    }

    fn messages(
        &self,
        account: &AccountId,
        unread_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        self.reader.with(|c| read::messages(c, account, unread_only, after, limit))
    }

    fn mark_message_read(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<Message>, StoreError> {
        self.reader.with(|c| read::mark_message_read(c, account, id))
    }

    fn mail_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<PendingMail>, StoreError> {
        self.reader.with(|c| read::mail_due(c, now, limit))
    }

    fn next_mail_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.reader.with(read::next_mail_due)
    }

    fn record_mail(&self, id: &str, outcome: &MailOutcome) -> Result<(), StoreError> {
        self.reader.with(|c| read::record_mail(c, id, outcome))
    }

    fn add_join_token(&self, token: &NewJoinToken) -> Result<JoinTokenRecord, StoreError> {
        self.reader.with(|c| tokens::add(c, token))
    }

    fn join_tokens(&self) -> Result<Vec<JoinTokenRecord>, StoreError> {
        self.reader.with(tokens::list)
    }

    fn revoke_join_token(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<JoinTokenRecord>, StoreError> {
        self.reader.with(|c| tokens::revoke(c, id, now))
    }

    fn redeem_join_token(
        &self,
        secret_hash: &str,
        certificate: &NewCertificate,
    ) -> Result<Result<JoinTokenRecord, JoinRefusal>, StoreError> {
        self.reader.with(|c| tokens::redeem(c, secret_hash, certificate))
    }

    fn replay_start(
        &self,
        after_id: u64,
        account: Option<&AccountId>,
        max: usize,
    ) -> Result<u64, StoreError> {
        self.reader.with(|c| read::replay_start(c, after_id, account, max))
    }

    fn events_visible_after(
        &self,
        after_id: u64,
        account: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.reader.with(|c| read::events_visible_after(c, after_id, account, limit))
    }

    fn host_certificate(&self, fingerprint: &str) -> Result<Option<CertificateRecord>, StoreError> {
        self.reader.with(|c| tokens::certificate(c, fingerprint))
    }

    fn events_after(&self, after_id: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.reader.with(|c| read::events_after(c, after_id, limit))
    }

    fn ledger(
        &self,
        account: &AccountId,
        order: LedgerOrder,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.reader.with(|c| read::ledger(c, account, order, after, limit))
    }

    fn price_history(
        &self,
        model: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<PricePoint>, StoreError> {
        self.reader.with(|c| read::price_history(c, model, since))
    }
}
