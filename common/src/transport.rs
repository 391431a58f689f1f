//! quinn endpoints for the agent link, built from the [`crate::pki`] TLS configs. The idle
//! timeout is how fast either side notices a silent peer at the transport level; liveness
//! as the coordinator judges it comes from heartbeats.
//!
//! The agent opens its session and one stream per snapshot transfer; the coordinator opens
//! one per exec (docs/contracts.md#guests "Getting in"). quinn sets up per-connection state for
//! every stream a peer may open, which at its defaults (100 + 100) was a large share of the
//! coordinator's memory per connected host, so both limits are small.

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::CertificateDer;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("QUIC TLS setup: {0}")]
    Crypto(String),
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: SocketAddr, detail: String },
}

/// Bidirectional streams an agent may have open at once on one connection.
pub const MAX_AGENT_STREAMS: u32 = 16;

/// Exec streams the coordinator may have open at once on one agent connection.
pub const MAX_EXEC_STREAMS: u32 = 32;

fn transport(
    idle_timeout: Duration,
    peer_streams: u32,
    segmentation_offload: bool,
) -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(idle_timeout).unwrap_or(quinn::VarInt::MAX.into());
    config.max_idle_timeout(Some(idle));
    config.keep_alive_interval(Some(idle_timeout / 3));
    config.max_concurrent_bidi_streams(peer_streams.into());
    config.max_concurrent_uni_streams(0u32.into());
    config.enable_segmentation_offload(segmentation_offload);
    Arc::new(config)
}

fn server_config(
    tls: rustls::ServerConfig,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, TransportError> {
    let crypto =
        QuicServerConfig::try_from(tls).map_err(|e| TransportError::Crypto(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(idle_timeout, MAX_AGENT_STREAMS, false));
    Ok(config)
}

pub fn server_endpoint(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    idle_timeout: Duration,
) -> Result<quinn::Endpoint, TransportError> {
    let config = server_config(tls, idle_timeout)?;
    quinn::Endpoint::server(config, addr).map_err(|source| TransportError::Bind { addr, source })
}

/// Like [`server_endpoint`], with a stateless-reset key that outlives the process (keep it
/// secret, e.g. in the data dir). A restarted coordinator's resets are then valid for the
/// connections of its previous run, so agents reconnect at once instead of after their
/// idle timeout.
pub fn server_endpoint_with_reset_key(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    idle_timeout: Duration,
    reset_key: &[u8],
) -> Result<quinn::Endpoint, TransportError> {
    let config = server_config(tls, idle_timeout)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
    let socket =
        std::net::UdpSocket::bind(addr).map_err(|source| TransportError::Bind { addr, source })?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| TransportError::Crypto("no async runtime for QUIC".into()))?;
    quinn::Endpoint::new(quinn::EndpointConfig::new(Arc::new(key)), Some(config), socket, runtime)
        .map_err(|source| TransportError::Bind { addr, source })
}

/// A client endpoint on an ephemeral port of the same address family as `target`.
pub fn client_endpoint(target: SocketAddr) -> Result<quinn::Endpoint, TransportError> {
    let local: SocketAddr = if target.is_ipv6() {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    quinn::Endpoint::client(local).map_err(|source| TransportError::Bind { addr: local, source })
}

pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    tls: rustls::ClientConfig,
    idle_timeout: Duration,
) -> Result<quinn::Connection, TransportError> {
    let crypto =
        QuicClientConfig::try_from(tls).map_err(|e| TransportError::Crypto(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(idle_timeout, MAX_EXEC_STREAMS, true));
    let connect_err = |detail: String| TransportError::Connect { addr, detail };
    endpoint
        .connect_with(config, addr, crate::pki::SERVER_NAME)
        .map_err(|e| connect_err(e.to_string()))?
        .await
        .map_err(|e| connect_err(e.to_string()))
}

/// The sha256 fingerprint of the client certificate a peer presented, if any.
pub fn peer_certificate_fingerprint(connection: &quinn::Connection) -> Option<String> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.first().map(|c| crate::pki::fingerprint(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostId;
    use crate::pki::{self, CertificateAuthority, HostCredentials};

    fn credentials(ca: &CertificateAuthority) -> HostCredentials {
        let (key_pem, csr_pem) = pki::new_host_key_and_csr("host-a").expect("csr");
        let host_id = HostId::random();
        let cert_pem = ca.sign_host_csr(&csr_pem, &host_id).expect("sign");
        HostCredentials { host_id, key_pem, cert_pem, ca_pem: ca.cert_pem().to_owned() }
    }

    #[tokio::test]
    async fn an_endpoint_with_a_reset_key_serves_agents_over_bidirectional_streams_only() {
        pki::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = CertificateAuthority::load_or_create(dir.path()).expect("ca");
        let idle = Duration::from_secs(5);
        let any: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let server =
            server_endpoint_with_reset_key(any, ca.server_config().expect("tls"), idle, &[7; 32])
                .expect("endpoint");
        let addr = server.local_addr().expect("addr");
        let accepting = server.clone();
        let accepted = tokio::spawn(async move { accepting.accept().await?.await.ok() });
        let client = client_endpoint(addr).expect("client");
        let tls = credentials(&ca).client_config().expect("client tls");
        let connection = connect(&client, addr, tls, idle).await.expect("connect");
        let on_server = accepted.await.expect("task").expect("accepted");
        assert!(peer_certificate_fingerprint(&on_server).is_some());
        // Agents open bidirectional streams only; unidirectional ones are not allowed.
        let uni = tokio::time::timeout(Duration::from_millis(300), connection.open_uni()).await;
        assert!(uni.is_err(), "a unidirectional stream opened");
        assert!(connection.open_bi().await.is_ok());
    }
}
