//! Several coordinators on one PostgreSQL (docs/architecture.md, standby coordinators):
//! exactly one leads. A coordinator opens its store, then — with PostgreSQL — waits as a
//! standby (its API answering only `/healthz` and redirects, see [`standby`]) until it
//! takes the lease, and only then loads the state and starts everything else. The leader
//! renews the lease every quarter of its length; when it learns that another took it (a
//! renewal or a fenced commit says so) it steps down: the process ends, and its supervisor
//! starts it again as a standby.

pub mod standby;

use crate::config::Settings;
use crate::store::postgres::PostgresStore;
use crate::store::postgres::lease::Candidate;
use crate::store::url::Opened;
use anyhow::Context as _;
use gpuspot_common::pki::CertificateAuthority;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What `/healthz` says about leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Standby,
}

/// Where the leader is reached, as its lease row advertises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderAddrs {
    /// Its API (`http://…`), where standbys redirect clients.
    pub http: String,
    /// Its agents' endpoint (`HOST:PORT`), where standbys send agents.
    pub quic: String,
}

/// This coordinator's role and the leader's addresses, shared with the HTTP handlers and
/// the standby's agent endpoint.
#[derive(Clone, Debug)]
pub struct Health(Arc<RwLock<(Role, Option<LeaderAddrs>)>>);

impl Health {
    pub fn new(role: Role, leader: Option<LeaderAddrs>) -> Self {
        Self(Arc::new(RwLock::new((role, leader))))
    }

    pub fn set(&self, role: Role, leader: Option<LeaderAddrs>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = (role, leader);
    }

    /// The role and the leader's API URL.
    pub fn get(&self) -> (Role, Option<String>) {
        let (role, leader) = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        (role, leader.map(|l| l.http))
    }

    /// The leader's agents' endpoint, while one leads.
    pub fn leader_quic(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).1.as_ref().map(|l| l.quic.clone())
    }
}

/// Opens the configured store (connecting to PostgreSQL off the async threads).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Opened> {
    let (url, dir) = (settings.store.clone(), settings.data_dir.clone());
    tokio::task::spawn_blocking(move || url.open(&dir))
        .await
        .context("opening the store")?
        .with_context(|| format!("opening the store {}", settings.store))
}

/// The CA: the data dir's, or with a shared store the one every coordinator of it uses
/// (the first one offered), written into the data dir so that tools there find it.
pub async fn certificate_authority(
    data_dir: &Path,
    shared: Option<&Arc<PostgresStore>>,
) -> anyhow::Result<CertificateAuthority> {
    let local = CertificateAuthority::load_or_create(data_dir)?;
    let Some(store) = shared.cloned() else { return Ok(local) };
    let read = |name: &str| std::fs::read_to_string(data_dir.join(name));
    let (cert, key) = (read("ca.pem")?, read("ca.key")?);
    let offered = (cert.clone(), key.clone());
    let (shared_cert, shared_key) =
        tokio::task::spawn_blocking(move || store.share_ca(&offered.0, &offered.1)).await??;
    if shared_cert == cert && shared_key == key {
        return Ok(local);
    }
    crate::store::files::write_private(&data_dir.join("ca.key"), &shared_key)?;
    crate::store::files::write_private(&data_dir.join("ca.pem"), &shared_cert)?;
    Ok(CertificateAuthority::load_or_create(data_dir)?)
}

/// The leader's hold on the lease, kept by a renewal task until dropped.
pub struct Leadership {
    store: Arc<PostgresStore>,
    epoch: i64,
    renewal: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Resolves once this coordinator learned that another took the lease.
    pub async fn deposed(&self) {
        let mut deposed = self.store.deposed();
        let _ = deposed.wait_for(|d| *d).await;
    }

    /// At a clean stop, after the last commit: a standby takes over at once.
    pub async fn release(self) {
        self.renewal.abort();
        let (store, epoch) = (self.store, self.epoch);
        match tokio::task::spawn_blocking(move || store.release(epoch)).await {
            Ok(Ok(())) => tracing::info!(epoch, "leadership lease released"),
            Ok(Err(error)) => tracing::warn!(%error, "could not release the lease"),
            Err(error) => tracing::warn!(%error, "could not release the lease"),
        }
    }
}

/// Where this coordinator listens, decided before it leads: standbys send clients and
/// agents to the leader's advertised addresses, so they are fixed from the start.
pub struct Listeners {
    pub http: TcpListener,
    pub http_url: String,
    /// The agents' endpoint; a standby sends every agent on it to the leader.
    pub quic: quinn::Endpoint,
}

impl Listeners {
    pub fn bind(
        settings: &Settings,
        tls: rustls::ServerConfig,
        idle: Duration,
        reset_key: &[u8],
    ) -> anyhow::Result<Self> {
        refuse_unreachable_advertisement(settings)?;
        let http = bind_http(settings.http)
            .with_context(|| format!("binding the HTTP API on {}", settings.http))?;
        let bound = http.local_addr()?;
        let http_url =
            settings.ha.advertise_http.clone().unwrap_or_else(|| format!("http://{bound}"));
        let quic = gpuspot_common::transport::server_endpoint_with_reset_key(
            settings.quic,
            tls,
            idle,
            reset_key,
        )?;
        Ok(Self { http, http_url, quic })
    }

    pub fn quic_addr(&self) -> std::io::Result<SocketAddr> {
        self.quic.local_addr()
    }

    fn candidate(&self, settings: &Settings) -> Candidate {
        let bound = self.quic.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let quic_addr = settings.ha.advertise_quic.clone().unwrap_or(bound);
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Candidate { holder, http_url: self.http_url.clone(), quic_addr }
    }
}

/// With other coordinators on the same database, what this one advertises is where clients
/// and agents are sent: `0.0.0.0` there would send them (and their tokens) to whatever listens
/// on their own machine, so a wildcard bind needs an explicit advertisement.
fn refuse_unreachable_advertisement(settings: &Settings) -> anyhow::Result<()> {
    if !matches!(settings.store, crate::store::url::StoreUrl::Postgres(_)) {
        return Ok(());
    }
    if settings.ha.advertise_http.is_none() && settings.http.ip().is_unspecified() {
        anyhow::bail!(
            "http {} is a wildcard address: set [ha] advertise_http (GPUSPOT_ADVERTISE_HTTP) to \
             the URL clients reach this coordinator at",
            settings.http
        );
    }
    if settings.ha.advertise_quic.is_none() && settings.quic.ip().is_unspecified() {
        anyhow::bail!(
            "quic {} is a wildcard address: set [ha] advertise_quic (GPUSPOT_ADVERTISE_QUIC) to \
             the address agents reach this coordinator at",
            settings.quic
        );
    }
    Ok(())
}

/// As actix binds it (address reuse, its default backlog of 1024), but bound before the
/// server runs, so that the standby's server and then the leader's serve the same socket.
fn bind_http(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// With a shared store: serves as a standby until this coordinator takes the lease, then
/// keeps renewing it. With SQLite there is nothing to wait for.
pub async fn lead(
    settings: &Settings,
    opened: &Opened,
    listeners: &Listeners,
    health: &Health,
    endpoints: impl Fn() -> anyhow::Result<()>,
) -> anyhow::Result<Option<Leadership>> {
    let me = listeners.candidate(settings);
    let Some(store) = opened.shared.clone() else {
        health.set(Role::Leader, Some(me.addrs()));
        crate::metrics::METRICS.leader.set(1);
        return Ok(None);
    };
    let lease = settings.ha.lease;
    // One look first, so that a standby names the leader from its first answer on.
    let epoch = match attempt(&store, &me, lease, health).await {
        Some(epoch) => epoch,
        None => {
            let api = standby::Guard {
                limits: settings.api.limits,
                header_timeout: settings.api.header_timeout,
            };
            let standby = standby::serve(listeners.http.try_clone()?, health.clone(), api)?;
            let refusing = crate::quic::standby::serve(listeners.quic.clone(), health.clone());
            let gateway = settings.gateway.as_ref().map(|g| {
                let guard = standby::Guard { limits: g.limits, header_timeout: g.header_timeout };
                standby::refuse_gateway(g.listen, guard)
            });
            let gateway = gateway.transpose().context("binding the standby's gateway")?;
            endpoints()?;
            let epoch = campaign(&store, &me, lease, health).await;
            refusing.abort();
            standby.stop(false).await;
            if let Some(gateway) = gateway {
                gateway.stop(false).await;
            }
            epoch
        }
    };
    tracing::info!(epoch, http = %me.http_url, quic = %me.quic_addr, "took the leadership lease");
    health.set(Role::Leader, Some(me.addrs()));
    crate::metrics::METRICS.leader.set(1);
    crate::metrics::METRICS.leader_changes.inc();
    let renewal = tokio::spawn(renew(store.clone(), epoch, lease));
    Ok(Some(Leadership { store, epoch, renewal }))
}

/// Tries to take the lease every quarter lease; meanwhile `health` names the leader.
async fn campaign(
    store: &Arc<PostgresStore>,
    me: &Candidate,
    lease: Duration,
    health: &Health,
) -> i64 {
    loop {
        tokio::time::sleep(lease / 4).await;
        if let Some(epoch) = attempt(store, me, lease, health).await {
            return epoch;
        }
    }
}

/// One try at the lease; when another holds it, `health` names that leader.
async fn attempt(
    store: &Arc<PostgresStore>,
    me: &Candidate,
    lease: Duration,
    health: &Health,
) -> Option<i64> {
    let (store, me) = (store.clone(), me.clone());
    let tried = tokio::task::spawn_blocking(move || match store.try_lead(&me, lease)? {
        Some(epoch) => Ok(Ok(epoch)),
        None => store.lease_row().map(Err),
    })
    .await;
    match tried {
        Ok(Ok(Ok(epoch))) => return Some(epoch),
        Ok(Ok(Err(row))) => health.set(
            Role::Standby,
            row.live.then_some(LeaderAddrs { http: row.http_url, quic: row.quic_addr }),
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "standby cannot reach the store");
            health.set(Role::Standby, None);
        }
        Err(error) => tracing::warn!(%error, "lease attempt failed"),
    }
    None
}

/// Renews every quarter lease until a renewal finds the lease taken.
async fn renew(store: Arc<PostgresStore>, epoch: i64, lease: Duration) {
    loop {
        tokio::time::sleep(lease / 4).await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.renew(epoch, lease)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::error!(epoch, "another coordinator took the leadership lease");
                return;
            }
            Ok(Err(error)) => tracing::warn!(%error, epoch, "cannot renew the leadership lease"),
            Err(error) => tracing::warn!(%error, "lease renewal failed"),
        }
    }
}
