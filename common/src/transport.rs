//! quinn endpoints for the agent link, built from the [`crate::pki`] TLS configs. The idle
//! timeout is how fast either side notices a silent peer at the transport level; liveness
//! as the coordinator judges it comes from heartbeats.
//!
//! Only the agent opens streams (its session, plus one per snapshot transfer), so the
//! coordinator accepts a few and the agent none. quinn sets up per-connection state for
//! every stream a peer may open, which at its defaults (100 + 100) was a large share of
//! the coordinator's memory per connected host.

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

pub fn server_endpoint(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    idle_timeout: Duration,
) -> Result<quinn::Endpoint, TransportError> {
    let crypto =
        QuicServerConfig::try_from(tls).map_err(|e| TransportError::Crypto(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(idle_timeout, MAX_AGENT_STREAMS, false));
    quinn::Endpoint::server(config, addr).map_err(|source| TransportError::Bind { addr, source })
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
    config.transport_config(transport(idle_timeout, 0, true));
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
