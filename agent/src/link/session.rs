//! One authenticated session: hello, then commands in, reports, heartbeats and output out,
//! until the link fails. Frames are read by a separate task, because a half-read frame must
//! never be abandoned by a `select!`.

use super::{HostAgent, LinkError};
use gpuspot_common::codec;
use gpuspot_common::pki::HostCredentials;
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage, PROTOCOL_VERSION};
use std::time::Duration;
use tokio::sync::mpsc;

const LOG_POLL: Duration = Duration::from_millis(250);

pub async fn run(
    agent: &mut HostAgent,
    connection: &quinn::Connection,
    credentials: &HostCredentials,
) -> Result<(), LinkError> {
    let (mut send, recv) =
        connection.open_bi().await.map_err(|e| LinkError::Connection(e.to_string()))?;
    while let Ok(event) = agent.events.try_recv() {
        drop(agent.supervisor.on_exit(event));
    }
    let inventory = agent.discovery.inventory()?;
    let acknowledged = agent.supervisor.finished_ids();
    let hello = AgentMessage::Hello {
        version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        inventory,
        instances: agent.supervisor.reports(),
    };
    codec::write_frame(&mut send, &hello).await?;
    let mut inbox = spawn_reader(recv);
    let mut heartbeat = tokio::time::interval(agent.link_timeout / 3);
    let mut log_poll = tokio::time::interval(LOG_POLL);
    tracing::info!(host_id = %credentials.host_id, "session open");
    loop {
        tokio::select! {
            message = inbox.recv() => match message {
                Some(Ok(message)) => {
                    let outgoing = handle(agent, message, &acknowledged, &mut heartbeat)?;
                    write_all(&mut send, outgoing).await?;
                }
                Some(Err(e)) => return Err(e),
                None => return Err(LinkError::Connection("the coordinator closed the session".into())),
            },
            Some(event) = agent.events.recv() => {
                let mut outgoing = agent.supervisor.pending_logs(Some(&event.instance_id));
                outgoing.extend(agent.supervisor.on_exit(event).map(AgentMessage::InstanceUpdate));
                write_all(&mut send, outgoing).await?;
            }
            _ = heartbeat.tick() => {
                let gpus = agent.discovery.gpu_status().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "GPU status unavailable for this heartbeat");
                    Vec::new()
                });
                codec::write_frame(&mut send, &AgentMessage::Heartbeat { gpus }).await?;
            }
            _ = log_poll.tick() => write_all(&mut send, agent.supervisor.pending_logs(None)).await?,
        }
    }
}

fn handle(
    agent: &mut HostAgent,
    message: CoordinatorMessage,
    acknowledged: &std::collections::BTreeSet<gpuspot_common::InstanceId>,
    heartbeat: &mut tokio::time::Interval,
) -> Result<Vec<AgentMessage>, LinkError> {
    let reports = match message {
        CoordinatorMessage::Welcome { desired, heartbeat_interval_ms, .. } => {
            let every = Duration::from_millis(heartbeat_interval_ms.max(100));
            *heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            agent.supervisor.reconcile(desired, acknowledged)
        }
        CoordinatorMessage::Start(assignment) => {
            agent.supervisor.start(assignment).into_iter().collect()
        }
        CoordinatorMessage::Stop { instance_id, kill_timeout_ms, .. } => {
            agent.supervisor.stop(&instance_id, Duration::from_millis(kill_timeout_ms));
            Vec::new()
        }
        CoordinatorMessage::Metadata(metadata) => {
            agent.supervisor.set_metadata(metadata);
            Vec::new()
        }
        CoordinatorMessage::Refused { reason } => {
            if reason.contains("protocol version") {
                return Err(LinkError::Fatal(format!("coordinator refused this agent: {reason}")));
            }
            return Err(LinkError::Refused(reason));
        }
        CoordinatorMessage::Joined { .. } => {
            tracing::warn!("ignoring an unexpected join answer in a session");
            Vec::new()
        }
    };
    Ok(reports.into_iter().map(AgentMessage::InstanceUpdate).collect())
}

async fn write_all(
    send: &mut quinn::SendStream,
    messages: Vec<AgentMessage>,
) -> Result<(), LinkError> {
    for message in &messages {
        codec::write_frame(send, message).await?;
    }
    Ok(())
}

fn spawn_reader(
    mut recv: quinn::RecvStream,
) -> mpsc::Receiver<Result<CoordinatorMessage, LinkError>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let next = codec::read_frame::<_, CoordinatorMessage>(&mut recv).await;
            let done = !matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(message)) => Ok(message),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "bad frame from the coordinator; dropping the session");
                    Err(e.into())
                }
            };
            if tx.send(item).await.is_err() || done {
                break;
            }
        }
    });
    rx
}
