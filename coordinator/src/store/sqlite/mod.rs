//! SQLite backend: rusqlite (bundled), WAL, `synchronous=FULL` so that a committed change
//! survives a crash. Rows keep their indexable columns plus a JSON body, which lets the
//! shapes grow without migrations for every new field.

use super::credentials::{
    self, CertificateRecord, JoinRefusal, JoinTokenRecord, NewCertificate, NewJoinToken,
};
use super::files::{private_dir, private_file, restrict};
use super::messages::{self, MailOutcome, PendingMail};
use super::{Batch, LedgerOrder, Loaded, Store, StoreError};
use crate::core::billing::{Account, LedgerEntry};
use crate::core::cluster::{Event, PricePoint};
use crate::core::deployment::Deployment;
use crate::core::notices::Message;
use crate::core::placement::models::normalise_loaded;
use crate::core::snapshots::SnapshotRecord;
use crate::core::{Host, Instance};
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use rusqlite::{Connection, OptionalExtension, params};
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

/// Events an account (`?2`, NULL for the admin) may see; price moves are public, as in
/// `api::events::visible`.
const VISIBLE_TO: &str = "(?2 IS NULL OR account_id = ?2 OR kind = 'price_changed')";

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

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("core types always serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(what.to_owned(), e.to_string()))
}

/// Every row of a `(id, body)` table, decoded; `table` may carry an ORDER BY.
fn load_all<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    table: &str,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT id, body FROM {table}"))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.map(|row| {
        let (id, body) = row?;
        from_json(&format!("{table} row {id}"), &body)
    })
    .collect()
}

/// Rows written before requests were bounded (docs/contracts.md#limits) may list one GPU model
/// thousands of times, which would cost every scheduling pass; they are brought to the
/// bounds here (see [`normalise_loaded`]) and said so once each. The row is rewritten the
/// next time the instance or deployment changes.
pub(super) fn bound_old_requests(instances: &mut [Instance], deployments: &mut [Deployment]) {
    for instance in instances {
        if normalise_loaded(&mut instance.request.gpu) {
            tracing::warn!(instance = %instance.id, "stored request's GPU models cut to the bounds");
        }
    }
    for deployment in deployments {
        for spec in &mut deployment.specs {
            if normalise_loaded(&mut spec.gpu) {
                tracing::warn!(deployment = %deployment.id, "stored spec's GPU models cut to the bounds");
            }
        }
    }
}

fn write_batch(tx: &rusqlite::Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    let mut host_stmt =
        tx.prepare_cached("INSERT OR REPLACE INTO hosts (id, body) VALUES (?1, ?2)")?;
    for host in &batch.hosts {
        host_stmt.execute(params![host.id.as_str(), to_json(host)])?;
    }
    let mut inst_stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO instances (id, seq, state, account_id, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for i in &batch.instances {
        inst_stmt.execute(params![
            i.id.as_str(),
            i.seq as i64,
            i.state().as_str(),
            i.account_id.as_str(),
            to_json(i)
        ])?;
    }
    let mut event_stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (id, at, kind, account_id, instance_id, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in &batch.events {
        event_stmt.execute(params![
            e.id as i64,
            e.at.to_rfc3339(),
            e.kind.as_str(),
            e.account_id.as_ref().map(|a| a.as_str()),
            e.instance_id.as_ref().map(|i| i.as_str()),
            to_json(e)
        ])?;
    }
    let mut snapshot_stmt =
        tx.prepare_cached("INSERT OR REPLACE INTO snapshots (id, body) VALUES (?1, ?2)")?;
    for r in &batch.snapshots {
        snapshot_stmt.execute(params![r.snapshot.id, to_json(r)])?;
    }
    let mut deployment_stmt =
        tx.prepare_cached("INSERT OR REPLACE INTO deployments (id, body) VALUES (?1, ?2)")?;
    for d in &batch.deployments {
        deployment_stmt.execute(params![d.id.as_str(), to_json(d)])?;
    }
    let mut account_stmt =
        tx.prepare_cached("INSERT OR REPLACE INTO accounts (id, body) VALUES (?1, ?2)")?;
    for a in &batch.accounts {
        account_stmt.execute(params![a.id.as_str(), to_json(a)])?;
    }
    // A ledger entry has a fixed id: written twice, it is still one entry.
    let mut ledger_stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO ledger (id, account_id, instance_id, body) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in &batch.ledger {
        let instance = e.instance_id.as_ref().map(|i| i.as_str());
        ledger_stmt.execute(params![e.id as i64, e.account_id.as_str(), instance, to_json(e)])?;
    }
    let mut price_stmt =
        tx.prepare_cached("INSERT INTO price_history (model, at, price) VALUES (?1, ?2, ?3)")?;
    for p in &batch.price_points {
        price_stmt.execute(params![p.model, p.at.timestamp_millis(), p.price.micros()])?;
    }
    if let Some(before) = batch.prune_prices_before {
        tx.prepare_cached("DELETE FROM price_history WHERE at < ?1")?
            .execute([before.timestamp_millis()])?;
    }
    for removed in &batch.removed_hosts {
        credentials::forget_host(tx, &removed.id, removed.at)?;
    }
    messages::insert(tx, &batch.messages)?;
    super::retention::apply(tx, batch)
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Loaded, StoreError> {
        let conn = self.conn();
        let hosts: Vec<Host> = load_all(&conn, "hosts")?;
        let mut instances: Vec<Instance> = load_all(&conn, "instances ORDER BY seq")?;
        let last_event_id: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
        let mut prices = std::collections::BTreeMap::new();
        let mut stmt = conn.prepare(
            "SELECT model, price FROM price_history p \
             WHERE at = (SELECT MAX(at) FROM price_history WHERE model = p.model)",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (model, price) = row?;
            prices.insert(model, gpuspot_common::Money(price));
        }
        let accounts: Vec<Account> = load_all(&conn, "accounts")?;
        let mut deployments: Vec<Deployment> = load_all(&conn, "deployments")?;
        bound_old_requests(&mut instances, &mut deployments);
        let snapshots: Vec<SnapshotRecord> = load_all(&conn, "snapshots")?;
        let last_ledger_id: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM ledger", [], |r| r.get(0))?;
        Ok(Loaded {
            hosts,
            instances,
            last_event_id: last_event_id as u64,
            prices,
            accounts,
            last_ledger_id: last_ledger_id as u64,
            deployments,
            snapshots,
        })
    }

    fn commit(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for batch in batches {
            write_batch(&tx, batch)?;
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
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id FROM events WHERE id > ?1 AND {VISIBLE_TO} ORDER BY id DESC LIMIT 1 OFFSET ?3"
        ))?;
        let offset = max.saturating_sub(1) as i64;
        let account = account.map(|a| a.as_str());
        let oldest: Option<i64> =
            stmt.query_row(params![after_id as i64, account, offset], |r| r.get(0)).optional()?;
        Ok(oldest.map_or(after_id, |id| (id as u64).saturating_sub(1)))
    }

    fn events_visible_after(
        &self,
        after_id: u64,
        account: Option<&AccountId>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT body FROM events WHERE id > ?1 AND {VISIBLE_TO} ORDER BY id LIMIT ?3"
        ))?;
        let account = account.map(|a| a.as_str());
        let rows = stmt.query_map(params![after_id as i64, account, limit as i64], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|body| from_json("event", &body?)).collect()
    }

    fn events_after(&self, after_id: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows =
            stmt.query_map(params![after_id as i64, limit as i64], |r| r.get::<_, String>(0))?;
        rows.map(|body| from_json("event", &body?)).collect()
    }

    fn price_history(
        &self,
        model: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<PricePoint>, StoreError> {
        self.read_price_history(model, since)
    }

    fn ledger(
        &self,
        account: &AccountId,
        order: LedgerOrder,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let conn = self.conn();
        // Entry ids start at 1; beyond i64 there are none.
        let after = after.map(|a| i64::try_from(a).unwrap_or(i64::MAX));
        let (sql, after) = match order {
            LedgerOrder::Oldest => (
                "SELECT body FROM ledger WHERE account_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                after.unwrap_or(0),
            ),
            LedgerOrder::Newest => (
                "SELECT body FROM ledger WHERE account_id = ?1 AND id < ?2 ORDER BY id DESC \
                 LIMIT ?3",
                after.unwrap_or(i64::MAX),
            ),
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(params![account.as_str(), after, limit as i64], |r| r.get::<_, String>(0))?;
        rows.map(|body| from_json("ledger entry", &body?)).collect()
    }
}

impl SqliteStore {
    fn read_price_history(
        &self,
        model: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<PricePoint>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT at, price FROM price_history WHERE model = ?1 AND at >= ?2 ORDER BY at",
        )?;
        let rows = stmt.query_map(params![model, since.timestamp_millis()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?;
        rows.map(|row| {
            let (at, price) = row?;
            let at = DateTime::from_timestamp_millis(at)
                .ok_or_else(|| StoreError::Corrupt("price_history".into(), format!("time {at}")))?;
            Ok(PricePoint { model: model.to_owned(), at, price: gpuspot_common::Money(price) })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Timers;
    use crate::core::Cluster;
    use crate::core::model::{Billing, GpuRequest, InstanceRequest, Range, SnapshotOptions};
    use gpuspot_common::{AccountId, Money};

    fn request() -> InstanceRequest {
        InstanceRequest {
            name: "n".into(),
            gpu: GpuRequest { models: vec!["H100".into()], count: 1 },
            cpu_cores: Range::default(),
            memory_gib: Range::default(),
            billing: Billing::Regular,
            command: vec!["true".into()],
            env: Default::default(),
            snapshot: SnapshotOptions::default(),
            image: None,
            data_disk_gib: 50,
            on_unavailable: Default::default(),
            ports: Vec::new(),
            readiness: None,
        }
    }

    #[test]
    fn committed_rows_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let mut cluster = Cluster::new(vec![], Timers::default());
        let id = cluster.create_instance(AccountId::from("a-operator"), request(), now).unwrap();
        let changes = cluster.take_changes();
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            let points = vec![
                PricePoint {
                    model: "H100".into(),
                    at: now - chrono::Duration::hours(50),
                    price: Money(1),
                },
                PricePoint { model: "H100".into(), at: now, price: Money(7) },
            ];
            let batch = Batch {
                price_points: points,
                prune_prices_before: Some(now - chrono::Duration::hours(48)),
                sends: Vec::new(),
                ..changes
            };
            store.commit(&[batch.clone(), batch]).unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.instances.len(), 1);
        assert_eq!(loaded.instances[0].id, id);
        assert!(loaded.last_event_id >= 1);
        assert_eq!(store.events_after(0, 10).unwrap().len() as u64, loaded.last_event_id);
        let history = store.price_history("H100", now - chrono::Duration::hours(100)).unwrap();
        assert_eq!(history.len(), 2, "the recent point of both commits; the old ones pruned");
        assert_eq!(loaded.prices.get("H100"), Some(&Money(7)));
    }
}
