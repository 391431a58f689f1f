//! What the cluster has to say once its changes are durable: events (numbered in order),
//! the inbox messages some of them make, messages for hosts, and which hosts changed. Taken whole by `Cluster::take_changes`.

use super::events::EventData;
use super::events::{Event, EventKind};
use super::instance::Instance;
use super::notices::{self, Message};
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::CoordinatorMessage;
use gpuspot_common::{AccountId, HostId};
use std::collections::BTreeSet;

/// A message to send to a host once the changes that led to it are durable.
pub type Send = (HostId, CoordinatorMessage);

#[derive(Debug)]
pub struct Outbox {
    next_event_id: u64,
    pub(super) events: Vec<Event>,
    pub(super) messages: Vec<Message>,
    pub(super) sends: Vec<Send>,
    pub(super) dirty_hosts: BTreeSet<HostId>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            next_event_id: 1,
            events: Vec::new(),
            messages: Vec::new(),
            sends: Vec::new(),
            dirty_hosts: BTreeSet::new(),
        }
    }
}

/// Whom an event is about.
#[derive(Clone, Copy, Debug, Default)]
pub struct About<'a> {
    pub instance: Option<&'a Instance>,
    pub host: Option<&'a HostId>,
    pub account: Option<&'a AccountId>,
}

impl Outbox {
    /// Event ids continue after the last one a previous run committed.
    pub fn continue_after(&mut self, last_event_id: u64) {
        self.next_event_id = last_event_id + 1;
    }

    pub fn event(
        &mut self,
        now: DateTime<Utc>,
        kind: EventKind,
        about: About<'_>,
        data: EventData,
    ) {
        let instance = about.instance;
        let mut event = Event {
            id: self.next_event_id,
            at: now,
            kind,
            account_id: about.account.or(instance.map(|i| &i.account_id)).cloned(),
            instance_id: instance.map(|i| i.id.clone()),
            host_id: about.host.or_else(|| instance.and_then(|i| i.host_id())).cloned(),
            data,
            subject: None,
            message: None,
        };
        self.next_event_id += 1;
        if let Some(notice) = notices::compose(&event, instance) {
            event.subject = Some(notice.subject.clone());
            event.message = Some(notice.body.clone());
            self.messages.extend(Message::for_event(&event, notice));
        }
        self.events.push(event);
    }

    pub fn send(&mut self, host: &HostId, message: CoordinatorMessage) {
        self.sends.push((host.clone(), message));
    }

    pub fn touch_host(&mut self, id: &HostId) {
        self.dirty_hosts.insert(id.clone());
    }
}
