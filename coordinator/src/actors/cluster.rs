//! The cluster actor: owns the core state machine, commits what each operation changed
//! through the store writer, and sends agent messages only after that commit. It reads the
//! wall clock once per message ([`ClusterActor::tick`]); one alarm drives the core's
//! deadlines and periodic jobs (`wakeup`).

use super::failure::Failure;
use super::messages::{AgentEvent, ApiRequest};
use crate::core::Cluster;
use crate::core::agents::Hello;
use crate::core::cluster::Event;
use crate::core::events::EventKind;
use crate::gateway::Gateway;
use crate::metrics::METRICS;
use crate::store::writer::Writer;
use actix::{Actor, ActorContext, Context, Handler, ResponseFuture};
use chrono::{DateTime, Utc};
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage};
use gpuspot_common::{Clock, HostId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::sync::mpsc::UnboundedSender;

/// Notices awaiting their agent's word before old ones are dropped.
const MAX_PENDING_NOTICES: usize = 100_000;

struct Link {
    id: u64,
    outbox: UnboundedSender<Box<CoordinatorMessage>>,
}

pub struct ClusterActor {
    pub(super) core: Cluster,
    writer: Writer,
    clock: Arc<dyn Clock>,
    /// The wall clock as read when this message's handling began ([`ClusterActor::tick`]):
    /// the `now` everything the message does passes to the core.
    pub(super) now: DateTime<Utc>,
    links: HashMap<HostId, Link>,
    /// Committed events, for the SSE stream and webhooks.
    events: broadcast::Sender<Event>,
    pub(super) alarm: super::wakeup::Alarm,
    /// The serving gateway, told of every endpoint change (docs/contracts.md#serving).
    gateway: Option<Arc<Gateway>>,
    /// When each notice not yet shown on its guest's socket was decided (notice latency).
    notices_pending: HashMap<gpuspot_common::InstanceId, std::time::Instant>,
}

impl ClusterActor {
    pub fn new(
        core: Cluster,
        writer: Writer,
        clock: Arc<dyn Clock>,
        events: broadcast::Sender<Event>,
    ) -> Self {
        Self {
            core,
            writer,
            clock,
            // Until the first message's tick (`started` ticks before anything else).
            now: DateTime::UNIX_EPOCH,
            links: HashMap::new(),
            events,
            alarm: Default::default(),
            gateway: None,
            notices_pending: HashMap::new(),
        }
    }

    /// Routes the gateway by this cluster's endpoints and scales on its request counts.
    pub fn with_gateway(mut self, gateway: Arc<Gateway>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Publishes the routes when an endpoint may have changed (before the commit, so a
    /// replica leaves the rotation before its agent is told to stop it).
    fn publish_routes(&mut self) {
        if self.core.take_routes_changed()
            && let Some(gateway) = &self.gateway
        {
            gateway.publish(self.core.routes());
        }
    }

    /// Counts the events and notes when each notice was decided (now: in this handler).
    fn note_notices(&mut self, events: &[Event]) {
        METRICS.observe_events(events);
        let now = std::time::Instant::now();
        let noticed = events.iter().filter(|e| e.kind == EventKind::TerminationScheduled);
        for id in noticed.filter_map(|e| e.instance_id.clone()) {
            self.notices_pending.insert(id, now);
        }
        // Agents that never answer (gone, older) must not grow this without bound.
        if self.notices_pending.len() > MAX_PENDING_NOTICES {
            let cutoff = std::time::Duration::from_secs(600);
            self.notices_pending.retain(|_, at| at.elapsed() < cutoff);
        }
    }

    /// The one place the actor reads the wall clock: at the start of each message, which
    /// then passes this `now` to the core.
    pub(super) fn tick(&mut self) -> DateTime<Utc> {
        self.now = self.clock.now();
        self.now
    }

    /// Runs what the core has due by now. The gateway's request counters are read only
    /// when the autoscaler looks (docs/contracts.md#serving).
    pub(super) fn handle_timeout(&mut self) {
        let now = self.tick();
        if let Some(gateway) = &self.gateway
            && self.core.autoscale_due(now)
        {
            self.core.observe_requests(gateway.request_counts());
        }
        self.core.handle_timeout(now);
    }

    /// Commits the core's outbox; its messages go out once the commit is durable.
    pub(super) fn flush(&mut self) -> impl Future<Output = Result<(), Failure>> + use<> {
        let mut changes = self.core.take_changes();
        self.publish_routes();
        self.note_notices(&changes.events);
        let sends: Vec<(UnboundedSender<Box<CoordinatorMessage>>, CoordinatorMessage)> =
            std::mem::take(&mut changes.sends)
                .into_iter()
                .filter_map(|(host, message)| {
                    Some((self.links.get(&host)?.outbox.clone(), message))
                })
                .collect();
        let events = changes.events.clone();
        let broadcast = self.events.clone();
        let done = self.writer.submit(
            changes,
            Box::new(move || {
                for (outbox, message) in sends {
                    let _ = outbox.send(Box::new(message));
                }
                for event in events {
                    let _ = broadcast.send(event);
                }
            }),
        );
        async move { done.await.map_err(Failure::from) }
    }

    fn on_agent_message(&mut self, host_id: &HostId, message: AgentMessage) {
        let now = self.now;
        match message {
            AgentMessage::Heartbeat { gpus } => self.core.heartbeat(host_id, &gpus, now),
            AgentMessage::SnapshotSaved { instance_id, result } => {
                self.core.snapshot_saved(&instance_id, result, now)
            }
            AgentMessage::InstanceUpdate(report) => {
                self.core.instance_update(host_id, &report, now)
            }
            AgentMessage::StartRefused { instance_id, code, reason } => {
                tracing::info!(%host_id, %instance_id, %reason, "the agent refused a start");
                self.core.start_refused(host_id, &instance_id, code, now)
            }
            AgentMessage::Readiness { instance_id, ready } => {
                self.core.set_readiness(host_id, &instance_id, ready)
            }
            AgentMessage::Faults(note) => self.core.fault_note(host_id, &note, now),
            AgentMessage::NoticeShown { instance_id } => {
                if let Some(decided) = self.notices_pending.remove(&instance_id) {
                    METRICS.notice_latency.observe(decided.elapsed().as_secs_f64());
                }
            }
            other => {
                tracing::warn!(%host_id, message = ?std::mem::discriminant(&other), "unexpected message after hello; ignored")
            }
        }
    }
}

impl Actor for ClusterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX);
        // Everything due at start runs before the first request is answered: the market's
        // first pass, and retention of what a data dir held past its time
        // (docs/contracts.md#retention).
        self.handle_timeout();
        drop(self.flush());
        self.arm_alarm(ctx);
    }
}

impl Handler<ApiRequest> for ClusterActor {
    type Result = ResponseFuture<()>;

    /// Reads are answered inside `answer`; a write's answer waits for its commit, which
    /// runs outside the actor so that the next message need not wait for the disk.
    fn handle(&mut self, request: ApiRequest, ctx: &mut Context<Self>) -> Self::Result {
        self.tick();
        let Some(deferred) = self.answer(request) else {
            return Box::pin(std::future::ready(()));
        };
        let committed = self.flush();
        self.arm_alarm(ctx);
        Box::pin(async move { deferred(committed.await) })
    }
}

/// The coordinator is stopping: the actor commits what it has and takes nothing more, so
/// that agents dropping off as the listener closes are not counted as lost hosts.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for ClusterActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let committed = self.flush();
        ctx.stop();
        Box::pin(async move {
            if let Err(error) = committed.await {
                tracing::warn!(?error, "the last commit before shutdown failed");
            }
        })
    }
}

impl Handler<AgentEvent> for ClusterActor {
    type Result = ();

    fn handle(&mut self, event: AgentEvent, ctx: &mut Context<Self>) {
        let now = self.tick();
        let Some(event) = self.turn_away_forgotten(event) else {
            return;
        };
        match event {
            AgentEvent::Connected {
                host_id,
                link_id,
                outbox,
                inventory,
                agent_version,
                runtimes,
                network,
                reports,
            } => {
                self.links.insert(host_id.clone(), Link { id: link_id, outbox });
                let hello = Hello {
                    inventory: &inventory,
                    agent_version: &agent_version,
                    runtimes: &runtimes,
                    network: Some(network),
                };
                self.core.host_said_hello(&host_id, hello, &reports, now);
            }
            AgentEvent::Message { host_id, link_id, message } => {
                if self.links.get(&host_id).is_some_and(|l| l.id == link_id) {
                    self.on_agent_message(&host_id, message);
                }
            }
            AgentEvent::Disconnected { host_id, link_id } => {
                if self.links.get(&host_id).is_some_and(|l| l.id == link_id) {
                    self.links.remove(&host_id);
                    self.core.host_disconnected(&host_id, now);
                }
            }
        }
        drop(self.flush());
        self.arm_alarm(ctx);
    }
}
