//! The agent's side of the QUIC link: join once with a token (see [`join`]), then keep one
//! authenticated session open, reconnecting with backoff. Each session starts with a hello
//! that reports everything the host runs; the coordinator's welcome is the full desired
//! state, which the [`Supervisor`] applies.

pub mod exec;
pub mod join;
mod refusal;
mod session;

use crate::discovery::GpuDiscovery;
use crate::runtime::RuntimeEvent;
use crate::supervisor::Supervisor;
use gpuspot_common::pki::HostCredentials;
use gpuspot_common::protocol::RefusalCode;
use refusal::Reaction;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedReceiver;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Retrying cannot help (bad token, incompatible coordinator): the agent must stop.
    #[error("{0}")]
    Fatal(String),
    #[error("coordinator refused the session: {reason}")]
    Refused { code: RefusalCode, reason: String },
    #[error("{0}")]
    Transport(#[from] gpuspot_common::transport::TransportError),
    #[error("link: {0}")]
    Codec(#[from] gpuspot_common::codec::CodecError),
    #[error("link: {0}")]
    Connection(String),
    #[error("cannot resolve coordinator address {0:?}")]
    Resolve(String),
    #[error("credentials: {0}")]
    Credentials(#[from] gpuspot_common::pki::PkiError),
    #[error("inventory: {0}")]
    Discovery(#[from] crate::discovery::DiscoveryError),
}

/// One host's agent: discovery, workloads and the link that keeps them in step with the
/// coordinator.
pub struct HostAgent {
    /// `HOST:PORT`, or several comma separated (standby coordinators): the first is tried,
    /// and after a failed attempt the next goes first.
    pub coordinator: String,
    pub join_token: Option<String>,
    pub state_dir: PathBuf,
    pub link_timeout: Duration,
    pub endpoint: quinn::Endpoint,
    pub discovery: Arc<dyn GpuDiscovery>,
    pub supervisor: Supervisor,
    pub events: UnboundedReceiver<RuntimeEvent>,
    /// Snapshot restores and saves in flight; they outlive a session.
    pub snapshots: crate::snapshots::SnapshotTasks,
    /// How often workload output is shipped; `None` when the runtime writes none.
    pub log_poll: Option<Duration>,
    /// Bounds how many hosts join or handshake at once (a fleet shares one).
    pub connect_gate: Option<Arc<Semaphore>>,
    pub stats: Arc<LinkStats>,
    /// The host ports guests get and where they are reached, told in each hello.
    pub network: gpuspot_common::protocol::GuestNetwork,
    /// Readiness probes of the workloads that have one (DESIGN §18).
    pub probes: crate::probes::Probes,
    /// Whether the last session got as far as the coordinator's welcome.
    pub(crate) welcomed: bool,
}

/// Counters of a host's link (shared by all hosts of a fleet).
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Sessions open now.
    pub sessions: AtomicU64,
    /// Sessions ever opened.
    pub connects: AtomicU64,
    /// Heartbeats written to a session.
    pub heartbeats: AtomicU64,
    /// Guests running now (the last session's count).
    pub guests: AtomicU64,
}

/// Counts a session as open for as long as it lives.
pub(crate) struct OpenSession<'a>(&'a LinkStats);

impl<'a> OpenSession<'a> {
    pub(crate) fn new(stats: &'a LinkStats) -> Self {
        stats.sessions.fetch_add(1, Ordering::Relaxed);
        stats.connects.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(10);

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn step(&mut self) -> Duration {
        let jitter = Duration::from_millis(rand_jitter_ms(self.next.as_millis() as u64 / 4));
        let wait = self.next + jitter;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

fn rand_jitter_ms(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(max);
    h.finish() % max.max(1)
}

/// The first address of `list` (`HOST:PORT[,HOST:PORT…]`), resolved.
pub async fn resolve(list: &str) -> Result<SocketAddr, LinkError> {
    let address = list.split(',').next().unwrap_or_default().trim();
    tokio::net::lookup_host(address)
        .await
        .map_err(|_| LinkError::Resolve(address.to_owned()))?
        .next()
        .ok_or_else(|| LinkError::Resolve(address.to_owned()))
}

impl HostAgent {
    /// Runs until `shutdown` resolves or a fatal link error. First takes over what an
    /// earlier agent process on this state dir left running. Workloads keep running when it
    /// returns (DESIGN §14: only a stop from the coordinator ends a workload); the next agent
    /// on this state dir adopts them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), LinkError> {
        self.serve(shutdown).await.1
    }

    /// [`HostAgent::run`], then stops every workload and waits (bounded) for their ends:
    /// for hosts that live and die with their process (`gpuspot dev`, load-test fleets).
    pub async fn run_stopping_workloads(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LinkError> {
        let (mut agent, result) = self.serve(shutdown).await;
        tracing::info!("stopping workloads");
        agent.shutdown_workloads().await;
        agent.supervisor.deletions_done().await;
        result
    }

    async fn serve(mut self, shutdown: impl Future<Output = ()>) -> (Self, Result<(), LinkError>) {
        self.supervisor.adopt();
        tokio::pin!(shutdown);
        let mut backoff = Backoff { next: Backoff::FIRST };
        loop {
            let outcome = tokio::select! {
                _ = &mut shutdown => break,
                outcome = self.connect_once() => outcome,
            };
            match outcome {
                Err(LinkError::Fatal(reason)) => return (self, Err(LinkError::Fatal(reason))),
                Err(e) => {
                    tracing::warn!(error = %e, "link to the coordinator down; reconnecting");
                    self.next_coordinator();
                }
                Ok(()) => backoff.reset(),
            }
            // A session that was up ends like a fresh start: retry soon, not after the
            // backoff left by earlier failed attempts.
            if std::mem::take(&mut self.welcomed) {
                backoff.reset();
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(backoff.step()) => {}
            }
        }
        (self, Ok(()))
    }

    /// After a failed attempt the next address goes first (a standby does not serve agents;
    /// the leader may be any of them).
    fn next_coordinator(&mut self) {
        if let Some((first, rest)) = self.coordinator.split_once(',') {
            self.coordinator = format!("{rest},{first}");
        }
    }

    /// Stops every workload and waits (bounded) for them to end.
    async fn shutdown_workloads(&mut self) {
        self.supervisor.stop_all();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(35);
        while !self.supervisor.running_ids().is_empty() {
            // A start still on a worker ends there first, then as stopped (see `stop_all`).
            let next = async {
                tokio::select! {
                    event = self.events.recv() => match event {
                        Some(event) => drop(self.supervisor.on_runtime_event(event)),
                        None => return false,
                    },
                    started = self.supervisor.next_started() => {
                        drop(self.supervisor.started(started));
                    }
                }
                true
            };
            if !matches!(tokio::time::timeout_at(deadline, next).await, Ok(true)) {
                break;
            }
        }
    }

    async fn credentials(&self) -> Result<HostCredentials, LinkError> {
        if let Some(credentials) = HostCredentials::load(&self.state_dir)? {
            return Ok(credentials);
        }
        let Some(token) = &self.join_token else {
            return Err(LinkError::Fatal(format!(
                "this host has not joined yet (no credentials in {}): give it a token from `gpuspot-coordinator token create` with --join-token-file PATH (- for stdin) or GPUSPOT_JOIN_TOKEN",
                self.state_dir.display()
            )));
        };
        let hostname = self.discovery.inventory()?.hostname;
        let addr = resolve(&self.coordinator).await?;
        join::join(&self.endpoint, addr, token, &hostname, &self.state_dir, self.link_timeout).await
    }

    /// Joins if needed and opens an authenticated connection, within the connect gate.
    async fn handshake(&self) -> Result<(HostCredentials, quinn::Connection), LinkError> {
        let _permit = match &self.connect_gate {
            Some(gate) => Some(
                gate.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| LinkError::Connection("the fleet is shutting down".into()))?,
            ),
            None => None,
        };
        let credentials = self.credentials().await?;
        let addr = resolve(&self.coordinator).await?;
        let connection = gpuspot_common::transport::connect(
            &self.endpoint,
            addr,
            credentials.client_config()?,
            self.link_timeout,
        )
        .await?;
        Ok((credentials, connection))
    }

    async fn connect_once(&mut self) -> Result<(), LinkError> {
        let (credentials, connection) = self.handshake().await?;
        let result = session::run(self, &connection, &credentials).await;
        if let Err(LinkError::Refused { code, .. }) = &result
            && Reaction::to(*code) == Reaction::JoinAgain
        {
            tracing::warn!("the coordinator does not know this host's certificate; joining again");
            for file in ["host-id", "host.key", "host.pem", "ca.pem"] {
                let _ = std::fs::remove_file(self.state_dir.join(file));
            }
        }
        connection.close(0u32.into(), b"agent session over");
        result
    }
}
