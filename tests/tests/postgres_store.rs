//! The PostgreSQL store against a real PostgreSQL, side by side with SQLite: the same
//! commits read back the same from both, a join token's limit holds, retention deletes the
//! same rows, a leader whose lease was taken commits nothing, and a schema newer than the
//! coordinator knows is refused (issue 28).

use chrono::{Duration as Span, Utc};
use gpuspot_common::{AccountId, HostId, Money};
use gpuspot_coordinator::config::Timers;
use gpuspot_coordinator::core::Cluster;
use gpuspot_coordinator::core::accounts::NewAccount;
use gpuspot_coordinator::core::cluster::PricePoint;
use gpuspot_coordinator::core::model::{
    Billing, GpuRequest, InstanceRequest, Range, SnapshotOptions,
};
use gpuspot_coordinator::core::registry::RemovedHost;
use gpuspot_coordinator::store::credentials::{JoinRefusal, NewCertificate, NewJoinToken};
use gpuspot_coordinator::store::postgres::PostgresStore;
use gpuspot_coordinator::store::postgres::lease::Candidate;
use gpuspot_coordinator::store::sqlite::SqliteStore;
use gpuspot_coordinator::store::{Batch, LedgerOrder, Store, StoreError};
use gpuspot_e2e::postgres::Postgres;
use gpuspot_e2e::wait_until;
use std::time::Duration;

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

/// An account with two payments and an instance, as the core hands them to the store.
fn cluster_changes() -> (Batch, AccountId) {
    let now = Utc::now();
    let mut cluster = Cluster::new(vec![], Timers::default());
    let new =
        NewAccount { name: "alice".into(), token_hash: "h".into(), webhook_url: None, email: None };
    let account = cluster.create_account(new, now);
    cluster.pay(&account, Money(5_000_000), now).unwrap();
    cluster.pay(&account, Money(2_500_000), now).unwrap();
    cluster.create_instance(account.clone(), request(), now).expect("created");
    let points = vec![
        PricePoint { model: "H100".into(), at: now - Span::hours(50), price: Money(1) },
        PricePoint { model: "H100".into(), at: now, price: Money(7) },
    ];
    let changes = cluster.take_changes();
    let batch = Batch {
        price_points: points,
        prune_prices_before: Some(now - Span::hours(48)),
        sends: Vec::new(),
        ..changes
    };
    (batch, account)
}

/// What a user could read back from a store, as text to compare.
fn contents(store: &dyn Store, account: &AccountId) -> String {
    let loaded = store.load().unwrap();
    let instances: Vec<_> = loaded.instances.iter().map(|i| i.id.to_string()).collect();
    let accounts: Vec<_> = loaded.accounts.iter().map(|a| (a.id.to_string(), a.balance)).collect();
    let events: Vec<_> =
        store.events_after(0, 100).unwrap().iter().map(|e| (e.id, e.kind.as_str())).collect();
    let visible = store.events_visible_after(0, Some(account), 100).unwrap().len();
    let replay = store.replay_start(0, Some(account), 2).unwrap();
    let oldest: Vec<_> = store
        .ledger(account, LedgerOrder::Oldest, None, 10)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let newest: Vec<_> =
        store.ledger(account, LedgerOrder::Newest, None, 1).unwrap().iter().map(|e| e.id).collect();
    let history = store.price_history("H100", Utc::now() - Span::hours(100)).unwrap().len();
    format!(
        "instances {instances:?} accounts {accounts:?} last_event {} last_ledger {} prices {:?} \
         events {events:?} visible {visible} replay {replay} ledger {oldest:?} {newest:?} history {history}",
        loaded.last_event_id, loaded.last_ledger_id, loaded.prices
    )
}

#[test]
fn postgres_keeps_what_sqlite_keeps() {
    let pg = Postgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(tmp.path()).unwrap();
    let postgres = PostgresStore::open(&pg.url()).unwrap();
    let (batch, account) = cluster_changes();
    for store in [&sqlite as &dyn Store, &postgres] {
        // Twice: a batch written again (a retried commit) is still one set of rows.
        store.commit(&[batch.clone(), batch.clone()]).unwrap();
    }
    let expected = contents(&sqlite, &account);
    assert!(expected.contains("Money(7500000)"), "{expected}");
    assert_eq!(contents(&postgres, &account), expected);
    let reopened = PostgresStore::open(&pg.url()).unwrap();
    assert_eq!(contents(&reopened, &account), expected, "a second coordinator reads the same");

    let cutoff =
        Batch { prune_events_before: Some(Utc::now() + Span::hours(1)), ..Batch::default() };
    for store in [&sqlite as &dyn Store, &postgres] {
        store.commit(std::slice::from_ref(&cutoff)).unwrap();
    }
    let expected = contents(&sqlite, &account);
    assert_eq!(contents(&postgres, &account), expected, "retention deleted the same rows");
    assert_eq!(postgres.events_after(0, 100).unwrap().len(), 1, "the newest event stays");
}

#[test]
fn join_tokens_and_certificates_behave_as_in_sqlite() {
    let pg = Postgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(tmp.path()).unwrap();
    let postgres = PostgresStore::open(&pg.url()).unwrap();
    let now = Utc::now();
    for store in [&sqlite as &dyn Store, &postgres] {
        let token = NewJoinToken {
            secret_hash: "ab".repeat(32),
            created_at: now,
            expires_at: Some(now + Span::hours(1)),
            max_uses: Some(1),
        };
        let record = store.add_join_token(&token).unwrap();
        assert!(matches!(store.add_join_token(&token), Err(StoreError::Conflict(_))));
        let cert = |fp: &str| NewCertificate {
            fingerprint: fp.into(),
            host_id: HostId("h-1".into()),
            at: now,
        };
        assert_eq!(
            store.redeem_join_token(&token.secret_hash, &cert("f1")).unwrap().unwrap().uses,
            1
        );
        let refused =
            store.redeem_join_token(&token.secret_hash, &cert("f2")).unwrap().unwrap_err();
        assert_eq!(refused, JoinRefusal::UsedUp { id: record.id.clone(), uses: 1 });
        assert_eq!(
            store.redeem_join_token("nope", &cert("f3")).unwrap().unwrap_err(),
            JoinRefusal::Unknown
        );
        let revoked = store.revoke_join_token(&record.id, now).unwrap().unwrap();
        assert_eq!(revoked.revoked_at.map(|t| t.timestamp()), Some(now.timestamp()));
        assert_eq!(store.join_tokens().unwrap().len(), 1);
        assert_eq!(store.host_certificate("f1").unwrap().unwrap().revoked_at, None);
        let removed = vec![RemovedHost { id: HostId("h-1".into()), at: now }];
        store.commit(&[Batch { removed_hosts: removed, ..Batch::default() }]).unwrap();
        assert!(
            store.host_certificate("f1").unwrap().unwrap().revoked_at.is_some(),
            "removed host"
        );
        assert!(store.host_certificate("f2").unwrap().is_none());
    }
}

fn candidate(name: &str) -> Candidate {
    Candidate {
        holder: name.into(),
        http_url: format!("http://{name}"),
        quic_addr: format!("{name}:7443"),
    }
}

#[test]
fn a_leader_whose_lease_was_taken_commits_nothing_more() {
    let pg = Postgres::start();
    let (a, b) = (PostgresStore::open(&pg.url()).unwrap(), PostgresStore::open(&pg.url()).unwrap());
    let lease = Duration::from_secs(1);
    assert_eq!(a.try_lead(&candidate("a"), lease).unwrap(), Some(1));
    assert_eq!(b.try_lead(&candidate("b"), lease).unwrap(), None, "a holds a live lease");
    assert_eq!(b.lease_row().unwrap().http_url, "http://a");
    let (batch, _) = cluster_changes();
    a.commit(std::slice::from_ref(&batch)).unwrap();
    // a stops renewing (paused): once its lease ran out, b takes it.
    let epoch = wait_until(Duration::from_secs(10), "b to take the expired lease", || {
        b.try_lead(&candidate("b"), lease).unwrap().ok_or_else(|| "a's lease is live".to_owned())
    });
    assert_eq!(epoch, 2);
    let events = b.events_after(0, 100).unwrap().len();
    let stale = a.commit(&[Batch { accounts: batch.accounts.clone(), ..batch.clone() }]);
    assert!(matches!(stale, Err(StoreError::Fenced { epoch: 1 })), "{stale:?}");
    assert!(*a.deposed().borrow(), "a learned that it lost the lease");
    assert!(!a.renew(1, lease).unwrap(), "a cannot renew b's lease");
    assert_eq!(b.events_after(0, 100).unwrap().len(), events, "nothing of a's landed");
    b.commit(&[batch]).unwrap();
    assert!(b.renew(2, lease).unwrap());
}

#[test]
fn a_schema_newer_than_the_coordinator_knows_is_refused() {
    let pg = Postgres::start();
    drop(PostgresStore::open(&pg.url()).unwrap());
    pg.query("INSERT INTO schema_migrations (version) VALUES (9999)");
    let Err(error) = PostgresStore::open(&pg.url()) else { panic!("a newer schema was accepted") };
    assert!(error.to_string().contains("schema is version 9999, newer"), "{error}");
}
