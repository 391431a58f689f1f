//! The agent's side of the QUIC link: join once with a token (see [`join`]), then keep one
//! authenticated session open, reconnecting with backoff. Each session starts with a hello
//! that reports everything the host runs; the coordinator's welcome is the full desired
//! state, which the [`crate::supervisor::Supervisor`] applies.

pub mod exec;
pub mod join;
mod refusal;
mod route;
mod session;

use crate::config::AgentSettings;
use crate::local_host::LocalHost;
use gpuspot_common::pki::HostCredentials;
use gpuspot_common::protocol::RefusalCode;
use refusal::Reaction;
use route::{Next, Route};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Retrying cannot help (bad token, incompatible coordinator): the agent must stop.
    #[error("{0}")]
    Fatal(String),
    #[error("coordinator refused the session: {reason}")]
    Refused { code: RefusalCode, reason: String },
    /// A standby answered: `leader` serves agents, and is tried next at once.
    #[error("{reason}; going on to the leader at {leader}")]
    NotLeader { leader: String, reason: String },
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

/// How this host reaches the coordinator, and what its link keeps across sessions.
pub(crate) struct Link {
    /// `--coordinator`, and the leader a standby named.
    route: Route,
    join_token: Option<String>,
    state_dir: PathBuf,
    link_timeout: Duration,
    endpoint: quinn::Endpoint,
    /// Bounds how many hosts join or handshake at once (a fleet shares one).
    connect_gate: Option<Arc<Semaphore>>,
    stats: Arc<LinkStats>,
    /// Whether the last session got as far as the coordinator's welcome.
    welcomed: bool,
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

impl Link {
    pub(crate) fn new(settings: &AgentSettings, endpoint: quinn::Endpoint) -> Self {
        Self {
            route: Route::new(&settings.coordinator),
            join_token: settings.join_token.clone(),
            state_dir: settings.state_dir.clone(),
            link_timeout: settings.link_timeout,
            endpoint,
            connect_gate: None,
            stats: Arc::new(LinkStats::default()),
            welcomed: false,
        }
    }

    pub(crate) fn set_connect_gate(&mut self, gate: Arc<Semaphore>) {
        self.connect_gate = Some(gate);
    }

    pub(crate) fn set_stats(&mut self, stats: Arc<LinkStats>) {
        self.stats = stats;
    }

    pub(crate) fn stats(&self) -> Arc<LinkStats> {
        self.stats.clone()
    }

    /// Keeps a session with the coordinator open for `host`, reconnecting with backoff,
    /// until `shutdown` resolves or a fatal link error.
    pub(crate) async fn serve(
        &mut self,
        host: &mut LocalHost,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LinkError> {
        tokio::pin!(shutdown);
        let mut backoff = Backoff { next: Backoff::FIRST };
        loop {
            let outcome = tokio::select! {
                _ = &mut shutdown => break,
                outcome = self.connect_once(host) => outcome,
            };
            match outcome {
                Err(LinkError::Fatal(reason)) => return Err(LinkError::Fatal(reason)),
                Err(LinkError::NotLeader { leader, reason }) => {
                    tracing::info!(%leader, %reason, "the coordinator is a standby; going on to the leader");
                    if self.route.sent_on(leader) == Next::AtOnce {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "link to the coordinator down; reconnecting");
                    self.route.failed();
                }
                Ok(()) => {
                    self.route.ended();
                    backoff.reset();
                }
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
        Ok(())
    }

    async fn credentials(&self, host: &LocalHost) -> Result<HostCredentials, LinkError> {
        if let Some(credentials) = HostCredentials::load(&self.state_dir)? {
            return Ok(credentials);
        }
        let Some(token) = &self.join_token else {
            return Err(LinkError::Fatal(format!(
                "this host has not joined yet (no credentials in {}): give it a token from `gpuspot-coordinator token create` with --join-token-file PATH (- for stdin) or GPUSPOT_JOIN_TOKEN",
                self.state_dir.display()
            )));
        };
        let hostname = host.discovery.inventory()?.hostname;
        let addr = resolve(self.route.target()).await?;
        join::join(&self.endpoint, addr, token, &hostname, &self.state_dir, self.link_timeout).await
    }

    /// Joins if needed and opens an authenticated connection, within the connect gate.
    async fn handshake(
        &self,
        host: &LocalHost,
    ) -> Result<(HostCredentials, quinn::Connection), LinkError> {
        let _permit = match &self.connect_gate {
            Some(gate) => Some(
                gate.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| LinkError::Connection("the fleet is shutting down".into()))?,
            ),
            None => None,
        };
        let credentials = self.credentials(host).await?;
        let addr = resolve(self.route.target()).await?;
        let connection = gpuspot_common::transport::connect(
            &self.endpoint,
            addr,
            credentials.client_config()?,
            self.link_timeout,
        )
        .await?;
        Ok((credentials, connection))
    }

    async fn connect_once(&mut self, host: &mut LocalHost) -> Result<(), LinkError> {
        let (credentials, connection) = self.handshake(host).await?;
        let result = session::run(self, host, &connection, &credentials).await;
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
