//! One agent connection: the agent opens a bidirectional stream and speaks first. Without a
//! client certificate only a join is accepted; with one, a hello starts a session that
//! lasts until the connection ends, and the agent's further streams on that connection are
//! snapshot transfers. Malformed frames close the connection with a logged reason and touch
//! nothing else.

use super::snapshots::{self, SnapshotStreams};
use super::{QuicContext, join};
use crate::actors::AgentEvent;
use gpuspot_common::HostId;
use gpuspot_common::codec::{self, CodecError};
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage, PROTOCOL_VERSION};
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
    let first =
        tokio::time::timeout(FIRST_FRAME_TIMEOUT, codec::read_frame::<_, AgentMessage>(&mut recv))
            .await;
    let first = match first {
        Ok(Ok(Some(message))) => message,
        Ok(Err(e)) => return close(&connection, &format!("bad first frame: {e}")),
        _ => return close(&connection, "no first frame"),
    };
    let fingerprint = peer_certificate_fingerprint(&connection);
    match (fingerprint, first) {
        (None, AgentMessage::Join { token, csr_pem, hostname }) => {
            let answer = join::handle(&context, &token, &csr_pem, &hostname).await;
            let _ = codec::write_frame(&mut send, &answer).await;
            let _ = send.finish();
            // Let the answer reach the agent before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
        }
        (None, _) => {
            refuse(
                &connection,
                &mut send,
                "a host certificate is required: join with a token first",
            )
            .await
        }
        (
            Some(fingerprint),
            AgentMessage::Hello { version, agent_version, inventory, instances },
        ) => {
            if version != PROTOCOL_VERSION {
                let reason = format!(
                    "protocol version {version} is not supported (coordinator speaks {PROTOCOL_VERSION})"
                );
                return refuse(&connection, &mut send, &reason).await;
            }
            let Some(host_id) = host_for(&context, fingerprint).await else {
                return refuse(&connection, &mut send, "unknown host certificate").await;
            };
            let (outbox, inbox) = tokio::sync::mpsc::unbounded_channel();
            let link_id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%host_id, %remote, hostname = %inventory.hostname, "agent connected");
            context.cluster.do_send(AgentEvent::Connected {
                host_id: host_id.clone(),
                link_id,
                outbox,
                inventory,
                agent_version,
                reports: instances,
            });
            let writer = tokio::spawn(write_loop(send, inbox, context.clone()));
            let streams = SnapshotStreams {
                files: context.snapshots.clone(),
                max_bytes: context.snapshot_max_bytes,
            };
            let snapshots = snapshots::spawn_acceptor(connection.clone(), streams, host_id.clone());
            let reason = read_loop(&mut recv, &host_id, link_id, &context).await;
            writer.abort();
            snapshots.abort();
            tracing::info!(%host_id, %reason, "agent session ended");
            context.cluster.do_send(AgentEvent::Disconnected { host_id, link_id });
            connection.close(0u32.into(), reason.as_bytes());
        }
        (Some(_), _) => refuse(&connection, &mut send, "expected a hello").await,
    }
}

async fn host_for(context: &QuicContext, fingerprint: String) -> Option<HostId> {
    let store = context.store.clone();
    match tokio::task::spawn_blocking(move || store.host_for_certificate(&fingerprint)).await {
        Ok(Ok(host)) => host,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "certificate lookup failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "certificate lookup task failed");
            None
        }
    }
}

fn close(connection: &quinn::Connection, reason: &str) {
    tracing::warn!(remote = %connection.remote_address(), reason, "closing agent connection");
    connection.close(1u32.into(), reason.as_bytes());
}

async fn refuse(connection: &quinn::Connection, send: &mut quinn::SendStream, reason: &str) {
    let _ =
        codec::write_frame(send, &CoordinatorMessage::Refused { reason: reason.to_owned() }).await;
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
    }
}
