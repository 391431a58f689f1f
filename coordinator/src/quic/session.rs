//! One agent connection: the agent opens a bidirectional stream and speaks first. Without a
//! client certificate only a join is accepted; with one, a hello starts a session that
//! lasts until the connection ends, and the agent's further streams on that connection are
//! snapshot transfers. Malformed frames close the connection with a logged reason and touch
//! nothing else. A certificate whose host the operator deleted is refused as revoked, and a
//! refusal the cluster sends during a session (the host was just deleted) ends it.

use super::snapshots::{self, SnapshotStreams};
use super::{QuicContext, join};
use crate::actors::AgentEvent;
use crate::core::host_removal::revoked_reason;
use crate::core::model::EndReason;
use crate::core::registry::HostNetwork;
use gpuspot_common::HostId;
use gpuspot_common::codec::{self, CodecError};
use gpuspot_common::protocol::{
    AgentMessage, CoordinatorMessage, InstanceReport, PROTOCOL_VERSION, RefusalCode,
};
use gpuspot_common::transport::peer_certificate_fingerprint;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(connection: quinn::Connection, context: Arc<QuicContext>) {
    let remote = connection.remote_address();
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(FIRST_FRAME_TIMEOUT, connection.accept_bi()).await
    else {
        tracing::info!(%remote, "agent opened no stream; closing");
        return;
    };
    let Some(first) = first_frame(&connection, &mut send, &mut recv).await else { return };
    let fingerprint = peer_certificate_fingerprint(&connection);
    match (fingerprint, first) {
        (None, AgentMessage::Join { token, csr_pem, hostname }) => {
            let answer = join::handle(&context, &token, &csr_pem, &hostname, remote).await;
            let _ = codec::write_frame(&mut send, &answer).await;
            let _ = send.finish();
            // Let the answer reach the agent before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
        }
        (None, _) => {
            let reason = "a host certificate is required: join with a token first";
            refuse(&connection, &mut send, None, RefusalCode::CertificateRequired, reason).await
        }
        (
            Some(fingerprint),
            AgentMessage::Hello { version, agent_version, inventory, instances, runtimes, network },
        ) => {
            let admitted =
                admit(&connection, &mut send, &context, fingerprint, version, &instances).await;
            let Some(host_id) = admitted else { return };
            let (outbox, inbox) = tokio::sync::mpsc::unbounded_channel();
            let link_id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%host_id, %remote, hostname = %inventory.hostname, "agent connected");
            context.cluster.do_send(AgentEvent::Connected {
                host_id: host_id.clone(),
                link_id,
                outbox,
                inventory,
                agent_version,
                runtimes,
                network: host_network(network, remote),
                reports: instances,
            });
            serve((connection, send, recv), host_id, link_id, inbox, &context).await
        }
        (Some(_), _) => {
            refuse(&connection, &mut send, None, RefusalCode::ExpectedHello, "expected a hello")
                .await
        }
    }
}

/// Carries the session of an admitted host until its link ends: `inbox` (what the cluster
/// sends it) out, its messages in, its snapshot streams, and exec streams opened to it.
async fn serve(
    (connection, send, mut recv): (quinn::Connection, quinn::SendStream, quinn::RecvStream),
    host_id: HostId,
    link_id: u64,
    inbox: tokio::sync::mpsc::UnboundedReceiver<Box<CoordinatorMessage>>,
    context: &Arc<QuicContext>,
) {
    context.exec_links.register(host_id.clone(), link_id, connection.clone());
    let writer = tokio::spawn(write_loop(send, inbox, connection.clone(), context.clone()));
    let streams =
        SnapshotStreams { files: context.snapshots.clone(), max_bytes: context.snapshot_max_bytes };
    let snapshots = snapshots::spawn_acceptor(connection.clone(), streams, host_id.clone());
    let reason = read_loop(&mut recv, &host_id, link_id, context).await;
    writer.abort();
    snapshots.abort();
    context.exec_links.unregister(&host_id, link_id);
    tracing::info!(%host_id, %reason, "agent session ended");
    context.cluster.do_send(AgentEvent::Disconnected { host_id, link_id });
    connection.close(0u32.into(), reason.as_bytes());
}

/// The first message of a connection, or None once the connection is closed: a hello of
/// another protocol version that does not decode here (its later fields have that
/// version's shapes) is still refused as a version mismatch, which every agent decodes.
pub(super) async fn first_frame(
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Option<AgentMessage> {
    let read = tokio::time::timeout(FIRST_FRAME_TIMEOUT, codec::read_body(recv)).await;
    let (error, body) = match read {
        Ok(Ok(Some(body))) => match codec::decode_body(&body) {
            Ok(message) => return Some(message),
            Err(error) => (error, body),
        },
        Ok(Err(e)) => (e, Vec::new()),
        _ => {
            close(connection, "no first frame");
            return None;
        }
    };
    match codec::hello_version(&body) {
        Some(version) if version != PROTOCOL_VERSION => {
            let reason = version_mismatch(version);
            refuse(connection, send, Some(version), RefusalCode::VersionMismatch, &reason).await
        }
        _ => close(connection, &format!("bad first frame: {error}")),
    }
    None
}

pub(super) fn version_mismatch(version: u32) -> String {
    format!("protocol version {version} is not supported (coordinator speaks {PROTOCOL_VERSION})")
}

/// Where the host's guests are reached: the address its agent names, else the one it
/// connected from (the coordinator's view, docs/contracts.md#serving).
fn host_network(
    network: gpuspot_common::protocol::GuestNetwork,
    remote: std::net::SocketAddr,
) -> HostNetwork {
    let address = network.address.unwrap_or_else(|| match remote.ip().to_canonical() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    });
    HostNetwork { ports: network.ports, address }
}

/// The host whose hello this is, or None once the agent has been refused: it speaks another
/// protocol version, or its certificate is revoked or unknown.
async fn admit(
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    context: &QuicContext,
    fingerprint: String,
    version: u32,
    instances: &[InstanceReport],
) -> Option<HostId> {
    let (code, reason) = if version != PROTOCOL_VERSION {
        (RefusalCode::VersionMismatch, version_mismatch(version))
    } else {
        match host_for(context, fingerprint).await {
            Ok(host_id) => return Some(host_id),
            Err(Refusal::Revoked(host_id)) => {
                // Deleted while it was away: what it still runs must stop too.
                stop_reported(send, instances, context.kill_timeout).await;
                (RefusalCode::Revoked, revoked_reason(&host_id))
            }
            Err(Refusal::Unknown) => {
                (RefusalCode::UnknownCertificate, "unknown host certificate".to_owned())
            }
            // The agent keeps its identity and retries: a store that cannot answer now (a
            // database restarting, a failover) must not make a fleet forget its certificates.
            Err(Refusal::Unavailable) => {
                (RefusalCode::Internal, "the coordinator cannot check certificates now".to_owned())
            }
        }
    };
    refuse(connection, send, Some(version), code, &reason).await;
    None
}

/// Why a client certificate does not start a session.
enum Refusal {
    /// Never issued here: the agent may join again.
    Unknown,
    /// The store could not say: try again later.
    Unavailable,
    /// Its host was deleted: the agent is refused for good.
    Revoked(HostId),
}

/// The host a client certificate names.
async fn host_for(context: &QuicContext, fingerprint: String) -> Result<HostId, Refusal> {
    let store = context.store.clone();
    let found = tokio::task::spawn_blocking(move || store.host_certificate(&fingerprint)).await;
    match found {
        Ok(Ok(Some(record))) if record.revoked_at.is_some() => {
            Err(Refusal::Revoked(record.host_id))
        }
        Ok(Ok(Some(record))) => Ok(record.host_id),
        Ok(Ok(None)) => Err(Refusal::Unknown),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "certificate lookup failed");
            Err(Refusal::Unavailable)
        }
        Err(e) => {
            tracing::error!(error = %e, "certificate lookup task failed");
            Err(Refusal::Unavailable)
        }
    }
}

/// Tells the agent to stop every workload its hello reported.
async fn stop_reported(
    send: &mut quinn::SendStream,
    reports: &[InstanceReport],
    kill_timeout: Duration,
) {
    for report in reports.iter().filter(|r| !r.state.is_final()) {
        let stop = CoordinatorMessage::Stop {
            instance_id: report.instance_id.clone(),
            reason: EndReason::HostLost.into(),
            kill_timeout_ms: kill_timeout.as_millis() as u64,
        };
        if codec::write_frame(send, &stop).await.is_err() {
            return;
        }
    }
}

fn close(connection: &quinn::Connection, reason: &str) {
    tracing::warn!(remote = %connection.remote_address(), reason, "closing agent connection");
    connection.close(1u32.into(), reason.as_bytes());
}

/// Refuses in the form the peer decodes: `peer_version` is what its hello named, None when
/// it sent no hello.
pub(super) async fn refuse(
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    peer_version: Option<u32>,
    code: RefusalCode,
    reason: &str,
) {
    tracing::debug!(%code, ?peer_version, "refusing an agent");
    let refusal = CoordinatorMessage::refusal(code, reason, peer_version);
    let _ = codec::write_frame(send, &refusal).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), connection.closed()).await;
    close(connection, reason);
}

async fn read_loop(
    recv: &mut quinn::RecvStream,
    host_id: &HostId,
    link_id: u64,
    context: &QuicContext,
) -> String {
    loop {
        match codec::read_frame::<_, AgentMessage>(recv).await {
            Ok(Some(AgentMessage::Log { instance_id, offset, data })) => {
                let logs = context.logs.clone();
                let written =
                    tokio::task::spawn_blocking(move || logs.write_at(&instance_id, offset, &data))
                        .await;
                if let Ok(Err(e)) = written {
                    tracing::warn!(%host_id, error = %e, "dropping a log chunk");
                }
            }
            Ok(Some(message)) => context.cluster.do_send(AgentEvent::Message {
                host_id: host_id.clone(),
                link_id,
                message,
            }),
            Ok(None) => return "agent closed the stream".into(),
            Err(CodecError::Io(e)) => return format!("link error: {e}"),
            Err(e) => {
                tracing::warn!(%host_id, error = %e, "malformed frame from agent; closing its connection");
                return format!("malformed frame: {e}");
            }
        }
    }
}

async fn write_loop(
    mut send: quinn::SendStream,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Box<CoordinatorMessage>>,
    connection: quinn::Connection,
    context: Arc<QuicContext>,
) {
    while let Some(mut message) = inbox.recv().await {
        if let CoordinatorMessage::Welcome { desired, .. } = &mut *message {
            for assignment in desired {
                assignment.log_offset = context.logs.len(&assignment.instance_id);
            }
        }
        if let Err(e) = codec::write_frame(&mut send, &message).await {
            tracing::info!(error = %e, "cannot write to agent; its session will end");
            return;
        }
        if let CoordinatorMessage::Refused { reason, .. }
        | CoordinatorMessage::LegacyRefused { reason } = &*message
        {
            // The host was deleted: what was queued before is written; let the agent read
            // it (it hangs up on a refusal), then close whatever it left open.
            let _ = send.finish();
            let _ = tokio::time::timeout(Duration::from_secs(2), connection.closed()).await;
            close(&connection, reason);
            return;
        }
    }
}
