//! The words of messages (docs/contracts.md#messages): what each kind says, and times in words.

use super::events::{Event, EventData, EventKind};
use super::notices::{Message, compose, duration_in_words, words_for_time};
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

fn event(kind: EventKind, data: serde_json::Value) -> Event {
    Event {
        id: 9,
        at: Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap(),
        kind,
        account_id: Some("acc-1".into()),
        instance_id: None,
        host_id: None,
        data: EventData::from_value(data),
        subject: None,
        message: None,
    }
}

#[test]
fn durations_read_as_a_person_says_them() {
    let cases = [
        (Duration::minutes(30), "30 minutes"),
        (Duration::minutes(65), "1 hour 5 minutes"),
        (Duration::seconds(3605), "1 hour"),
        (Duration::seconds(2), "2 seconds"),
        (Duration::milliseconds(300), "1 second"),
        (Duration::seconds(-5), "0 seconds"),
        (Duration::hours(49), "2 days 1 hour"),
    ];
    for (span, words) in cases {
        assert_eq!(duration_in_words(span), words, "{span:?}");
    }
    let at = Utc.with_ymd_and_hms(2026, 12, 2, 10, 30, 0).unwrap();
    assert_eq!(words_for_time(at), "2026-12-02 10:30:00 UTC");
}

#[test]
fn an_overdue_account_is_told_to_pay_within_the_grace() {
    let at = event(EventKind::AccountOverdue, json!({})).at;
    let data = json!({
        "name": "acme", "balance": "-0.50", "overdue_deadline": at + Duration::minutes(5)
    });
    let notice = compose(&event(EventKind::AccountOverdue, data), None).expect("a notice");
    assert_eq!(notice.subject, "Account acme is overdue: pay within 5 minutes");
    assert!(notice.body.contains("Pay within 5 minutes, by 2026-12-02 10:05:00 UTC"), "{notice:?}");
    assert!(notice.body.contains("-0.50"), "{notice:?}");
}

#[test]
fn a_payment_and_a_shutdown_are_told() {
    let data = json!({ "name": "acme", "balance": "9.50", "overdue_deadline": null });
    let settled = compose(&event(EventKind::AccountSettled, data.clone()), None).unwrap();
    assert!(settled.subject.contains("shutdown of account acme is cancelled"), "{settled:?}");
    let shutdown = compose(&event(EventKind::AccountOverdueShutdown, data), None).unwrap();
    assert!(shutdown.body.contains("were terminated"), "{shutdown:?}");
}

#[test]
fn machine_events_make_no_message() {
    for kind in [EventKind::AccountChanged, EventKind::TerminationScheduled] {
        assert_eq!(compose(&event(kind, json!({})), None), None, "{kind:?}");
    }
}

#[test]
fn a_message_belongs_to_the_events_account() {
    let notice = compose(&event(EventKind::AccountSettled, json!({})), None).unwrap();
    let message = Message::for_event(&event(EventKind::AccountSettled, json!({})), notice.clone());
    let message = message.expect("an owned event makes a message");
    assert_eq!((message.id.as_str(), message.account_id.as_str()), ("m-9", "acc-1"));
    let mut unowned = event(EventKind::AccountSettled, json!({}));
    unowned.account_id = None;
    assert_eq!(Message::for_event(&unowned, notice), None);
}
