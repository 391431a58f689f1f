//! Retention in SQLite (docs/contracts.md#retention): the rows of instances the core forgot are
//! deleted, and events older than the cutoff with the inbox messages they made (mail still pending
//! stays). The newest event always stays, so that event ids continue after it on the next start;
//! the ledger is never touched. A database created by this version gives the pages freed back to
//! the file system (incremental auto-vacuum); an older one reuses them. The rows of final
//! deployments the core forgot are deleted like those of instances.

use super::{Batch, StoreError};
use rusqlite::{Connection, Transaction, params};

/// Before any table exists: freed pages can be handed back (SQLite fixes this setting when
/// the first table is created, so an existing database keeps what it has).
pub fn prepare(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    Ok(())
}

/// Applies the batch's deletions (after its upserts, so an instance ended and forgotten in
/// one commit is gone).
pub fn apply(tx: &Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    let mut forget = tx.prepare_cached("DELETE FROM instances WHERE id = ?1")?;
    for id in &batch.forgotten_instances {
        forget.execute([id.as_str()])?;
    }
    let mut forget = tx.prepare_cached("DELETE FROM deployments WHERE id = ?1")?;
    for id in &batch.forgotten_deployments {
        forget.execute([id.as_str()])?;
    }
    if let Some(before) = batch.prune_events_before {
        prune_events(tx, &before.to_rfc3339())?;
    }
    for (account, keep) in &batch.trim_events {
        trim_events(tx, account.as_str(), *keep)?;
    }
    let pruned = batch.prune_events_before.is_some() || !batch.trim_events.is_empty();
    let forgotten = batch.forgotten_instances.len() + batch.forgotten_deployments.len();
    if forgotten > 0 || pruned {
        // Each step hands back one free page: the work is what the deletions freed.
        let mut vacuum = tx.prepare_cached("PRAGMA incremental_vacuum")?;
        let mut pages = vacuum.query([])?;
        while pages.next()?.is_some() {}
    }
    Ok(())
}

/// Deletes the events before the first one at or after `before` (ids follow time: they are
/// numbered as events happen), never the newest, and the messages those events made.
/// `at` is RFC 3339 in UTC, whose text order is time order; the walk by id stops at the
/// first event kept, so a sweep reads only what it deletes.
fn prune_events(tx: &Transaction<'_>, before: &str) -> Result<(), StoreError> {
    let first_kept: Option<i64> = tx.query_row(
        "SELECT COALESCE((SELECT id FROM events WHERE at >= ?1 ORDER BY id LIMIT 1), \
         (SELECT MAX(id) FROM events))",
        [before],
        |r| r.get(0),
    )?;
    let Some(first_kept) = first_kept else { return Ok(()) };
    let events = tx.execute("DELETE FROM events WHERE id < ?1", [first_kept])?;
    let messages = tx.execute(
        "DELETE FROM messages WHERE event_id < ?1 AND mail_state != 'pending'",
        params![first_kept],
    )?;
    if events + messages > 0 {
        tracing::debug!(events, messages, "events and messages past their retention deleted");
    }
    Ok(())
}

/// Deletes all but the newest `keep` events of `account` (through the index on
/// `(account_id, id)`: the work is what it deletes, plus `keep` index steps). Its inbox
/// has its own cap, so its messages stay.
fn trim_events(tx: &Transaction<'_>, account: &str, keep: usize) -> Result<(), StoreError> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let trimmed = tx.execute(
        "DELETE FROM events WHERE account_id = ?1 AND id < \
         (SELECT id FROM events WHERE account_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![account, keep - 1],
    )?;
    if trimmed > 0 {
        tracing::info!(account, trimmed, keep, "an account's events past its cap deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::core::cluster::Event;
    use crate::core::events::EventKind;
    use crate::core::notices::{MailState, Message};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Batch, Store};
    use chrono::{DateTime, Duration, Utc};
    use gpuspot_common::AccountId;

    fn event(id: u64, at: DateTime<Utc>) -> Event {
        Event {
            id,
            at,
            kind: EventKind::Payment,
            account_id: Some(AccountId::from("a-1")),
            instance_id: None,
            host_id: None,
            // Large enough that deleting it frees whole pages.
            data: crate::core::events::EventData::Other(
                serde_json::json!({ "pad": "x".repeat(20_000) }),
            ),
            subject: None,
            message: None,
        }
    }

    fn message(event: &Event, mail_to: Option<&str>) -> Message {
        Message {
            id: format!("m-{}", event.id),
            account_id: AccountId::from("a-1"),
            event_id: event.id,
            at: event.at,
            subject: "s".into(),
            body: "b".into(),
            instance_id: None,
            read: false,
            mail: MailState::None,
            mail_to: mail_to.map(str::to_owned),
        }
    }

    #[test]
    fn old_events_and_their_sent_messages_go_but_not_the_newest_event_or_pending_mail() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let now = Utc::now();
        // Whole seconds and fractions mixed: the text order must still be time order.
        let t0 = DateTime::from_timestamp(now.timestamp(), 0).unwrap();
        let old = [
            event(1, t0 - Duration::hours(2)),
            event(2, t0 - Duration::milliseconds(1500)),
            event(3, t0 - Duration::milliseconds(500)),
        ];
        let newest = event(4, t0 + Duration::milliseconds(250));
        let messages = vec![
            message(&old[0], Some("x@example.org")),
            message(&old[1], None),
            message(&old[2], None),
        ];
        let mut events = old.to_vec();
        events.push(newest);
        store.commit(&[Batch { events, messages, ..Batch::default() }]).unwrap();

        let cutoff = t0 - Duration::seconds(1);
        store.commit(&[Batch { prune_events_before: Some(cutoff), ..Batch::default() }]).unwrap();
        let kept: Vec<u64> = store.events_after(0, 10).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(kept, vec![3, 4], "the events older than the cutoff went");
        let inbox = store.messages(&AccountId::from("a-1"), false, None, 10).unwrap().unwrap();
        let ids: Vec<&str> = inbox.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec!["m-3", "m-1"], "m-2 went with its event; m-1's mail is pending");

        let everything =
            Batch { prune_events_before: Some(t0 + Duration::hours(1)), ..Batch::default() };
        store.commit(&[everything]).unwrap();
        let kept: Vec<u64> = store.events_after(0, 10).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(kept, vec![4], "the newest event stays: ids continue after it");
        assert_eq!(store.load().unwrap().last_event_id, 4);
        let inbox = store.messages(&AccountId::from("a-1"), false, None, 10).unwrap().unwrap();
        assert_eq!(inbox.len(), 1, "the pending mail stays: {inbox:?}");

        // The pages the deletions freed went back to the file system.
        let file = rusqlite::Connection::open(dir.path().join("gpuspot.db")).unwrap();
        let pragma = |name: &str| -> i64 {
            file.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap()
        };
        assert_eq!(pragma("auto_vacuum"), 2, "incremental");
        assert_eq!(pragma("freelist_count"), 0);
    }

    #[test]
    fn an_account_past_its_event_cap_keeps_its_newest_and_others_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let at = Utc::now();
        let mut events: Vec<Event> = (1..=10).map(|id| event(id, at)).collect();
        for (id, e) in (11..=13).zip(events.clone()) {
            events.push(Event { id, account_id: Some(AccountId::from("a-2")), ..e });
        }
        store.commit(&[Batch { events, ..Batch::default() }]).unwrap();

        let trim = vec![(AccountId::from("a-1"), 4), (AccountId::from("a-2"), 5)];
        store.commit(&[Batch { trim_events: trim, ..Batch::default() }]).unwrap();
        let kept: Vec<u64> = store.events_after(0, 20).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(kept, vec![7, 8, 9, 10, 11, 12, 13], "a-1's 4 newest, a-2 under its cap");
    }
}
