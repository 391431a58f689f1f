//! The QUIC side of the coordinator: accepts agent connections, lets certificate-less
//! agents join with a token, and runs one session per authenticated agent that relays
//! frames between its bidirectional stream and the cluster actor. Snapshot transfers use
//! further streams on the same connection (see [`snapshots`]); the coordinator opens one
//! per command run inside an instance (see [`exec`]).

pub mod exec;
mod join;
mod logs;
mod session;
pub mod snapshots;
pub mod standby;

pub use logs::LogStore;

use crate::actors::ClusterActor;
use crate::store::Store;
use actix::Addr;
use gpuspot_common::pki::CertificateAuthority;
use std::sync::Arc;

/// What every session needs, shared.
pub struct QuicContext {
    pub store: Arc<dyn Store>,
    pub ca: Arc<CertificateAuthority>,
    pub cluster: Addr<ClusterActor>,
    pub logs: LogStore,
    /// The snapshot store the agents upload to and download from.
    pub snapshots: crate::snapshots::SnapshotFiles,
    /// Largest packed snapshot accepted on upload (`[snapshots] max_bytes`).
    pub snapshot_max_bytes: u64,
    /// SIGTERM to SIGKILL for the workloads of a deleted host that says hello again.
    pub kill_timeout: std::time::Duration,
    /// Each connected host's connection, for exec streams.
    pub exec_links: Arc<exec::ExecLinks>,
}

/// Accepts connections until the endpoint closes.
pub fn serve(endpoint: quinn::Endpoint, context: Arc<QuicContext>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let context = context.clone();
            tokio::spawn(async move {
                let remote = incoming.remote_address();
                match incoming.await {
                    Ok(connection) => session::run(connection, context).await,
                    Err(e) => {
                        tracing::warn!(%remote, error = %e, "agent connection refused during handshake")
                    }
                }
            });
        }
    })
}
