//! Joining the cluster: over a connection that trusts only the CA pinned by the token, the
//! agent sends the token and a CSR and receives its host id and certificate, which it keeps
//! in its state dir for every later connection.

use super::LinkError;
use gpuspot_common::codec;
use gpuspot_common::pki::{self, HostCredentials, JoinToken};
use gpuspot_common::protocol::{AgentMessage, CoordinatorMessage, RefusalCode};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub async fn join(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    token: &str,
    hostname: &str,
    state_dir: &Path,
    idle_timeout: Duration,
) -> Result<HostCredentials, LinkError> {
    let parsed: JoinToken =
        token.parse().map_err(|e: pki::PkiError| LinkError::Fatal(format!("join token: {e}")))?;
    let (key_pem, csr_pem) = pki::new_host_key_and_csr(hostname)?;
    let tls = pki::join_client_config(&parsed)?;
    let connection = gpuspot_common::transport::connect(endpoint, addr, tls, idle_timeout)
        .await
        .map_err(|e| match e.to_string() {
            // Retrying cannot fix a token that pins another coordinator's CA.
            text if text.contains("does not match the join token") => {
                LinkError::Fatal(format!("join refused: {text}"))
            }
            _ => LinkError::Transport(e),
        })?;
    let (mut send, mut recv) =
        connection.open_bi().await.map_err(|e| LinkError::Connection(e.to_string()))?;
    let request =
        AgentMessage::Join { token: token.to_owned(), csr_pem, hostname: hostname.to_owned() };
    codec::write_frame(&mut send, &request).await?;
    let answer = codec::read_frame::<_, CoordinatorMessage>(&mut recv).await?;
    connection.close(0u32.into(), b"joined");
    match answer {
        Some(CoordinatorMessage::Joined { host_id, cert_pem, ca_pem }) => {
            let credentials = HostCredentials { host_id, key_pem, cert_pem, ca_pem };
            credentials.verify_ca(&parsed)?;
            credentials.save(state_dir)?;
            tracing::info!(host_id = %credentials.host_id, "joined the cluster");
            Ok(credentials)
        }
        Some(CoordinatorMessage::NotLeader { leader, reason }) => {
            Err(LinkError::NotLeader { leader, reason })
        }
        // A standby while none leads: the token is fine, the join is tried again later.
        Some(CoordinatorMessage::Refused { code: RefusalCode::NoLeader, reason }) => {
            Err(LinkError::Refused { code: RefusalCode::NoLeader, reason })
        }
        // Whatever else the code, the same token will be refused again: the agent stops.
        Some(
            CoordinatorMessage::Refused { reason, .. }
            | CoordinatorMessage::LegacyRefused { reason },
        ) => Err(LinkError::Fatal(format!("join refused: {reason}"))),
        Some(other) => {
            Err(LinkError::Connection(format!("unexpected answer to a join: {other:?}")))
        }
        None => {
            Err(LinkError::Connection("the coordinator closed the join without answering".into()))
        }
    }
}
