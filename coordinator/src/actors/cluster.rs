//! The cluster actor: owns the core state machine, commits what each operation changed
//! through the store writer, and sends agent messages only after that commit. A periodic
//! timer drives the core's deadlines (lost hosts).

use super::messages::{AgentEvent, ApiError, ApiReply, ApiRequest};
use crate::core::Cluster;
use crate::core::cluster::Event;
use crate::store::Batch;
use crate::store::writer::Writer;
use actix::{Actor, Context, Handler, ResponseFuture};
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage};
use gpuspot_common::{Clock, HostId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::sync::mpsc::UnboundedSender;

struct Link {
    id: u64,
    outbox: UnboundedSender<Box<CoordinatorMessage>>,
}

pub struct ClusterActor {
    pub(super) core: Cluster,
    writer: Writer,
    pub(super) clock: Arc<dyn Clock>,
    links: HashMap<HostId, Link>,
    /// Committed events, for the SSE stream and webhooks.
    events: broadcast::Sender<Event>,
    pub(super) alarm: super::wakeup::Alarm,
}

impl ClusterActor {
    pub fn new(
        core: Cluster,
        writer: Writer,
        clock: Arc<dyn Clock>,
        events: broadcast::Sender<Event>,
    ) -> Self {
        Self { core, writer, clock, links: HashMap::new(), events, alarm: Default::default() }
    }

    /// Commits the core's outbox; its messages go out once the commit is durable.
    pub(super) fn flush(&mut self) -> impl Future<Output = Result<(), ApiError>> + use<> {
        let changes = self.core.take_changes();
        let sends: Vec<(UnboundedSender<Box<CoordinatorMessage>>, CoordinatorMessage)> = changes
            .sends
            .into_iter()
            .filter_map(|(host, message)| Some((self.links.get(&host)?.outbox.clone(), message)))
            .collect();
        let retention = chrono::Duration::from_std(self.core.timers().price_history)
            .unwrap_or(chrono::Duration::MAX);
        let prune_prices_before =
            (!changes.price_points.is_empty()).then(|| self.clock.now() - retention);
        let events = changes.events.clone();
        let broadcast = self.events.clone();
        let batch = Batch {
            hosts: changes.hosts,
            instances: changes.instances,
            deployments: changes.deployments,
            snapshots: changes.snapshots,
            accounts: changes.accounts,
            ledger: changes.ledger,
            events: changes.events,
            price_points: changes.price_points,
            prune_prices_before,
            deleted_hosts: changes.removed_hosts,
        };
        let done = self.writer.submit(
            batch,
            Box::new(move || {
                for (outbox, message) in sends {
                    let _ = outbox.send(Box::new(message));
                }
                for event in events {
                    let _ = broadcast.send(event);
                }
            }),
        );
        async move { done.await.map_err(|e| ApiError::Store(e.to_string())) }
    }

    fn on_agent_message(&mut self, host_id: &HostId, message: AgentMessage) {
        let now = self.clock.now();
        match message {
            AgentMessage::Heartbeat { gpus } => self.core.heartbeat(host_id, &gpus, now),
            AgentMessage::SnapshotSaved { instance_id, result } => {
                self.core.snapshot_saved(&instance_id, result, now)
            }
            AgentMessage::InstanceUpdate(report) => {
                self.core.instance_update(host_id, &report, now)
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
        // A fresh start runs the market at once, as the first due time says.
        self.arm_alarm(ctx);
    }
}

impl Handler<ApiRequest> for ClusterActor {
    type Result = ResponseFuture<Result<ApiReply, ApiError>>;

    fn handle(&mut self, request: ApiRequest, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(answer) = self.read(&request) {
            return Box::pin(async move { answer });
        }
        let reply = self.write(request);
        let committed = self.flush();
        self.arm_alarm(ctx);
        Box::pin(async move {
            committed.await?;
            reply
        })
    }
}

impl Handler<AgentEvent> for ClusterActor {
    type Result = ();

    fn handle(&mut self, event: AgentEvent, ctx: &mut Context<Self>) {
        let Some(event) = self.turn_away_forgotten(event) else {
            return;
        };
        let now = self.clock.now();
        match event {
            AgentEvent::Connected {
                host_id,
                link_id,
                outbox,
                inventory,
                agent_version,
                runtimes,
                reports,
            } => {
                self.links.insert(host_id.clone(), Link { id: link_id, outbox });
                let (inventory, version) = (&inventory, &agent_version);
                self.core.host_connected(&host_id, inventory, version, &runtimes, &reports, now);
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
