//! SQLite writes: one group commit's batches turned into rows (the indexable columns plus the
//! JSON body), then the messages, credentials and retention that ride along.

use super::super::{Batch, StoreError, credentials, messages};
use rusqlite::params;

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("core types always serialize")
}

pub(super) fn write_batch(tx: &rusqlite::Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
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
    super::super::retention::apply(tx, batch)
}
