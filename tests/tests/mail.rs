//! Notices that reach a person (docs/contracts.md#messages, seeds 000 and 001), through a real mail
//! server (aiosmtpd): a reclaim for price mails the owner the instance, the reason and the time,
//! and the same message waits in the inbox until read; an overdue account is told to pay within the
//! grace and a payment is confirmed; a mail server that is down delays mail and never loses or
//! doubles it, across a coordinator restart too; nobody reads another account's inbox.

use gpuspot_e2e::billing::{Account, create_account_with};
use gpuspot_e2e::events::EventStream;
use gpuspot_e2e::market::{GUEST_PROLOGUE, spot};
use gpuspot_e2e::smtp::{Mail, MailServer};
use gpuspot_e2e::{
    Cluster, SOON, TEST_CONFIG, assert_error, cluster, config_with_timers, holds, request, s, sh,
    wait_until,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Mail through a retrying outbox may take a few retry rounds.
const MAIL: Duration = Duration::from_secs(30);

fn account(c: &Cluster, name: &str) -> Account {
    let email = format!("{name}@example.com");
    let account = create_account_with(&c.api, &json!({ "name": name, "email": email }));
    assert_eq!(account.show()["email"], email.as_str(), "the account keeps its email");
    account
}

/// The account's inbox (`?unread=true` when `unread`).
fn inbox(account: &Account, unread: bool) -> Vec<Value> {
    let path = if unread { "/v1/messages?unread=true" } else { "/v1/messages" };
    let body = account.api.get_ok(path);
    body.as_array().cloned().unwrap_or_else(|| panic!("GET {path}: {body}"))
}

/// Waits for the inbox message whose subject contains `needle`.
fn wait_message(account: &Account, needle: &str) -> Value {
    wait_until(SOON, &format!("an inbox message about {needle:?}"), || {
        let messages = inbox(account, false);
        let found = messages.iter().find(|m| s(m, "subject").contains(needle)).cloned();
        found.ok_or_else(|| format!("inbox: {messages:?}"))
    })
}

/// Waits until the inbox shows message `id`'s mail as `state`.
fn wait_mail_state(account: &Account, id: &str, state: &str) -> Value {
    wait_until(MAIL, &format!("message {id}'s mail to be {state}"), || {
        let messages = inbox(account, false);
        let found = messages.iter().find(|m| s(m, "id") == id).cloned();
        let found = found.ok_or_else(|| format!("no {id} in {messages:?}"))?;
        holds(s(&found, "mail") == state, || found.to_string()).map(|()| found.clone())
    })
}

/// `2026-12-03 09:12:33 UTC` from an API time such as `2026-12-03T09:12:33.123Z`.
fn in_words(api_time: &str) -> String {
    format!("{} UTC", api_time.get(..19).unwrap_or(api_time).replace('T', " "))
}

fn assert_mail_is_the_message(mail: &Mail, message: &Value, to: &str) {
    assert_eq!(mail.header("To"), to, "{mail:?}");
    assert_eq!(mail.header("Subject"), s(message, "subject"), "{mail:?}");
    assert_eq!(mail.body.trim_end(), s(message, "body").trim_end(), "{mail:?}");
}

#[test]
fn a_reclaim_for_price_mails_the_owner_and_waits_unread_in_the_inbox() {
    let smtp_dir = tempfile::tempdir().expect("temp dir");
    let mut smtp = MailServer::stopped(smtp_dir.path());
    smtp.start();
    let c = cluster!(&format!("{TEST_CONFIG}{}", smtp.config()));
    let _host = c.agent(&c.write_profile("mail-host", "NVIDIA H100 80GB HBM3", 4, 64, 256));
    let (alice, bob) = (account(&c, "alice"), account(&c, "bob"));
    alice.pay(&c.api, "100.00");
    let mut stream = EventStream::open(&alice.api, Some(0));
    let script = format!("{GUEST_PROLOGUE}exec sleep 120");
    let cheap = alice.api.create(&spot("cheap", &["H100"], 1, "0.30", &sh(&script)));
    let id = s(&cheap, "id").to_owned();
    c.wait_state(&id, "running");
    // Filling the pool lifts the market price above the cheap bid: reclaimed after the hold.
    let filler = c.api.create(&spot("filler", &["H100"], 3, "1.00", &sh("exec sleep 120")));
    c.wait_state(s(&filler, "id"), "running");
    let noticed = c.wait_state_within(&id, "termination_scheduled", Duration::from_secs(40));
    assert_eq!(s(&noticed, "termination_reason"), "reclaimed_price", "{noticed}");
    let when = in_words(s(&noticed, "termination_time"));

    let mail = smtp.wait_for(MAIL, "Instance cheap will be terminated");
    for needle in [id.as_str(), "reclaimed_price", "market price", &when, "back up your data"] {
        assert!(mail.body.contains(needle), "the mail lacks {needle:?}: {}", mail.body);
    }
    assert!(mail.header("Subject").contains(&when), "{mail:?}");
    let unread = inbox(&alice, true);
    let message = unread.iter().find(|m| s(m, "instance_id") == id).cloned();
    let message = message.unwrap_or_else(|| panic!("no unread message for {id}: {unread:?}"));
    assert_eq!(message["read"], false, "{message}");
    assert_mail_is_the_message(&mail, &message, "alice@example.com");
    let event =
        stream.wait_for(SOON, "termination_scheduled", |e| e.is("termination_scheduled", &id));
    assert_eq!(event.body["message"], message["body"], "the event carries the text");

    let mid = s(&message, "id").to_owned();
    let read_path = format!("/v1/messages/{mid}/read");
    assert_error(&bob.api.post(&read_path, &json!({})), 404, None, "bob reads alice's message");
    let others = inbox(&bob, false);
    assert!(others.iter().all(|m| s(m, "id") != mid), "bob sees alice's message: {others:?}");
    let path = format!("/v1/messages?account_id={}", alice.id);
    assert_error(&bob.api.get(&path), 403, None, "bob asks for alice's inbox");
    let (status, read) = alice.api.post(&read_path, &json!({}));
    assert_eq!((status, &read["read"]), (200, &json!(true)), "{read}");
    assert!(inbox(&alice, true).iter().all(|m| s(m, "id") != mid), "still unread");
    let all = inbox(&alice, false);
    let kept = all.iter().find(|m| s(m, "id") == mid).expect("the read message is kept");
    assert_eq!(kept["read"], true, "{kept}");
    let admin_view = c.api.get_ok(&path);
    assert!(admin_view.as_array().is_some_and(|l| l.iter().any(|m| s(m, "id") == mid)));
}

#[test]
fn an_overdue_account_is_told_to_pay_and_a_payment_cancels_the_shutdown() {
    let smtp_dir = tempfile::tempdir().expect("temp dir");
    let mut smtp = MailServer::stopped(smtp_dir.path());
    smtp.start();
    let timers = config_with_timers(&[("hold_period", "60s"), ("overdue_grace", "8s")]);
    let c = cluster!(&format!("{timers}{}", smtp.config()));
    let _host = c.agent(&c.write_profile("mail-host", "NVIDIA H100 80GB HBM3", 2, 32, 128));
    let late = account(&c, "late");
    let script = format!("{GUEST_PROLOGUE}exec sleep 120");
    let created = late.api.create(&spot("spot", &["H100"], 1, "1.00", &sh(&script)));
    let id = s(&created, "id").to_owned();
    let noticed = c.wait_state_within(&id, "termination_scheduled", Duration::from_secs(30));
    assert_eq!(s(&noticed, "termination_reason"), "overdue", "{noticed}");

    let overdue = smtp.wait_for(MAIL, "is overdue: pay within");
    assert!(overdue.header("Subject").contains("Account late"), "{overdue:?}");
    let deadline = in_words(s(&late.show(), "overdue_deadline"));
    assert!(overdue.body.contains("Pay within"), "{}", overdue.body);
    assert!(overdue.body.contains(&deadline), "no {deadline} in {}", overdue.body);
    wait_message(&late, "is overdue");

    late.pay(&c.api, "5.00");
    let settled = smtp.wait_for(MAIL, "Payment received");
    assert!(settled.body.contains("cancelled"), "{}", settled.body);
    smtp.wait_for(MAIL, "The termination of instance spot is cancelled");
    let message = wait_message(&late, "Payment received");
    assert_mail_is_the_message(&settled, &message, "late@example.com");
    assert_eq!(s(&c.api.instance(&id), "state"), "running");
}

/// A request that fails at once (the H100 pool has no host), making one message.
fn failing_request(account: &Account, name: &str) -> Value {
    let mut body = request(name, &["H100"], 1, &sh("exec sleep 60"));
    body["on_unavailable"] = json!("fail");
    account.api.create(&body)
}

#[test]
fn mail_held_back_by_a_down_server_arrives_once_also_across_a_restart() {
    let smtp_dir = tempfile::tempdir().expect("temp dir");
    let mut smtp = MailServer::stopped(smtp_dir.path());
    let mut c = cluster!(&format!("{TEST_CONFIG}{}", smtp.config()));
    let carol = account(&c, "carol");

    failing_request(&carol, "first");
    let first = wait_message(&carol, "Request first failed");
    assert!(s(&first, "body").contains("out_of_stock"), "{first}");
    let first_id = s(&first, "id").to_owned();
    // Several attempts fail while the server is down; the mail waits.
    wait_until(SOON, "the coordinator to log a failed attempt", || {
        let log = c.coordinator.log_tail();
        holds(log.contains("mail not sent"), || log)
    });
    assert_eq!(s(&first, "mail"), "pending", "{first}");
    smtp.start();
    let mail = smtp.wait_for(MAIL, "Request first failed");
    let first_mail_id = mail.header("Message-ID").to_owned();
    wait_mail_state(&carol, &first_id, "sent");
    assert_eq!(smtp.count_with_id(&first_mail_id), 1, "mailed once");

    smtp.stop();
    failing_request(&carol, "second");
    let second = wait_message(&carol, "Request second failed");
    c.coordinator.kill();
    smtp.start();
    c.coordinator.restart();
    let mail = smtp.wait_for(MAIL, "Request second failed");
    wait_mail_state(&carol, s(&second, "id"), "sent");
    assert_eq!(smtp.count_with_id(mail.header("Message-ID")), 1, "mailed once after a restart");
    assert_eq!(smtp.count_with_id(&first_mail_id), 1, "the first is not sent again");
    assert_eq!(smtp.mails().len(), 2, "{:?}", smtp.mails());
}
