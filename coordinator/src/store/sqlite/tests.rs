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
