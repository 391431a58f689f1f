//! SQLite reads: the state a starting coordinator loads (old oversized requests cut to the
//! bounds), and the pages the API serves: events, the ledger and price history.

use super::super::{LedgerOrder, Loaded, StoreError};
use crate::core::billing::{Account, LedgerEntry};
use crate::core::cluster::{Event, PricePoint};
use crate::core::deployment::Deployment;
use crate::core::placement::models::normalise_loaded;
use crate::core::snapshots::SnapshotRecord;
use crate::core::{Host, Instance};
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use rusqlite::{Connection, OptionalExtension, params};

/// Events an account (`?2`, NULL for the admin) may see; price moves are public, as in
/// `api::events::visible`.
const VISIBLE_TO: &str = "(?2 IS NULL OR account_id = ?2 OR kind = 'price_changed')";

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
pub(in crate::store) fn bound_old_requests(
    instances: &mut [Instance],
    deployments: &mut [Deployment],
) {
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

/// Everything a starting coordinator needs.
pub(super) fn load(conn: &Connection) -> Result<Loaded, StoreError> {
    let hosts: Vec<Host> = load_all(conn, "hosts")?;
    let mut instances: Vec<Instance> = load_all(conn, "instances ORDER BY seq")?;
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
    let accounts: Vec<Account> = load_all(conn, "accounts")?;
    let mut deployments: Vec<Deployment> = load_all(conn, "deployments")?;
    bound_old_requests(&mut instances, &mut deployments);
    let snapshots: Vec<SnapshotRecord> = load_all(conn, "snapshots")?;
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

pub(super) fn replay_start(
    conn: &Connection,
    after_id: u64,
    account: Option<&AccountId>,
    max: usize,
) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id FROM events WHERE id > ?1 AND {VISIBLE_TO} ORDER BY id DESC LIMIT 1 OFFSET ?3"
    ))?;
    let offset = max.saturating_sub(1) as i64;
    let account = account.map(|a| a.as_str());
    let oldest: Option<i64> =
        stmt.query_row(params![after_id as i64, account, offset], |r| r.get(0)).optional()?;
    Ok(oldest.map_or(after_id, |id| (id as u64).saturating_sub(1)))
}

pub(super) fn events_visible_after(
    conn: &Connection,
    after_id: u64,
    account: Option<&AccountId>,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT body FROM events WHERE id > ?1 AND {VISIBLE_TO} ORDER BY id LIMIT ?3"
    ))?;
    let account = account.map(|a| a.as_str());
    let rows =
        stmt.query_map(params![after_id as i64, account, limit as i64], |r| r.get::<_, String>(0))?;
    rows.map(|body| from_json("event", &body?)).collect()
}

pub(super) fn events_after(
    conn: &Connection,
    after_id: u64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let rows = stmt.query_map(params![after_id as i64, limit as i64], |r| r.get::<_, String>(0))?;
    rows.map(|body| from_json("event", &body?)).collect()
}

pub(super) fn ledger(
    conn: &Connection,
    account: &AccountId,
    order: LedgerOrder,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let sql = match order {
        LedgerOrder::Oldest => {
            "SELECT body FROM ledger WHERE account_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
        }
        LedgerOrder::Newest => {
            "SELECT body FROM ledger WHERE account_id = ?1 AND id < ?2 ORDER BY id DESC \
             LIMIT ?3"
        }
    };
    let after = order.bound(after);
    let mut stmt = conn.prepare_cached(sql)?;
    let rows =
        stmt.query_map(params![account.as_str(), after, limit as i64], |r| r.get::<_, String>(0))?;
    rows.map(|body| from_json("ledger entry", &body?)).collect()
}

pub(super) fn price_history(
    conn: &Connection,
    model: &str,
    since: DateTime<Utc>,
) -> Result<Vec<PricePoint>, StoreError> {
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
