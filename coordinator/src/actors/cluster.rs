//! The cluster actor: owns the core state machine, commits what each operation changed
//! through the store writer, and sends agent messages only after that commit. A periodic
//! timer drives the core's deadlines (lost hosts).

use super::messages::{AgentEvent, ApiError, ApiReply, ApiRequest, PoolView, Scope};
use crate::core::cluster::Event;
use crate::core::lifecycle::LifecycleError;
use crate::core::{Cluster, Instance, pools};
use crate::store::Batch;
use crate::store::writer::Writer;
use actix::{Actor, AsyncContext, Context, Handler, ResponseFuture};
use gpuspot_common::inventory::model_matches;
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage};
use gpuspot_common::{Clock, HostId, InstanceId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::sync::mpsc::UnboundedSender;

/// Granularity of deadlines (terminations, lost hosts).
const TICK: Duration = Duration::from_millis(100);

struct Link {
    id: u64,
    outbox: UnboundedSender<CoordinatorMessage>,
}

pub struct ClusterActor {
    core: Cluster,
    writer: Writer,
    clock: Arc<dyn Clock>,
    links: HashMap<HostId, Link>,
    /// Committed events, for the SSE stream and webhooks.
    events: broadcast::Sender<Event>,
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
            links: HashMap::new(),
            events,
        }
    }

    /// Commits the core's outbox; its messages go out once the commit is durable.
    fn flush(&mut self) -> impl Future<Output = Result<(), ApiError>> + use<> {
        let changes = self.core.take_changes();
        let sends: Vec<(UnboundedSender<CoordinatorMessage>, CoordinatorMessage)> = changes
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
            events: changes.events,
            price_points: changes.price_points,
            prune_prices_before,
        };
        let done = self.writer.submit(
            batch,
            Box::new(move || {
                for (outbox, message) in sends {
                    let _ = outbox.send(message);
                }
                for event in events {
                    let _ = broadcast.send(event);
                }
            }),
        );
        async move { done.await.map_err(|e| ApiError::Store(e.to_string())) }
    }

    fn visible(&self, scope: &Scope, id: &InstanceId) -> Result<&Instance, ApiError> {
        self.core
            .instance(id)
            .filter(|i| scope.may_see(&i.account_id))
            .ok_or_else(|| ApiError::NotFound(format!("instance {id}")))
    }

    /// Answers requests that only read; `None` for the ones that change state.
    fn read(&self, request: &ApiRequest) -> Option<Result<ApiReply, ApiError>> {
        Some(match request {
            ApiRequest::GetInstance { scope, id } => self
                .visible(scope, id)
                .map(|i| ApiReply::Instance(Box::new(i.clone()))),
            ApiRequest::ListInstances { scope } => {
                let mut list: Vec<Instance> = self
                    .core
                    .instances()
                    .filter(|i| scope.may_see(&i.account_id))
                    .cloned()
                    .collect();
                list.sort_by_key(|i| i.seq);
                Ok(ApiReply::Instances(list))
            }
            ApiRequest::ListHosts => Ok(ApiReply::Hosts(
                self.core.registry().iter().cloned().collect(),
            )),
            ApiRequest::GetHost { id } => self
                .core
                .registry()
                .get(id)
                .map(|h| ApiReply::Host(Box::new(h.clone())))
                .ok_or_else(|| ApiError::NotFound(format!("host {id}"))),
            ApiRequest::Pools => Ok(ApiReply::Pools(self.pool_views())),
            ApiRequest::KnownModel { model } => Ok(ApiReply::Known(
                self.core
                    .pools()
                    .iter()
                    .any(|p| model_matches(model, &p.model) || model_matches(&p.model, model))
                    || self.core.registry().iter().any(|h| {
                        h.units
                            .iter()
                            .any(|u| model_matches(model, &u.unit.gpu.model))
                    }),
            )),
            ApiRequest::CreateInstance { .. }
            | ApiRequest::DeleteInstance { .. }
            | ApiRequest::ChangeInstance { .. } => return None,
        })
    }

    fn pool_views(&self) -> Vec<PoolView> {
        self.core
            .pools()
            .iter()
            .map(|settings| {
                let usage = pools::usage(self.core.registry(), &settings.model);
                let market_price = pools::surplus_price(settings, &usage);
                PoolView {
                    settings: settings.clone(),
                    usage,
                    market_price,
                }
            })
            .collect()
    }

    fn write(&mut self, request: ApiRequest) -> Result<ApiReply, ApiError> {
        let now = self.clock.now();
        let id = match request {
            ApiRequest::CreateInstance { account, request } => {
                self.core.create_instance(account, request, now)
            }
            ApiRequest::DeleteInstance { scope, id } => {
                self.visible(&scope, &id)?;
                self.core
                    .delete_instance(&id, now)
                    .map_err(lifecycle_error)?;
                id
            }
            ApiRequest::ChangeInstance {
                scope,
                id,
                name,
                env,
                resize,
            } => {
                self.visible(&scope, &id)?;
                self.core
                    .change_instance(&id, name, env, resize, now)
                    .map_err(lifecycle_error)?;
                id
            }
            other => unreachable!("{other:?} is answered by read()"),
        };
        self.visible(&Scope::Admin, &id)
            .map(|i| ApiReply::Instance(Box::new(i.clone())))
    }

    fn on_agent_message(&mut self, host_id: &HostId, message: AgentMessage) {
        let now = self.clock.now();
        match message {
            AgentMessage::Heartbeat { gpus } => self.core.heartbeat(host_id, &gpus, now),
            AgentMessage::InstanceUpdate(report) => {
                self.core.instance_update(host_id, &report, now)
            }
            other => {
                tracing::warn!(%host_id, message = ?std::mem::discriminant(&other), "unexpected message after hello; ignored")
            }
        }
    }
}

fn lifecycle_error(error: LifecycleError) -> ApiError {
    match error {
        LifecycleError::UnknownInstance(_) => ApiError::NotFound(error.to_string()),
        LifecycleError::Conflict(message) => ApiError::Conflict(message),
    }
}

impl Actor for ClusterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(usize::MAX);
        ctx.run_interval(TICK, |actor, _| {
            actor.core.tick(actor.clock.now());
            drop(actor.flush());
        });
        let market = |actor: &mut Self, _: &mut Context<Self>| {
            actor.core.market_tick(actor.clock.now());
            drop(actor.flush());
        };
        market(self, ctx);
        ctx.run_interval(self.core.timers().price_tick, market);
    }
}

impl Handler<ApiRequest> for ClusterActor {
    type Result = ResponseFuture<Result<ApiReply, ApiError>>;

    fn handle(&mut self, request: ApiRequest, _: &mut Context<Self>) -> Self::Result {
        if let Some(answer) = self.read(&request) {
            return Box::pin(async move { answer });
        }
        let reply = self.write(request);
        let committed = self.flush();
        Box::pin(async move {
            committed.await?;
            reply
        })
    }
}

impl Handler<AgentEvent> for ClusterActor {
    type Result = ();

    fn handle(&mut self, event: AgentEvent, _: &mut Context<Self>) {
        let now = self.clock.now();
        match event {
            AgentEvent::Connected {
                host_id,
                link_id,
                outbox,
                inventory,
                agent_version,
                reports,
            } => {
                self.links.insert(
                    host_id.clone(),
                    Link {
                        id: link_id,
                        outbox,
                    },
                );
                self.core
                    .host_connected(&host_id, &inventory, &agent_version, &reports, now);
            }
            AgentEvent::Message {
                host_id,
                link_id,
                message,
            } => {
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
    }
}
