//! The inbox and the mail outbox in SQLite (docs/contracts.md#messages): each message is one row,
//! written in the same transaction as the event that made it; its mail state (`pending`, `sent`,
//! `failed`, `none`), attempts and next attempt time live beside it, so mail still due survives a
//! restart and is sent once it is accepted.

use super::StoreError;
use crate::core::notices::{MailState, Message};
use chrono::{DateTime, Utc};
use gpuspot_common::AccountId;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL, event_id INTEGER NOT NULL,
    is_read INTEGER NOT NULL DEFAULT 0, mail_state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    mail_error TEXT, mailed_at TEXT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_account ON messages (account_id, event_id);
CREATE INDEX IF NOT EXISTS messages_by_event ON messages (event_id);
CREATE INDEX IF NOT EXISTS messages_to_mail ON messages (mail_state, next_attempt_ms);
";

/// Each account keeps its newest messages; older ones go (mail still due stays), so that
/// no tenant's inbox can fill the disk.
pub const KEPT_PER_ACCOUNT: usize = 1000;

/// A message whose mail is due.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingMail {
    pub message: Message,
    pub to: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What became of one attempt to mail a message.
#[derive(Clone, Debug, PartialEq)]
pub enum MailOutcome {
    /// The server accepted it: it is never sent again.
    Sent { at: DateTime<Utc> },
    /// A failure worth retrying, at `next`.
    Retry { next: DateTime<Utc>, error: String },
    /// The server refused it for good (e.g. an unknown recipient).
    Failed { error: String },
}

pub fn insert(tx: &Transaction<'_>, messages: &[Message]) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO messages (id, account_id, event_id, mail_state, body) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for m in messages {
        let state = if m.mail_to.is_some() { MailState::Pending } else { MailState::None };
        let body = serde_json::to_string(m).expect("messages always serialize");
        let account = m.account_id.as_str();
        stmt.execute(params![m.id, account, m.event_id as i64, state.as_str(), body])?;
    }
    let accounts: std::collections::BTreeSet<&str> =
        messages.iter().map(|m| m.account_id.as_str()).collect();
    let mut prune = tx.prepare_cached(
        "DELETE FROM messages WHERE account_id = ?1 AND mail_state != 'pending' AND event_id < \
         (SELECT event_id FROM messages WHERE account_id = ?1 ORDER BY event_id DESC \
          LIMIT 1 OFFSET ?2)",
    )?;
    for account in accounts {
        prune.execute(params![account, (KEPT_PER_ACCOUNT - 1) as i64])?;
    }
    Ok(())
}

fn decode(body: &str, read: bool, mail: &str) -> Result<Message, StoreError> {
    let mut message: Message = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt("messages row".into(), e.to_string()))?;
    message.read = read;
    message.mail = MailState::parse(mail);
    Ok(message)
}

/// The account's messages, newest first.
/// Newest first, older than message `after` when given; `None` when `after` is not one
/// of the account's messages.
pub fn list(
    conn: &Connection,
    account: &AccountId,
    unread_only: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<Option<Vec<Message>>, StoreError> {
    let before = match after {
        None => i64::MAX,
        Some(id) => match conn
            .query_row(
                "SELECT event_id FROM messages WHERE id = ?1 AND account_id = ?2",
                params![id, account.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
        {
            Some(event_id) => event_id,
            None => return Ok(None),
        },
    };
    let mut stmt = conn.prepare_cached(
        "SELECT body, is_read, mail_state FROM messages WHERE account_id = ?1 \
         AND (?2 = 0 OR is_read = 0) AND event_id < ?3 \
         ORDER BY event_id DESC LIMIT ?4",
    )?;
    let query = params![account.as_str(), unread_only, before, limit as i64];
    let rows = stmt.query_map(query, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, String>(2)?))
    })?;
    let found: Result<Vec<Message>, StoreError> = rows
        .map(|row| {
            let (body, read, mail) = row?;
            decode(&body, read, &mail)
        })
        .collect();
    found.map(Some)
}

/// Marks the account's message `id` read; `None` when the account has no such message.
pub fn mark_read(
    conn: &Connection,
    account: &AccountId,
    id: &str,
) -> Result<Option<Message>, StoreError> {
    conn.execute(
        "UPDATE messages SET is_read = 1 WHERE id = ?1 AND account_id = ?2",
        params![id, account.as_str()],
    )?;
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT body, mail_state FROM messages WHERE id = ?1 AND account_id = ?2",
            params![id, account.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(body, mail)| decode(&body, true, &mail)).transpose()
}

/// Up to `limit` messages whose mail is due at `now`, oldest first.
pub fn due(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<PendingMail>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT body, is_read, attempts FROM messages WHERE mail_state = 'pending' \
         AND next_attempt_ms <= ?1 ORDER BY event_id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now.timestamp_millis(), limit as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, u32>(2)?))
    })?;
    let mut due = Vec::new();
    for row in rows {
        let (body, read, attempts) = row?;
        let message = decode(&body, read, "pending")?;
        if let Some(to) = message.mail_to.clone() {
            due.push(PendingMail { message, to, attempts });
        }
    }
    Ok(due)
}

/// When the next pending mail is due, if any is.
pub fn next_due(conn: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = conn.query_row(
        "SELECT MIN(next_attempt_ms) FROM messages WHERE mail_state = 'pending'",
        [],
        |r| r.get(0),
    )?;
    Ok(at.and_then(DateTime::from_timestamp_millis))
}

pub fn record(conn: &Connection, id: &str, outcome: &MailOutcome) -> Result<(), StoreError> {
    match outcome {
        MailOutcome::Sent { at } => conn.execute(
            "UPDATE messages SET mail_state = 'sent', attempts = attempts + 1, mailed_at = ?2, \
             mail_error = NULL WHERE id = ?1",
            params![id, at.to_rfc3339()],
        )?,
        MailOutcome::Retry { next, error } => conn.execute(
            "UPDATE messages SET attempts = attempts + 1, next_attempt_ms = ?2, mail_error = ?3 \
             WHERE id = ?1",
            params![id, next.timestamp_millis(), error],
        )?,
        MailOutcome::Failed { error } => conn.execute(
            "UPDATE messages SET mail_state = 'failed', attempts = attempts + 1, \
             mail_error = ?2 WHERE id = ?1",
            params![id, error],
        )?,
    };
    Ok(())
}
