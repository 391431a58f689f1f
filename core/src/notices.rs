//! Messages for a person (docs/contracts.md#messages, seeds 000 and 001): which events deserve one,
//! and its subject and body in words — which instance, what happens, when, what to do. A message is
//! composed when its event is recorded, committed with it into the account's inbox, and mailed from
//! there by the mail outbox (the coordinator's `mail`).

use super::events::{Event, EventData, EventKind};
use super::instance::Instance;
use super::model::EndReason;
use chrono::{DateTime, Utc};
use gpuspot_common::{AccountId, InstanceId};
use serde::{Deserialize, Serialize};

/// What a person is told: a subject line and a plain-text body.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub subject: String,
    pub body: String,
}

/// A message in an account's inbox, and where it is to be mailed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub account_id: AccountId,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub body: String,
    pub instance_id: Option<InstanceId>,
    pub read: bool,
    /// The event it tells of.
    pub event_id: u64,
    /// The address it is mailed to; `None`: the inbox only (no email, or no `[smtp]`).
    #[serde(default)]
    pub mail_to: Option<String>,
    /// Where its mail stands (kept by the store; the inbox shows it).
    #[serde(default)]
    pub mail: MailState,
}

/// Where a message's mail stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    /// Not to be mailed: the account has no email, or the coordinator no `[smtp]`.
    #[default]
    None,
    /// Waiting for the mail server (first attempt or a retry).
    Pending,
    /// Accepted by the mail server.
    Sent,
    /// Refused by the mail server for good.
    Failed,
}

impl MailState {
    pub fn as_str(self) -> &'static str {
        match self {
            MailState::None => "none",
            MailState::Pending => "pending",
            MailState::Sent => "sent",
            MailState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> MailState {
        match text {
            "pending" => MailState::Pending,
            "sent" => MailState::Sent,
            "failed" => MailState::Failed,
            _ => MailState::None,
        }
    }
}

impl Message {
    /// The inbox entry for `event`, if the event has an owner and deserves a message.
    pub fn for_event(event: &Event, notice: Notice) -> Option<Message> {
        Some(Message {
            id: format!("m-{}", event.id),
            account_id: event.account_id.clone()?,
            at: event.at,
            subject: notice.subject,
            body: notice.body,
            instance_id: event.instance_id.clone(),
            read: false,
            event_id: event.id,
            mail_to: None,
            mail: MailState::None,
        })
    }
}

/// The message `event` deserves, if any; `instance` is the one it is about, as it is now.
pub fn compose(event: &Event, instance: Option<&Instance>) -> Option<Notice> {
    use EventKind::*;
    match event.kind {
        TerminationScheduled => instance.map(|i| termination_scheduled(event, i)),
        TerminationCancelled => instance.map(termination_cancelled),
        InstanceTerminated => instance.and_then(|i| terminated_by_system(event, i)),
        InstanceFailed => instance.map(|i| request_failed(event, i)),
        AccountOverdue => Some(account_overdue(event)),
        AccountSettled => Some(account_settled(event)),
        AccountOverdueShutdown => Some(overdue_shutdown(event)),
        _ => None,
    }
}

fn termination_scheduled(event: &Event, instance: &Instance) -> Notice {
    let reason = reason_of(&event.data);
    let when = termination_time(&event.data).or(instance.termination_time());
    let (at, left) = match when {
        Some(at) => (words_for_time(at), duration_in_words(at - event.at)),
        None => ("its notice time".to_owned(), "soon".to_owned()),
    };
    let snapshot = if instance.request.snapshot.enabled {
        "\nA snapshot of its /data is taken before it stops."
    } else {
        ""
    };
    let what = describe(instance);
    Notice {
        subject: format!("Instance {} will be terminated at {at}", instance.request.name),
        body: format!(
            "Your instance {what} will be terminated at {at}, in {left}, {why} ({code}).\n\
             Please back up your data before then.{snapshot}\n{after}",
            why = why_ending(reason, instance),
            code = reason.map_or("unknown", EndReason::as_str),
            after = replacement(instance),
        ),
    }
}

fn termination_cancelled(instance: &Instance) -> Notice {
    Notice {
        subject: format!("The termination of instance {} is cancelled", instance.request.name),
        body: format!(
            "The termination scheduled for your instance {} is cancelled: the payment \
             brought the account's balance back above zero. It keeps running.\n",
            describe(instance)
        ),
    }
}

/// Only endings the owner did not ask for and the workload did not choose.
fn terminated_by_system(event: &Event, instance: &Instance) -> Option<Notice> {
    let reason = reason_of(&event.data)?;
    if matches!(reason, EndReason::User | EndReason::Exited | EndReason::Failed) {
        return None;
    }
    let detail = detail_of(&event.data).map(|d| format!("\nDetail: {d}")).unwrap_or_default();
    Some(Notice {
        subject: format!("Instance {} was terminated", instance.request.name),
        body: format!(
            "Your instance {} was terminated at {} {} ({}).{detail}\n{}",
            describe(instance),
            words_for_time(event.at),
            why_ending(Some(reason), instance),
            reason.as_str(),
            replacement(instance),
        ),
    })
}

fn request_failed(event: &Event, instance: &Instance) -> Notice {
    let cause = detail_of(&event.data).unwrap_or("no cause was given");
    Notice {
        subject: format!("Request {} failed", instance.request.name),
        body: format!(
            "Your request {} failed at {}: {cause}.\nNothing of it runs and nothing more is \
             charged for it; submit it again when the cause is gone.\n",
            describe(instance),
            words_for_time(event.at),
        ),
    }
}

fn account_overdue(event: &Event) -> Notice {
    let (name, balance, deadline) = account_of(&event.data);
    let within = deadline.map_or("a few minutes".into(), |d| duration_in_words(d - event.at));
    let by = deadline.map_or(String::new(), |d| format!(", by {}", words_for_time(d)));
    Notice {
        subject: format!("Account {name} is overdue: pay within {within}"),
        body: format!(
            "The balance of account {name} is {balance}, below zero.\nPay within {within}{by}, \
             or every running instance of the account is shut down and its queued requests \
             are cancelled. Please back up your data now.\n"
        ),
    }
}

fn account_settled(event: &Event) -> Notice {
    let (name, balance, _) = account_of(&event.data);
    Notice {
        subject: format!("Payment received: the shutdown of account {name} is cancelled"),
        body: format!(
            "Account {name} is no longer overdue: its balance is {balance}. The shutdown \
             scheduled for the overdue payment is cancelled and its instances keep running.\n"
        ),
    }
}

fn overdue_shutdown(event: &Event) -> Notice {
    let (name, balance, _) = account_of(&event.data);
    Notice {
        subject: format!("Account {name} was shut down for an overdue payment"),
        body: format!(
            "Account {name} was not paid in time: at {} its running instances were \
             terminated and its queued requests cancelled. Its balance is {balance}; pay to \
             start instances again.\n",
            words_for_time(event.at)
        ),
    }
}

fn describe(instance: &Instance) -> String {
    format!("{} ({})", instance.request.name, instance.id)
}

fn replacement(instance: &Instance) -> String {
    match &instance.owner {
        Some(owner) => format!(
            "It belongs to deployment {}, which starts a replacement if it still needs one.\n",
            owner.deployment_id
        ),
        None => String::new(),
    }
}

/// Why an instance ends, as the end of a sentence.
fn why_ending(reason: Option<EndReason>, instance: &Instance) -> String {
    let max_price = match &instance.request.billing {
        super::model::Billing::Spot { max_price } => format!(" of {max_price}"),
        super::model::Billing::Regular => String::new(),
    };
    match reason {
        Some(EndReason::ReclaimedPrice) => {
            format!("because the market price rose above your maximum price{max_price}")
        }
        Some(EndReason::ReclaimedCapacity) => {
            "because its capacity is reclaimed for a request that outranks it".into()
        }
        Some(EndReason::Overdue) => "because the account's payment is overdue".into(),
        Some(EndReason::HostMaintenance) => "because its host is taken down for maintenance".into(),
        Some(EndReason::HostLost) => "because its host stopped answering".into(),
        Some(EndReason::User) => "because it was asked to stop".into(),
        Some(EndReason::Drill) => "in a drill: an interruption rehearsed on request".into(),
        Some(EndReason::GpuFault) => {
            "because its GPU failed; it is not charged from the fault on".into()
        }
        Some(EndReason::Exited | EndReason::Failed) | None => "by the system".into(),
    }
}

fn reason_of(data: &EventData) -> Option<EndReason> {
    EndReason::parse(data.reason()?)
}

fn detail_of(data: &EventData) -> Option<&str> {
    match data {
        EventData::Ended(ended) => Some(ended.detail.as_str()).filter(|d| !d.is_empty()),
        _ => None,
    }
}

fn termination_time(data: &EventData) -> Option<DateTime<Utc>> {
    match data {
        EventData::Noticed(noticed) => Some(noticed.termination_time),
        _ => None,
    }
}

/// The account's name, balance and overdue deadline, as its events tell them.
fn account_of(data: &EventData) -> (&str, String, Option<DateTime<Utc>>) {
    let (name, balance, deadline) = match data {
        EventData::AccountNews(a) => (&a.name, a.balance, a.overdue_deadline),
        EventData::PaymentNews(a) => (&a.name, a.balance, a.overdue_deadline),
        EventData::OverdueShutdown(a) => (&a.name, a.balance, a.overdue_deadline),
        _ => return ("(unnamed)", "unknown".into(), None),
    };
    (name, balance.to_string(), deadline)
}

/// `2026-12-02 10:30:00 UTC`.
pub fn words_for_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `30 minutes`, `1 hour 5 minutes`, `2 seconds`: the largest unit and the next one below
/// it (when not zero), rounded down; a span under a second is `1 second`.
pub fn duration_in_words(span: chrono::Duration) -> String {
    let mut seconds = span.num_seconds().max(0);
    if span.num_milliseconds() > 0 && seconds == 0 {
        seconds = 1;
    }
    let units = [(86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")];
    let Some(first) = units.iter().position(|&(size, _)| seconds >= size) else {
        return "0 seconds".into();
    };
    let parts: Vec<String> = units[first..]
        .iter()
        .take(2)
        .filter_map(|&(size, name)| {
            let count = seconds / size;
            seconds %= size;
            (count > 0).then(|| format!("{count} {name}{}", if count == 1 { "" } else { "s" }))
        })
        .collect();
    parts.join(" ")
}
