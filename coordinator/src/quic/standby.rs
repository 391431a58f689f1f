//! A standby's agents' endpoint (docs/architecture.md, standby coordinators): it serves no
//! agent, but completes the handshake and answers the first frame, so that an agent learns
//! where to go instead of rotating through its list with backoff. A hello or a join is
//! answered [`CoordinatorMessage::NotLeader`] naming the leader's advertised QUIC address,
//! or, while none leads, refused with [`RefusalCode::NoLeader`] (retry later). A hello of
//! another protocol version is refused as a version mismatch, as the leader would.

use super::session::{first_frame, refuse, version_mismatch};
use crate::ha::Health;
use gpuspot_common::codec;
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage, PROTOCOL_VERSION, RefusalCode};
use std::time::Duration;

const NO_LEADER: &str = "this coordinator is a standby and no coordinator leads right now (one takes over within the lease)";

/// Answers every agent on `endpoint` until the returned task is aborted (it leads).
pub fn serve(endpoint: quinn::Endpoint, health: Health) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let health = health.clone();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(connection) => answer(connection, &health).await,
                    Err(e) => tracing::info!(%remote, error = %e, "agent handshake failed"),
                }
            });
        }
    })
}

async fn answer(connection: quinn::Connection, health: &Health) {
    let remote = connection.remote_address();
    let accepted = tokio::time::timeout(Duration::from_secs(10), connection.accept_bi()).await;
    let Ok(Ok((mut send, mut recv))) = accepted else { return };
    let Some(first) = first_frame(&connection, &mut send, &mut recv).await else { return };
    let version = match first {
        AgentMessage::Hello { version, .. } if version != PROTOCOL_VERSION => {
            let reason = version_mismatch(version);
            return refuse(
                &connection,
                &mut send,
                Some(version),
                RefusalCode::VersionMismatch,
                &reason,
            )
            .await;
        }
        AgentMessage::Hello { version, .. } => Some(version),
        // A join names no version; an agent that joins speaks ours or reads the answer as
        // an unexpected frame and retries, as it would after a refused connection.
        _ => None,
    };
    let Some(leader) = health.leader_quic() else {
        tracing::info!(%remote, "agent refused: no coordinator leads");
        let refusal =
            CoordinatorMessage::Refused { code: RefusalCode::NoLeader, reason: NO_LEADER.into() };
        return send_and_close(&connection, &mut send, &refusal).await;
    };
    tracing::info!(%remote, %leader, ?version, "agent sent on to the leader (not_leader)");
    let reason = "this coordinator is a standby".to_owned();
    send_and_close(&connection, &mut send, &CoordinatorMessage::NotLeader { leader, reason }).await;
}

/// Writes the answer and lets it reach the agent (which closes) before closing here.
async fn send_and_close(
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    answer: &CoordinatorMessage,
) {
    let _ = codec::write_frame(send, answer).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(2), connection.closed()).await;
    connection.close(0u32.into(), b"standby");
}
