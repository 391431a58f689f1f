//! How guest metadata looks on the wire (docs/contracts.md#guest-socket): one JSON value per key,
//! times as RFC 3339 with `+00:00` (seed 003's `"2026-04-08T05:00:00+00:00"`), money as decimal
//! strings, and `None` meaning "absent" (the server answers 404).

use chrono::{DateTime, SecondsFormat, Utc};
use gpuspot_common::protocol::GuestMetadata;
use serde_json::{Map, Value, json};

/// Every key a guest may ask for, in the order docs/contracts.md#guest-socket lists them.
pub const KEYS: [&str; 10] = [
    "instance_id",
    "host_id",
    "gpu_uuids",
    "spot_termination_time",
    "termination_reason",
    "hold_until",
    "billing_mode",
    "bid",
    "price",
    "deployment_id",
];

/// The value of `key`, or `None` when it is absent or not a key at all.
pub fn value(metadata: &GuestMetadata, key: &str) -> Option<Value> {
    let text = |s: &str| (!s.is_empty()).then(|| Value::String(s.to_owned()));
    match key {
        "instance_id" => text(metadata.instance_id.as_str()),
        "host_id" => text(metadata.host_id.as_str()),
        "gpu_uuids" => Some(json!(metadata.gpu_uuids)),
        "spot_termination_time" => metadata.spot_termination_time.as_ref().map(time),
        "termination_reason" => metadata.termination_reason.and_then(|r| text(r.as_str())),
        "hold_until" => metadata.hold_until.as_ref().map(time),
        "billing_mode" => metadata.billing_mode.and_then(|m| text(m.as_str())),
        "bid" => metadata.bid.map(|m| Value::String(m.to_string())),
        "price" => metadata.price.map(|m| Value::String(m.to_string())),
        "deployment_id" => metadata.deployment_id.as_ref().and_then(|d| text(d.as_str())),
        _ => None,
    }
}

/// All keys in one object, `null` where absent.
pub fn object(metadata: &GuestMetadata) -> Value {
    let map: Map<String, Value> = KEYS
        .iter()
        .map(|key| (key.to_string(), value(metadata, key).unwrap_or(Value::Null)))
        .collect();
    Value::Object(map)
}

/// AWS's `spot/instance-action` document, when a termination is scheduled.
pub fn instance_action(metadata: &GuestMetadata) -> Option<Value> {
    let at = metadata.spot_termination_time?;
    Some(json!({
        "action": "terminate",
        "time": at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}

/// Whole seconds: a guest is better told a termination a fraction early than late.
fn time(at: &DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use gpuspot_common::Money;

    #[test]
    fn values_render_as_the_seed_shows_them() {
        let at = Utc.with_ymd_and_hms(2026, 4, 8, 5, 0, 0).single().expect("time");
        let metadata = GuestMetadata {
            instance_id: "i-1".into(),
            spot_termination_time: Some(at + chrono::Duration::milliseconds(400)),
            price: Some(Money::from_micros(1_200_000)),
            gpu_uuids: vec!["GPU-a".into()],
            ..GuestMetadata::default()
        };
        let show = |key| value(&metadata, key).map(|v| v.to_string());
        assert_eq!(show("spot_termination_time").as_deref(), Some("\"2026-04-08T05:00:00+00:00\""));
        assert_eq!(show("price").as_deref(), Some("\"1.20\""));
        assert_eq!(show("gpu_uuids").as_deref(), Some("[\"GPU-a\"]"));
        assert_eq!(show("host_id"), None);
        assert_eq!(show("bid"), None);
        assert_eq!(show("no_such_key"), None);
        let action = instance_action(&metadata).expect("action").to_string();
        assert_eq!(action, r#"{"action":"terminate","time":"2026-04-08T05:00:00Z"}"#);
    }
}
