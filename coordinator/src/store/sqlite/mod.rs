//! SQLite backend: rusqlite (bundled), WAL, `synchronous=FULL` so that a committed change
//! survives a crash. Rows keep their indexable columns plus a JSON body, which lets the
//! shapes grow without migrations for every new field.
//!
//! `read` holds the queries, `write` turns a batch into rows; this module opens the file
//! and implements [`Store`] on them.

mod read;
#[cfg(test)]
mod tests;
mod write;

pub(super) use read::bound_old_requests;

use super::credentials::{
    self, CertificateRecord, JoinRefusal, JoinTokenRecord, NewCertificate, NewJoinToken,
};
use super::files::{private_dir, private_file, restrict};
use super::messages::{self, MailOutcome, PendingMail};
use super::{Batch, LedgerOrder, Loaded, Store, StoreError};
use crate::core::billing::LedgerEntry;
use crate::core::cluster::{Event, PricePoint};
use crate::core::notices::Message;
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hosts (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL,
    account_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL,
    account_id TEXT, instance_id TEXT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_account ON events (account_id, id);
CREATE TABLE IF NOT EXISTS price_history (model TEXT NOT NULL, at INTEGER NOT NULL, price INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS price_history_by_model ON price_history (model, at);
CREATE TABLE IF NOT EXISTS snapshots (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, instance_id TEXT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_by_account ON ledger (account_id, id);
CREATE TABLE IF NOT EXISTS join_tokens (hash TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS host_certificates (
    fingerprint TEXT PRIMARY KEY, host_id TEXT NOT NULL, created_at TEXT NOT NULL);
";

pub struct SqliteStore {
    /// One connection: the writer thread and occasional readers take turns; SQLite
    /// serializes writers anyway and our reads are small.
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) `gpuspot.db` in `data_dir`; the dir is made 0700 and the
    /// database files 0600 (docs/contracts.md#limits), tightening them if an older version left
    /// them open.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir_error = |e| StoreError::DataDir(data_dir.display().to_string(), e);
        private_dir(data_dir).map_err(dir_error)?;
        let path = data_dir.join("gpuspot.db");
        // SQLite gives the -wal and -shm files the mode of the database file, so creating
        // that one 0600 first covers all three.
        private_file(&path).map_err(dir_error)?;
        let conn = Connection::open(&path)?;
        super::retention::prepare(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(messages::SCHEMA)?;
        credentials::migrate(&conn)?;
        for suffix in ["-wal", "-shm"] {
            let side = data_dir.join(format!("gpuspot.db{suffix}"));
            if side.exists() {
                restrict(&side, 0o600).map_err(dir_error)?;
            }
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite itself consistent (transactions
        // roll back), so the poisoned guard is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        read::load(&self.conn())
    }

    fn commit(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for batch in batches {
            write::write_batch(&tx, batch)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn messages(
        &self,
        account: &AccountId,
        unread_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        messages::list(&self.conn(), account, unread_only, after, limit)
    }

    fn mark_message_read(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<Message>, StoreError> {
        messages::mark_read(&self.conn(), account, id)
    }

    fn mail_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<PendingMail>, StoreError> {
        messages::due(&self.conn(), now, limit)
    }

    fn next_mail_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        messages::next_due(&self.conn())
    }

    fn record_mail(&self, id: &str, outcome: &MailOutcome) -> Result<(), StoreError> {
        messages::record(&self.conn(), id, outcome)
    }

    fn add_join_token(&self, token: &NewJoinToken) -> Result<JoinTokenRecord, StoreError> {
        credentials::add_token(&self.conn(), token)
    }

    fn join_tokens(&self) -> Result<Vec<JoinTokenRecord>, StoreError> {
        credentials::list_tokens(&self.conn())
    }

    fn revoke_join_token(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<JoinTokenRecord>, StoreError> {
        credentials::revoke_token(&self.conn(), id, now)
    }

    fn redeem_join_token(
        &self,
        secret_hash: &str,
        certificate: &NewCertificate,
    ) -> Result<Result<JoinTokenRecord, JoinRefusal>, StoreError> {
        credentials::redeem(&mut self.conn(), secret_hash, certificate)
    }

    fn host_certificate(&self, fingerprint: &str) -> Result<Option<CertificateRecord>, StoreError> {
        credentials::certificate(&self.conn(), fingerprint)
    }

    fn replay_start(
        &self,
        after_id: u64,
        account: Option<&AccountId>,
        max: usize,
    ) -> Result<u64, StoreError> {
        read::replay_start(&self.conn(), after_id, account, max)
    }

    fn events_visible_after(
        &self,
        after_id: u64,
        account: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        read::events_visible_after(&self.conn(), after_id, account, limit)
    }

    fn events_after(&self, after_id: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        read::events_after(&self.conn(), after_id, limit)
    }

    fn price_history(
        &self,
        model: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<PricePoint>, StoreError> {
        read::price_history(&self.conn(), model, since)
    }

    fn ledger(
        &self,
        account: &AccountId,
        order: LedgerOrder,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        read::ledger(&self.conn(), account, order, after, limit)
    }
}
