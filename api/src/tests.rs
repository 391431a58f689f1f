//! The types write and read the JSON the API documents.

use super::*;
use gpuspot_common::Money;
use serde_json::json;

#[test]
fn billing_is_tagged_by_mode() {
    let spot = Billing::Spot { max_price: Money(1_200_000) };
    assert_eq!(serde_json::to_value(&spot).unwrap(), json!({"mode": "spot", "max_price": "1.20"}));
    assert_eq!(serde_json::to_value(Billing::Regular).unwrap(), json!({"mode": "regular"}));
    let read: Billing =
        serde_json::from_value(json!({"mode": "spot", "max_price": "0.5"})).unwrap();
    assert_eq!(read.bid(), Some(Money(500_000)));
}

#[test]
fn every_word_of_a_vocabulary_reads_back() {
    fn round_trip<T: Copy + PartialEq + std::fmt::Debug + serde::Serialize>(
        all: &[T],
        text: impl Fn(T) -> &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) {
        for &word in all {
            assert_eq!(serde_json::to_value(word).unwrap(), json!(text(word)));
            assert_eq!(parse(text(word)), Some(word));
        }
        assert_eq!(parse("no-such-word"), None);
    }
    round_trip(InstanceState::ALL, InstanceState::as_str, InstanceState::parse);
    round_trip(EndReason::ALL, EndReason::as_str, EndReason::parse);
    round_trip(DeploymentState::ALL, DeploymentState::as_str, DeploymentState::parse);
    round_trip(Mode::ALL, Mode::as_str, Mode::parse);
    round_trip(HostState::ALL, HostState::as_str, HostState::parse);
    round_trip(Pricing::ALL, Pricing::as_str, Pricing::parse);
    round_trip(EntryKind::ALL, EntryKind::as_str, EntryKind::parse);
    round_trip(MailState::ALL, MailState::as_str, MailState::parse);
    round_trip(Role::ALL, Role::as_str, Role::parse);
    round_trip(OnUnavailable::ALL, OnUnavailable::as_str, OnUnavailable::parse);
}

#[test]
fn a_sessions_last_frame_is_an_exit_or_an_error() {
    let exit: SessionEnd = serde_json::from_str(r#"{"exit_code":0,"timed_out":false}"#).unwrap();
    assert_eq!(exit, SessionEnd::Exit { exit_code: Some(0), timed_out: false });
    let error: SessionEnd = serde_json::from_str(r#"{"error":"gone"}"#).unwrap();
    assert_eq!(error, SessionEnd::Error { error: "gone".into() });
    let written = serde_json::to_value(SessionEnd::Exit { exit_code: None, timed_out: true });
    assert_eq!(written.unwrap(), json!({"exit_code": null, "timed_out": true}));
}

#[test]
fn a_new_token_sits_beside_the_accounts_fields() {
    let account = json!({"id": "a-1", "name": "acme", "balance": "0.00", "overdue": false,
        "overdue_since": null, "overdue_deadline": null, "webhook_url": null, "email": null,
        "disabled": false, "created_at": "2026-12-03T12:00:00Z",
        "quota": {"max_gpus": null, "max_instances": 2}, "usage": {"gpus": 0, "instances": 0}});
    let mut with_token = account.clone();
    with_token["token"] = json!("gpuspot_secret");
    let read: AccountWithToken = serde_json::from_value(with_token.clone()).unwrap();
    assert_eq!(read.account.quota.max_instances, Some(2));
    assert_eq!(serde_json::to_value(&read).unwrap(), with_token);
    let mut whoami = account;
    whoami["role"] = json!("admin");
    let read: Whoami = serde_json::from_value(whoami).unwrap();
    assert_eq!(read.role, Role::Admin);
}

#[test]
fn request_bodies_leave_out_what_was_not_given() {
    let body = requests::InstanceBody {
        gpu: requests::GpuBody { models: vec!["H100".into()], count: Some(1) },
        command: vec!["true".into()],
        ..Default::default()
    };
    let written = serde_json::to_value(&body).unwrap();
    assert_eq!(written, json!({"gpu": {"models": ["H100"], "count": 1}, "command": ["true"]}));
    let read: requests::InstanceBody = serde_json::from_value(written).unwrap();
    assert_eq!(read, body);
    let change: requests::AccountChangeBody =
        serde_json::from_value(json!({"quota": null, "email": "a@b.c"})).unwrap();
    assert_eq!(change.quota, Some(None), "a null quota is present: back to the default");
    assert_eq!(change.webhook_url, None, "an absent key is no change");
}
