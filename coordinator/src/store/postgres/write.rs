//! One group commit into PostgreSQL: the fencing check, then every batch's upserts and
//! deletions, all in one transaction (docs/architecture.md, PostgreSQL store). The rules
//! are SQLite's ([`crate::store::sqlite`], [`crate::store::retention`],
//! [`crate::store::messages`]): fixed ids make a row written twice one row, the newest event
//! always stays, pending mail is never pruned.

use super::super::messages::KEPT_PER_ACCOUNT;
use super::super::{Batch, StoreError};
use crate::core::notices::MailState;
use postgres::Transaction;

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("core types always serialize")
}

/// Fails with [`StoreError::Fenced`] unless `epoch` still holds the lease. The row is
/// share-locked until the commit ends, so a takeover (which updates it) waits for this
/// commit and the new leader, loading after its takeover, sees it.
pub fn check_fence(tx: &mut Transaction<'_>, epoch: i64) -> Result<(), StoreError> {
    let held = tx
        .query_opt("SELECT 1 FROM leader_lease WHERE id = 1 AND epoch = $1 FOR SHARE", &[&epoch])?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::Fenced { epoch }),
    }
}

pub fn write_batch(tx: &mut Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    upsert_bodies(tx, batch)?;
    let inst = tx.prepare(
        "INSERT INTO instances (id, seq, state, account_id, body) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET seq = $2, state = $3, account_id = $4, body = $5",
    )?;
    for i in &batch.instances {
        let seq = i.seq as i64;
        tx.execute(
            &inst,
            &[&i.id.as_str(), &seq, &i.state().as_str(), &i.account_id.as_str(), &to_json(i)],
        )?;
    }
    let event = tx.prepare(
        "INSERT INTO events (id, at, kind, account_id, instance_id, body) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )?;
    for e in &batch.events {
        let account = e.account_id.as_ref().map(|a| a.as_str());
        let instance = e.instance_id.as_ref().map(|i| i.as_str());
        let row: [&(dyn postgres::types::ToSql + Sync); 6] = [
            &(e.id as i64),
            &e.at.to_rfc3339(),
            &e.kind.as_str(),
            &account,
            &instance,
            &to_json(e),
        ];
        tx.execute(&event, &row)?;
    }
    let ledger = tx.prepare(
        "INSERT INTO ledger (id, account_id, instance_id, body) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )?;
    for e in &batch.ledger {
        let instance = e.instance_id.as_ref().map(|i| i.as_str());
        tx.execute(&ledger, &[&(e.id as i64), &e.account_id.as_str(), &instance, &to_json(e)])?;
    }
    write_prices(tx, batch)?;
    for removed in &batch.removed_hosts {
        tx.execute("DELETE FROM hosts WHERE id = $1", &[&removed.id.as_str()])?;
        tx.execute(
            "UPDATE host_certificates SET revoked_at = $2 WHERE host_id = $1 AND revoked_at IS NULL",
            &[&removed.id.as_str(), &removed.at.to_rfc3339()],
        )?;
    }
    insert_messages(tx, batch)?;
    apply_retention(tx, batch)
}

/// The `(id, body)` tables.
fn upsert_bodies(tx: &mut Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    let rows: [(&str, Vec<(String, String)>); 4] = [
        ("hosts", batch.hosts.iter().map(|h| (h.id.to_string(), to_json(h))).collect()),
        (
            "snapshots",
            batch.snapshots.iter().map(|r| (r.snapshot.id.clone(), to_json(r))).collect(),
        ),
        ("deployments", batch.deployments.iter().map(|d| (d.id.to_string(), to_json(d))).collect()),
        ("accounts", batch.accounts.iter().map(|a| (a.id.to_string(), to_json(a))).collect()),
    ];
    for (table, rows) in rows {
        if rows.is_empty() {
            continue;
        }
        let stmt = tx.prepare(&format!(
            "INSERT INTO {table} (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = $2"
        ))?;
        for (id, body) in &rows {
            tx.execute(&stmt, &[id, body])?;
        }
    }
    Ok(())
}

fn write_prices(tx: &mut Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    let stmt = tx.prepare("INSERT INTO price_history (model, at, price) VALUES ($1, $2, $3)")?;
    for p in &batch.price_points {
        tx.execute(&stmt, &[&p.model, &p.at.timestamp_millis(), &p.price.micros()])?;
    }
    if let Some(before) = batch.prune_prices_before {
        tx.execute("DELETE FROM price_history WHERE at < $1", &[&before.timestamp_millis()])?;
    }
    Ok(())
}

fn insert_messages(tx: &mut Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    if batch.messages.is_empty() {
        return Ok(());
    }
    let stmt = tx.prepare(
        "INSERT INTO messages (id, account_id, event_id, mail_state, body) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )?;
    for m in &batch.messages {
        let state = if m.mail_to.is_some() { MailState::Pending } else { MailState::None };
        let event = m.event_id as i64;
        tx.execute(&stmt, &[&m.id, &m.account_id.as_str(), &event, &state.as_str(), &to_json(m)])?;
    }
    let accounts: std::collections::BTreeSet<&str> =
        batch.messages.iter().map(|m| m.account_id.as_str()).collect();
    let prune = tx.prepare(
        "DELETE FROM messages WHERE account_id = $1 AND mail_state != 'pending' AND event_id < \
         (SELECT event_id FROM messages WHERE account_id = $1 ORDER BY event_id DESC \
          LIMIT 1 OFFSET $2)",
    )?;
    for account in accounts {
        tx.execute(&prune, &[&account, &((KEPT_PER_ACCOUNT - 1) as i64)])?;
    }
    Ok(())
}

/// As [`crate::store::retention::apply`], after the upserts.
fn apply_retention(tx: &mut Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    for id in &batch.forgotten_instances {
        tx.execute("DELETE FROM instances WHERE id = $1", &[&id.as_str()])?;
    }
    for id in &batch.forgotten_deployments {
        tx.execute("DELETE FROM deployments WHERE id = $1", &[&id.as_str()])?;
    }
    if let Some(before) = batch.prune_events_before {
        let first_kept: Option<i64> = tx
            .query_one(
                "SELECT COALESCE((SELECT id FROM events WHERE at >= $1 ORDER BY id LIMIT 1), \
                 (SELECT MAX(id) FROM events))",
                &[&before.to_rfc3339()],
            )?
            .get(0);
        if let Some(first_kept) = first_kept {
            tx.execute("DELETE FROM events WHERE id < $1", &[&first_kept])?;
            tx.execute(
                "DELETE FROM messages WHERE event_id < $1 AND mail_state != 'pending'",
                &[&first_kept],
            )?;
        }
    }
    for (account, keep) in &batch.trim_events {
        let offset = i64::try_from(*keep).unwrap_or(i64::MAX) - 1;
        tx.execute(
            "DELETE FROM events WHERE account_id = $1 AND id < \
             (SELECT id FROM events WHERE account_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
            &[&account.as_str(), &offset],
        )?;
    }
    Ok(())
}
