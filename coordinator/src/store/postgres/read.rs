//! Reads from PostgreSQL: the state a new leader loads, and the pages the API serves
//! (events, ledger, prices, inbox). Same queries and orders as SQLite's.

use super::super::messages::{MailOutcome, PendingMail};
use super::super::{LedgerOrder, Loaded, StoreError};
use crate::core::billing::LedgerEntry;
use crate::core::cluster::{Event, PricePoint};
use crate::core::notices::{MailState, Message};
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, Money};
use postgres::GenericClient;

fn from_json<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(what.to_owned(), e.to_string()))
}

fn bodies<T: serde::de::DeserializeOwned>(
    client: &mut impl GenericClient,
    what: &str,
    sql: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<T>, StoreError> {
    let rows = client.query(sql, params)?;
    rows.iter().map(|row| from_json(what, row.get::<_, &str>(0))).collect()
}

/// Everything a new leader needs, read in one repeatable-read snapshot.
pub fn load(client: &mut postgres::Client) -> Result<Loaded, StoreError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let t = &mut tx;
    let hosts = bodies(t, "hosts row", "SELECT body FROM hosts", &[])?;
    let mut instances = bodies(t, "instances row", "SELECT body FROM instances ORDER BY seq", &[])?;
    let last_event_id: i64 = t.query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[])?.get(0);
    let last_ledger_id: i64 = t.query_one("SELECT COALESCE(MAX(id), 0) FROM ledger", &[])?.get(0);
    let prices = t
        .query(
            "SELECT DISTINCT ON (model) model, price FROM price_history ORDER BY model, at DESC",
            &[],
        )?
        .iter()
        .map(|r| (r.get::<_, String>(0), Money(r.get(1))))
        .collect();
    let accounts = bodies(t, "accounts row", "SELECT body FROM accounts", &[])?;
    let mut deployments = bodies(t, "deployments row", "SELECT body FROM deployments", &[])?;
    super::super::sqlite::bound_old_requests(&mut instances, &mut deployments);
    let snapshots = bodies(t, "snapshots row", "SELECT body FROM snapshots", &[])?;
    tx.commit()?;
    Ok(Loaded {
        hosts,
        instances,
        last_event_id: last_event_id as u64,
        accounts,
        last_ledger_id: last_ledger_id as u64,
        deployments,
        snapshots,
        prices,
    })
}

/// Events an account (`$2`, NULL for the admin) may see; price moves are public.
const VISIBLE_TO: &str = "($2::TEXT IS NULL OR account_id = $2 OR kind = 'price_changed')";

pub fn replay_start(
    client: &mut impl GenericClient,
    after_id: u64,
    account: Option<&AccountId>,
    max: usize,
) -> Result<u64, StoreError> {
    let sql = format!(
        "SELECT id FROM events WHERE id > $1 AND {VISIBLE_TO} ORDER BY id DESC LIMIT 1 OFFSET $3"
    );
    let offset = max.saturating_sub(1) as i64;
    let account = account.map(|a| a.as_str());
    let oldest = client.query_opt(&sql, &[&(after_id as i64), &account, &offset])?;
    Ok(oldest.map_or(after_id, |row| (row.get::<_, i64>(0) as u64).saturating_sub(1)))
}

pub fn events_visible_after(
    client: &mut impl GenericClient,
    after_id: u64,
    account: Option<&AccountId>,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let sql =
        format!("SELECT body FROM events WHERE id > $1 AND {VISIBLE_TO} ORDER BY id LIMIT $3");
    let account = account.map(|a| a.as_str());
    bodies(client, "event", &sql, &[&(after_id as i64), &account, &(limit as i64)])
}

pub fn events_after(
    client: &mut impl GenericClient,
    after_id: u64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    let sql = "SELECT body FROM events WHERE id > $1 ORDER BY id LIMIT $2";
    bodies(client, "event", sql, &[&(after_id as i64), &(limit as i64)])
}

pub fn ledger(
    client: &mut impl GenericClient,
    account: &AccountId,
    order: LedgerOrder,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let sql = match order {
        LedgerOrder::Oldest => {
            "SELECT body FROM ledger WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        }
        LedgerOrder::Newest => {
            "SELECT body FROM ledger WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        }
    };
    let after = order.bound(after);
    bodies(client, "ledger entry", sql, &[&account.as_str(), &after, &(limit as i64)])
}

pub fn price_history(
    client: &mut impl GenericClient,
    model: &str,
    since: DateTime<Utc>,
) -> Result<Vec<PricePoint>, StoreError> {
    let rows = client.query(
        "SELECT at, price FROM price_history WHERE model = $1 AND at >= $2 ORDER BY at",
        &[&model, &since.timestamp_millis()],
    )?;
    rows.iter()
        .map(|row| {
            let at: i64 = row.get(0);
            let at = DateTime::from_timestamp_millis(at)
                .ok_or_else(|| StoreError::Corrupt("price_history".into(), format!("time {at}")))?;
            Ok(PricePoint { model: model.to_owned(), at, price: Money(row.get(1)) })
        })
        .collect()
}

fn decode(body: &str, read: bool, mail: &str) -> Result<Message, StoreError> {
    let mut message: Message = from_json("messages row", body)?;
    message.read = read;
    message.mail = MailState::parse(mail);
    Ok(message)
}

pub fn messages(
    client: &mut impl GenericClient,
    account: &AccountId,
    unread_only: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<Option<Vec<Message>>, StoreError> {
    let before = match after {
        None => i64::MAX,
        Some(id) => match client.query_opt(
            "SELECT event_id FROM messages WHERE id = $1 AND account_id = $2",
            &[&id, &account.as_str()],
        )? {
            Some(row) => row.get(0),
            None => return Ok(None),
        },
    };
    let rows = client.query(
        "SELECT body, is_read, mail_state FROM messages WHERE account_id = $1 \
         AND (NOT $2 OR NOT is_read) AND event_id < $3 ORDER BY event_id DESC LIMIT $4",
        &[&account.as_str(), &unread_only, &before, &(limit as i64)],
    )?;
    rows.iter().map(|r| decode(r.get(0), r.get(1), r.get(2))).collect::<Result<_, _>>().map(Some)
}

pub fn mark_message_read(
    client: &mut impl GenericClient,
    account: &AccountId,
    id: &str,
) -> Result<Option<Message>, StoreError> {
    let row = client.query_opt(
        "UPDATE messages SET is_read = true WHERE id = $1 AND account_id = $2 \
         RETURNING body, mail_state",
        &[&id, &account.as_str()],
    )?;
    row.map(|r| decode(r.get(0), true, r.get(1))).transpose()
}

pub fn mail_due(
    client: &mut impl GenericClient,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<PendingMail>, StoreError> {
    let rows = client.query(
        "SELECT body, is_read, attempts FROM messages WHERE mail_state = 'pending' \
         AND next_attempt_ms <= $1 ORDER BY event_id LIMIT $2",
        &[&now.timestamp_millis(), &(limit as i64)],
    )?;
    let mut due = Vec::new();
    for row in rows {
        let message = decode(row.get(0), row.get(1), "pending")?;
        let attempts = row.get::<_, i64>(2).clamp(0, u32::MAX.into()) as u32;
        if let Some(to) = message.mail_to.clone() {
            due.push(PendingMail { message, to, attempts });
        }
    }
    Ok(due)
}

pub fn next_mail_due(client: &mut impl GenericClient) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = client
        .query_one("SELECT MIN(next_attempt_ms) FROM messages WHERE mail_state = 'pending'", &[])?
        .get(0);
    Ok(at.and_then(DateTime::from_timestamp_millis))
}

pub fn record_mail(
    client: &mut impl GenericClient,
    id: &str,
    outcome: &MailOutcome,
) -> Result<(), StoreError> {
    match outcome {
        MailOutcome::Sent { at } => client.execute(
            "UPDATE messages SET mail_state = 'sent', attempts = attempts + 1, mailed_at = $2, \
             mail_error = NULL WHERE id = $1",
            &[&id, &at.to_rfc3339()],
        )?,
        MailOutcome::Retry { next, error } => client.execute(
            "UPDATE messages SET attempts = attempts + 1, next_attempt_ms = $2, mail_error = $3 \
             WHERE id = $1",
            &[&id, &next.timestamp_millis(), error],
        )?,
        MailOutcome::Failed { error } => client.execute(
            "UPDATE messages SET mail_state = 'failed', attempts = attempts + 1, \
             mail_error = $2 WHERE id = $1",
            &[&id, error],
        )?,
    };
    Ok(())
}
