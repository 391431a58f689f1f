//! One authenticated session: hello, then commands in, reports, heartbeats and output out,
//! until the link fails. Frames are read by a separate task, because a half-read frame must
//! never be abandoned by a `select!`. Snapshot restores and saves run as tasks (see
//! [`crate::snapshots::tasks`]) whose outcomes come back into the same `select!`, as do
//! guest starts, which run on the supervisor's workers (a start never blocks it). Streams
//! the coordinator opens during the session are execs, served by [`super::exec`].

use super::refusal::refused;
use super::{Link, LinkError, LinkStats, OpenSession};
use crate::local_host::LocalHost;
use crate::snapshots::TaskOutcome;
use crate::supervisor::Followup;
use gpuspot_common::InstanceId;
use gpuspot_common::codec;
use gpuspot_common::faults::FaultNote;
use gpuspot_common::pki::HostCredentials;
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage, PROTOCOL_VERSION, RefusalCode};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// The log poll of an agent whose runtime writes no output: effectively never.
const NO_LOG_POLL: Duration = Duration::from_secs(24 * 3600);

/// What a session keeps besides the host: its stream, its heartbeat and what the hello said.
struct Session<'a> {
    connection: &'a quinn::Connection,
    send: quinn::SendStream,
    stats: Arc<LinkStats>,
    heartbeat: tokio::time::Interval,
    /// The finished workloads the hello reported: the welcome acknowledges them.
    acknowledged: BTreeSet<InstanceId>,
}

pub(super) async fn run(
    link: &mut Link,
    agent: &mut LocalHost,
    connection: &quinn::Connection,
    credentials: &HostCredentials,
) -> Result<(), LinkError> {
    let (mut send, recv) =
        connection.open_bi().await.map_err(|e| LinkError::Connection(e.to_string()))?;
    let (hello, acknowledged) = hello(agent)?;
    codec::write_frame(&mut send, &hello).await?;
    let source = FaultNote::Source { injectable: agent.discovery.is_simulated() };
    codec::write_frame(&mut send, &AgentMessage::Faults(source)).await?;
    let mut inbox = spawn_reader(recv);
    let _execs = super::exec::spawn_acceptor(connection.clone(), agent.supervisor.runtime());
    let heartbeat = tokio::time::interval(link.link_timeout / 3);
    let mut log_poll = tokio::time::interval(agent.log_poll.unwrap_or(NO_LOG_POLL));
    let _open = OpenSession::new(&link.stats);
    let stats = link.stats.clone();
    let mut session = Session { connection, send, stats, heartbeat, acknowledged };
    tracing::info!(host_id = %credentials.host_id, "session open");
    loop {
        tokio::select! {
            message = inbox.recv() => match message {
                Some(Ok(message)) => link.welcomed |= on_message(&mut session, agent, message).await?,
                Some(Err(e)) => return Err(e),
                None => return Err(LinkError::Connection("the coordinator closed the session".into())),
            },
            Some(event) = agent.events.recv() => {
                let logs = agent.supervisor.pending_logs(Some(&event.instance_id));
                write_all(&mut session.send, logs).await?;
                let followups = agent.supervisor.on_runtime_event(event).into_iter().collect();
                session.follow(agent, followups).await?;
            }
            started = agent.supervisor.next_started() => {
                let followups = agent.supervisor.started(started);
                session.follow(agent, followups).await?;
            }
            outcome = agent.snapshots.next() => {
                let followups = on_outcome(agent, session.connection, outcome);
                session.follow(agent, followups).await?;
            }
            Some(fault) = agent.faults.recv() => {
                let note = AgentMessage::Faults(FaultNote::Fault(fault));
                codec::write_frame(&mut session.send, &note).await?;
            }
            (instance_id, ready) = agent.probes.next() => {
                codec::write_frame(&mut session.send, &AgentMessage::Readiness { instance_id, ready }).await?;
            }
            _ = session.heartbeat.tick() => {
                let gpus = gpu_status(agent);
                codec::write_frame(&mut session.send, &AgentMessage::Heartbeat { gpus }).await?;
                session.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            _ = log_poll.tick() => write_all(&mut session.send, agent.supervisor.pending_logs(None)).await?,
        }
    }
}

/// The hello (everything the host runs, what ended unheard), after taking in the ends the
/// runtime reported meanwhile; and the finished workloads it reports.
fn hello(agent: &mut LocalHost) -> Result<(AgentMessage, BTreeSet<InstanceId>), LinkError> {
    while let Ok(event) = agent.events.try_recv() {
        drop(agent.supervisor.on_runtime_event(event));
    }
    let inventory = agent.discovery.inventory()?;
    let acknowledged = agent.supervisor.finished_ids();
    let hello = AgentMessage::Hello {
        version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        inventory,
        instances: agent.supervisor.reports(),
        runtimes: agent.supervisor.runtimes(),
        network: agent.network.clone(),
    };
    Ok((hello, acknowledged))
}

/// Applies one message of the coordinator and writes what follows from it; true for a
/// welcome.
async fn on_message(
    session: &mut Session<'_>,
    agent: &mut LocalHost,
    message: CoordinatorMessage,
) -> Result<bool, LinkError> {
    let welcome = matches!(message, CoordinatorMessage::Welcome { .. });
    let shown = match &message {
        CoordinatorMessage::Metadata(m) if m.spot_termination_time.is_some() => {
            Some(m.instance_id.clone())
        }
        _ => None,
    };
    let followups = handle(agent, message, &session.acknowledged, &mut session.heartbeat)?;
    session.follow(agent, followups).await?;
    if let Some(instance_id) = shown {
        codec::write_frame(&mut session.send, &AgentMessage::NoticeShown { instance_id }).await?;
    }
    if welcome {
        // The coordinator keeps no verdicts across its restarts: all again.
        write_all(&mut session.send, readiness(agent.probes.verdicts())).await?;
    }
    Ok(welcome)
}

impl Session<'_> {
    async fn follow(
        &mut self,
        agent: &mut LocalHost,
        followups: Vec<Followup>,
    ) -> Result<(), LinkError> {
        follow(agent, &self.stats, self.connection, &mut self.send, followups).await
    }
}

fn handle(
    agent: &mut LocalHost,
    message: CoordinatorMessage,
    acknowledged: &BTreeSet<InstanceId>,
    heartbeat: &mut tokio::time::Interval,
) -> Result<Vec<Followup>, LinkError> {
    let followups = match message {
        CoordinatorMessage::Welcome { desired, heartbeat_interval_ms, .. } => {
            let every = Duration::from_millis(heartbeat_interval_ms.max(100));
            *heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut followups = agent.supervisor.reconcile(desired, acknowledged);
            let tasks = &agent.snapshots;
            followups.extend(agent.supervisor.resume_snapshots(|id| tasks.in_flight(id)));
            followups
        }
        CoordinatorMessage::Start(assignment) => agent.supervisor.start(assignment),
        CoordinatorMessage::Stop { instance_id, kill_timeout_ms, .. } => {
            agent.supervisor.stop(&instance_id, Duration::from_millis(kill_timeout_ms));
            Vec::new()
        }
        CoordinatorMessage::Metadata(metadata) => {
            agent.supervisor.set_metadata(metadata);
            Vec::new()
        }
        CoordinatorMessage::Refused { code, reason } => return Err(refused(code, reason)),
        CoordinatorMessage::NotLeader { leader, reason } => {
            return Err(LinkError::NotLeader { leader, reason });
        }
        // Only a coordinator of another protocol version answers our hello this way.
        CoordinatorMessage::LegacyRefused { reason } => {
            return Err(refused(RefusalCode::VersionMismatch, reason));
        }
        CoordinatorMessage::Faults(command) => {
            crate::discovery::faults::obey(agent.discovery.as_ref(), command);
            Vec::new()
        }
        CoordinatorMessage::Joined { .. } => {
            tracing::warn!("ignoring an unexpected join answer in a session");
            Vec::new()
        }
    };
    Ok(followups)
}

/// Carries out what the supervisor asked for: reports are written, snapshot work starts as
/// tasks, and an instance whose save is done gets its closing messages (`SnapshotSaved`
/// before the final `InstanceUpdate`), marked closed only once they are written.
async fn follow(
    agent: &mut LocalHost,
    stats: &LinkStats,
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    followups: Vec<Followup>,
) -> Result<(), LinkError> {
    let mut outgoing = Vec::new();
    let mut closed = Vec::new();
    for followup in followups {
        match followup {
            Followup::Report(report) => outgoing.push(AgentMessage::InstanceUpdate(report)),
            Followup::Restore(job) => drop(agent.snapshots.restore(connection, job)),
            Followup::Save(job) => drop(agent.snapshots.save(connection, job)),
            Followup::Refuse { instance_id, code, reason } => {
                outgoing.push(AgentMessage::StartRefused { instance_id, code, reason })
            }
            Followup::Close(id) => {
                outgoing.extend(agent.supervisor.closing(&id));
                closed.push(id);
            }
        }
    }
    write_all(send, outgoing).await?;
    for id in &closed {
        agent.supervisor.closed(id);
    }
    agent.probes.sync(agent.supervisor.probe_targets());
    let guests = agent.supervisor.running_count() as u64;
    stats.guests.store(guests, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn readiness(verdicts: Vec<(gpuspot_common::InstanceId, bool)>) -> Vec<AgentMessage> {
    verdicts
        .into_iter()
        .map(|(instance_id, ready)| AgentMessage::Readiness { instance_id, ready })
        .collect()
}

/// The GPUs' health and utilisation; on a simulated host, the utilisation its guests set.
fn gpu_status(agent: &LocalHost) -> Vec<gpuspot_common::protocol::GpuStatus> {
    let mut gpus = agent.discovery.gpu_status().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "GPU status unavailable for this heartbeat");
        Vec::new()
    });
    if agent.discovery.is_simulated() {
        let set = agent.supervisor.simulated_utilization();
        for gpu in &mut gpus {
            gpu.utilization_percent = Some(set.get(&gpu.uuid).copied().unwrap_or(0));
        }
    }
    gpus
}

/// A snapshot task ended. A transfer cut by a lost link is retried at once when this
/// session's link is alive, otherwise after the next welcome; any other outcome is final.
fn on_outcome(
    agent: &mut LocalHost,
    connection: &quinn::Connection,
    outcome: TaskOutcome,
) -> Vec<Followup> {
    let alive = connection.close_reason().is_none();
    let supervisor = &mut agent.supervisor;
    let followup = match outcome {
        TaskOutcome::Restored { instance_id, link_lost: true, .. }
            if supervisor.restore_retry(&instance_id).is_some() =>
        {
            supervisor.restore_retry(&instance_id).filter(|_| alive).map(Followup::Restore)
        }
        TaskOutcome::Restored { instance_id, result, .. } => {
            return supervisor.restored(&instance_id, result);
        }
        TaskOutcome::Saved { instance_id, packed, link_lost: true, .. } => {
            supervisor.save_interrupted(&instance_id, packed).filter(|_| alive).map(Followup::Save)
        }
        TaskOutcome::Saved { instance_id, result, .. } => {
            supervisor.save_done(&instance_id, result)
        }
    };
    followup.into_iter().collect()
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
