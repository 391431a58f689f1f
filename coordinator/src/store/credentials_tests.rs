//! Join tokens and host certificates in the SQLite store: what an operator and a joining
//! agent see (refusal texts, states), that uses are counted atomically across connections,
//! and that databases from before these columns keep their tokens working.

use super::credentials::{JoinRefusal, NewCertificate, NewJoinToken, TokenState};
use super::sqlite::SqliteStore;
use super::{Batch, Store};
use crate::core::Host;
use crate::core::registry::RemovedHost;
use chrono::{DateTime, Duration, Utc};
use gpuspot_common::{HostId, HostInventory};
use std::sync::Arc;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-01T00:00:00Z").unwrap().with_timezone(&Utc)
        + Duration::seconds(seconds)
}

fn hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn token(n: u8, ttl: Option<i64>, max_uses: Option<u32>) -> NewJoinToken {
    NewJoinToken { secret_hash: hash(n), created_at: t(0), expires_at: ttl.map(t), max_uses }
}

fn cert(n: u32, at: DateTime<Utc>) -> NewCertificate {
    NewCertificate {
        fingerprint: format!("fp-{n}"),
        host_id: HostId::from(format!("h-{n}").as_str()),
        at,
    }
}

#[test]
fn expired_used_up_and_revoked_tokens_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let expiring = store.add_join_token(&token(1, Some(60), None)).unwrap();
    let once = store.add_join_token(&token(2, None, Some(1))).unwrap();
    let revoked = store.add_join_token(&token(3, None, None)).unwrap();
    assert_eq!(expiring.id, "jt-010101010101");

    assert!(store.redeem_join_token(&hash(1), &cert(1, t(59))).unwrap().is_ok());
    let refused = store.redeem_join_token(&hash(1), &cert(2, t(60))).unwrap().unwrap_err();
    assert_eq!(refused.to_string(), "join token jt-010101010101 expired at 2026-05-01T00:01:00Z");

    assert_eq!(store.redeem_join_token(&hash(2), &cert(3, t(1))).unwrap().unwrap().uses, 1);
    let refused = store.redeem_join_token(&hash(2), &cert(4, t(2))).unwrap().unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("join token {} has been used 1 time (its limit)", once.id)
    );

    store.revoke_join_token(&revoked.id, t(10)).unwrap().expect("known id");
    let refused = store.redeem_join_token(&hash(3), &cert(5, t(11))).unwrap().unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!("join token {} was revoked at 2026-05-01T00:00:10Z", revoked.id)
    );
    assert_eq!(
        store.redeem_join_token(&hash(9), &cert(6, t(1))).unwrap(),
        Err(JoinRefusal::Unknown)
    );
    assert!(store.revoke_join_token("jt-999999999999", t(1)).unwrap().is_none());

    // Refused joins leave no certificate behind; the successful ones do.
    assert!(store.host_certificate("fp-2").unwrap().is_none());
    assert_eq!(store.host_certificate("fp-1").unwrap().unwrap().host_id, HostId::from("h-1"));
    let states: Vec<TokenState> =
        store.join_tokens().unwrap().iter().map(|k| k.state(t(100))).collect();
    assert_eq!(states, [TokenState::Expired, TokenState::UsedUp, TokenState::Revoked]);
}

#[test]
fn listed_tokens_carry_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_join_token(&token(1, Some(60), None)).unwrap();
    store.add_join_token(&token(2, Some(600), Some(1))).unwrap();
    store.add_join_token(&token(3, Some(600), None)).unwrap();
    store.add_join_token(&token(4, Some(600), Some(2))).unwrap();
    store.redeem_join_token(&hash(2), &cert(1, t(1))).unwrap().unwrap();
    store.redeem_join_token(&hash(4), &cert(2, t(1))).unwrap().unwrap();
    store.revoke_join_token("JT-030303030303", t(2)).unwrap().expect("ids ignore case");
    let states: Vec<(String, &str, u32)> = store
        .join_tokens()
        .unwrap()
        .iter()
        .map(|token| (token.id.clone(), token.state(t(100)).as_str(), token.uses))
        .collect();
    assert_eq!(
        states,
        vec![
            ("jt-010101010101".into(), "expired", 0),
            ("jt-020202020202".into(), "used up", 1),
            ("jt-030303030303".into(), "revoked", 0),
            ("jt-040404040404".into(), "active", 1),
        ]
    );
}

#[test]
fn concurrent_joins_never_both_pass_a_limit_of_one() {
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(dir.path()).unwrap().add_join_token(&token(1, None, Some(1))).unwrap();
    // Separate connections, as the coordinator and a second process would have.
    let stores: Vec<Arc<SqliteStore>> =
        (0..8).map(|_| Arc::new(SqliteStore::open(dir.path()).unwrap())).collect();
    let barrier = Arc::new(std::sync::Barrier::new(stores.len()));
    let joins: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(n, store)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                store.redeem_join_token(&hash(1), &cert(n as u32, t(1))).unwrap().is_ok()
            })
        })
        .collect();
    let passed = joins.into_iter().map(|j| j.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(passed, 1, "exactly one of eight concurrent joins uses the token");
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.join_tokens().unwrap()[0].uses, 1);
}

#[test]
fn tokens_from_before_the_limits_keep_working_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The schema and rows of the first release.
        let conn = rusqlite::Connection::open(dir.path().join("gpuspot.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE join_tokens (hash TEXT PRIMARY KEY, created_at TEXT NOT NULL);
             CREATE TABLE host_certificates (
                 fingerprint TEXT PRIMARY KEY, host_id TEXT NOT NULL, created_at TEXT NOT NULL);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO join_tokens (hash, created_at) VALUES (?1, ?2)",
            [hash(7), t(0).to_rfc3339()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO host_certificates VALUES ('old-fp', 'h-old', ?1)",
            [t(0).to_rfc3339()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let old = &store.join_tokens().unwrap()[0];
    assert_eq!((old.expires_at, old.max_uses, old.uses), (None, None, 0));
    for n in 0..3 {
        let far = t(0) + Duration::days(3650);
        assert!(store.redeem_join_token(&hash(7), &cert(n, far)).unwrap().is_ok());
    }
    let record = store.host_certificate("old-fp").unwrap().unwrap();
    assert_eq!((record.host_id, record.revoked_at), (HostId::from("h-old"), None));
    drop(store);
    SqliteStore::open(dir.path()).unwrap(); // migrating twice is harmless
}

#[test]
fn a_deleted_host_loses_its_row_and_its_certificate_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_join_token(&token(1, None, None)).unwrap();
    store.redeem_join_token(&hash(1), &cert(1, t(1))).unwrap().unwrap();
    let inventory =
        HostInventory { hostname: "a".into(), gpus: vec![], cpu_cores: 1, memory_gib: 1 };
    let host = Host::new(HostId::from("h-1"), &inventory, "test", t(1));
    store.commit(&[Batch { hosts: vec![host], ..Batch::default() }]).unwrap();
    assert_eq!(store.load().unwrap().hosts.len(), 1);
    let gone = RemovedHost { id: HostId::from("h-1"), at: t(5) };
    store.commit(&[Batch { removed_hosts: vec![gone], ..Batch::default() }]).unwrap();
    let record = store.host_certificate("fp-1").unwrap().expect("kept, marked");
    assert_eq!(record.revoked_at, Some(t(5)));
    assert!(store.load().unwrap().hosts.is_empty());
}
