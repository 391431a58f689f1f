//! Each typed payload writes exactly what the `json!` it replaced wrote, and what was
//! stored loads back unchanged.

use super::*;
use serde_json::json;

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").unwrap().to_utc()
}

fn same_bytes(typed: EventData, old: serde_json::Value) {
    let written = serde_json::to_string(&typed).unwrap();
    assert_eq!(written, serde_json::to_string(&old).unwrap());
    let back: EventData = serde_json::from_str(&written).unwrap();
    assert_eq!(back, typed, "{written} reads back as the shape it was");
}

#[test]
fn instance_payloads_are_the_json_they_replaced() {
    let placed = Placed { gpu_uuids: vec!["GPU-0".into()], price: Money(2_580_000) };
    same_bytes(EventData::Placed(placed), json!({ "gpu_uuids": ["GPU-0"], "price": "2.58" }));
    let noticed = Noticed { reason: "reclaimed_price".into(), termination_time: at() };
    let old = json!({ "termination_time": at(), "reason": "reclaimed_price" });
    same_bytes(EventData::Noticed(noticed), old);
    let ended = Ended {
        detail: "exit 1".into(),
        exit_code: None,
        reason: "user".into(),
        state: "terminated".into(),
    };
    let old =
        json!({ "state": "terminated", "reason": "user", "exit_code": null, "detail": "exit 1" });
    same_bytes(EventData::Ended(ended), old);
    same_bytes(
        EventData::Because(Because { reason: "payment".into() }),
        json!({ "reason": "payment" }),
    );
    same_bytes(
        EventData::Requeued(Requeued { requeued: "port".into() }),
        json!({ "requeued": "port" }),
    );
    same_bytes(EventData::default(), json!({}));
}

#[test]
fn host_and_market_payloads_are_the_json_they_replaced() {
    let gpu = GpuHealth {
        healthy: true,
        memory_used_mib: Some(5),
        temperature_celsius: None,
        utilization_percent: Some(40),
        uuid: "GPU-0".into(),
    };
    let old = json!({ "gpus": [{ "uuid": "GPU-0", "healthy": true, "utilization_percent": 40,
        "memory_used_mib": 5, "temperature_celsius": null }] });
    same_bytes(EventData::HostHealth(HostHealth { gpus: vec![gpu] }), old);
    let connected = HostConnected { hostname: "h".into(), runtimes: vec![GuestRuntime::Process] };
    same_bytes(
        EventData::HostConnected(connected),
        json!({ "hostname": "h", "runtimes": ["process"] }),
    );
    let joined = HostJoined {
        address: "10.0.0.7:4433".into(),
        hostname: "h".into(),
        token_id: "jt-1".into(),
    };
    let old = json!({ "hostname": "h", "token_id": "jt-1", "address": "10.0.0.7:4433" });
    same_bytes(EventData::HostJoined(joined), old);
    let price = PriceChanged { model: "H100".into(), previous: None, price: Money(1_000_000) };
    let old = json!({ "model": "H100", "price": "1.00", "previous": null });
    same_bytes(EventData::PriceChanged(price), old);
}

#[test]
fn account_and_deployment_payloads_are_the_json_they_replaced() {
    let news =
        AccountNews { balance: Money(-5), name: "acme".into(), overdue_deadline: Some(at()) };
    let old = json!({ "name": "acme", "balance": "-0.000005", "overdue_deadline": at() });
    same_bytes(EventData::AccountNews(news), old);
    let paid = PaymentNews {
        amount: Money(5),
        balance: Money::ZERO,
        name: "a".into(),
        overdue_deadline: None,
    };
    let old =
        json!({ "amount": "0.000005", "name": "a", "balance": "0.00", "overdue_deadline": null });
    same_bytes(EventData::PaymentNews(paid), old);
    let news = DeploymentNews {
        deployment_id: DeploymentId("d-1".into()),
        failed: 1,
        restarts: 2,
        state: "running".into(),
        succeeded: 3,
    };
    let old = json!({ "deployment_id": "d-1", "state": "running", "succeeded": 3, "failed": 1, "restarts": 2 });
    same_bytes(EventData::DeploymentNews(news), old);
    let scaled =
        Scaled { deployment_id: DeploymentId("d-1".into()), from: 1, reason: "rps".into(), to: 3 };
    let old = json!({ "deployment_id": "d-1", "from": 1, "to": 3, "reason": "rps" });
    same_bytes(EventData::Scaled(scaled), old);
}

#[test]
fn a_stored_payload_of_another_shape_loads_and_writes_back_unchanged() {
    for old in [
        json!({ "reason": "x", "extra": 1 }),
        json!({ "name": "a", "balance": "1.00" }),
        json!([1]),
    ] {
        let loaded: EventData = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(loaded, EventData::Other(old.clone()));
        assert_eq!(serde_json::to_string(&loaded).unwrap(), serde_json::to_string(&old).unwrap());
    }
    assert_eq!(EventData::Other(json!({ "reason": "x", "extra": 1 })).reason(), Some("x"));
}
