//! The steps of a start, in the order `start_services` takes them: taking the lead (data
//! dir, store, CA, listeners), restoring the core and running it as the cluster actor, the
//! agents' QUIC side, the SSH front door and the HTTP API.

use super::{CLIENT_DISCONNECT, HTTP_KEEP_ALIVE, SHUTDOWN_GRACE, quic_reset_key, write_endpoints};
use crate::actors::ClusterActor;
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::core::Cluster;
use crate::core::cluster::Event;
use crate::core::rotation::DEFAULT_DRAIN_MARGIN;
use crate::directory::Directory;
use crate::quic::exec::ExecLinks;
use crate::quic::{self, LogStore, QuicContext};
use crate::store::Store;
use crate::store::files;
use crate::store::lock::DataDirLock;
use crate::store::writer::Writer;
use actix::{Actor, Addr};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use gpuspot_common::pki::CertificateAuthority;
use gpuspot_common::{Clock, SystemClock};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// What this coordinator holds once it leads: the data dir's lock, the CA, the listeners
/// bound before it led, the health it reports, its lease (with a shared store) and the store.
pub(super) struct Lead {
    pub lock: DataDirLock,
    pub ca: Arc<CertificateAuthority>,
    pub listeners: crate::ha::Listeners,
    pub health: crate::ha::Health,
    pub leadership: Option<crate::ha::Leadership>,
    pub store: Arc<dyn Store>,
}

/// Makes and locks the data dir, opens the store and the CA, binds the listeners, and waits
/// as a standby until this coordinator leads (at once with SQLite).
pub(super) async fn take_the_lead(settings: &Settings, data_dir: &Path) -> anyhow::Result<Lead> {
    files::private_dir(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    // Before anything in the dir is read or written (endpoints.json included).
    let lock = DataDirLock::acquire(data_dir)?;
    let opened = crate::ha::open_store(settings).await?;
    let ca = Arc::new(crate::ha::certificate_authority(data_dir, opened.shared.as_ref()).await?);
    let idle = (settings.timers.host_lost_after * 2).max(Duration::from_secs(5));
    let reset_key = quic_reset_key(data_dir)?;
    let listeners = crate::ha::Listeners::bind(settings, ca.server_config()?, idle, &reset_key)?;
    let health = crate::ha::Health::new(crate::ha::Role::Standby, None);
    let standby_endpoints = || {
        write_endpoints(data_dir, listeners.http.local_addr()?, listeners.quic_addr()?, None, None)
    };
    let leadership =
        crate::ha::lead(settings, &opened, &listeners, &health, standby_endpoints).await?;
    Ok(Lead { lock, ca, listeners, health, leadership, store: opened.store })
}

/// The running core: the cluster actor's address (and the clones taken before it ran), its
/// event channel, the accounts' directory, and the gateway when configured.
pub(super) struct Core {
    pub cluster: Addr<ClusterActor>,
    pub stop_handle: Addr<ClusterActor>,
    pub ssh_cluster: Option<Addr<ClusterActor>>,
    pub events: broadcast::Sender<Event>,
    pub directory: Arc<Directory>,
    pub gateway_addr: Option<SocketAddr>,
    pub gateway_task: Option<tokio::task::JoinHandle<()>>,
}

/// Restores the core from the store and starts it as the cluster actor, with the notifiers,
/// the store writer and (with `[gateway]`) the gateway around it. Nothing here yields after
/// the actor starts, so its address is cloned before it runs.
pub(super) async fn start_core(
    settings: &Settings,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Core> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (core, directory) = restore_core(settings, store, &clock).await?;
    let events = event_channel(settings, &directory, store);
    let writer = Writer::start(store.clone());
    let gateway = start_gateway(settings).await?;
    let mut actor = ClusterActor::new(core, writer, clock, events.clone());
    if let Some((gateway, _, _)) = &gateway {
        actor = actor.with_gateway(gateway.clone());
    }
    let cluster = actor.start();
    let stop_handle = cluster.clone();
    let (gateway_addr, gateway_task) = gateway.map(|(_, a, t)| (a, t)).unzip();
    // Before the actor runs: a clone of a running cluster's address overflows in actix.
    let ssh_cluster = settings.ssh.as_ref().map(|_| cluster.clone());
    Ok(Core { cluster, stop_handle, ssh_cluster, events, directory, gateway_addr, gateway_task })
}

/// The core as stored (loaded off the async threads) with the settings applied, and the
/// directory of its accounts.
async fn restore_core(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<(Cluster, Arc<Directory>)> {
    let loader = store.clone();
    let loaded = tokio::task::spawn_blocking(move || loader.load())
        .await?
        .context("loading coordinator state")?;
    tracing::info!(hosts = loaded.hosts.len(), instances = loaded.instances.len(), "state loaded");
    let now = clock.now();
    let core = Cluster::new(settings.pools.clone(), settings.timers.clone())
        .restore(loaded.hosts, loaded.instances, loaded.last_event_id, now)
        .with_prices(loaded.prices)
        .with_accounts(loaded.accounts.clone(), loaded.last_ledger_id, now)
        .with_deployments(loaded.deployments)
        .with_snapshots(loaded.snapshots)
        .with_snapshot_limit(settings.snapshot_max_bytes)
        .with_crash_backoff(settings.crash_backoff.clone())
        .with_default_quota(settings.default_quota)
        .with_retention(settings.retention.clone())
        .with_mail(settings.smtp.is_some())
        .with_drain_margin(
            settings.gateway.as_ref().map_or(DEFAULT_DRAIN_MARGIN, |g| g.drain_margin),
        );
    let directory = Arc::new(Directory::default());
    for account in &loaded.accounts {
        directory.add(account);
    }
    Ok((core, directory))
}

/// The event channel, with the webhooks and (with `[smtp]`) the mailer listening to it.
fn event_channel(
    settings: &Settings,
    directory: &Arc<Directory>,
    store: &Arc<dyn Store>,
) -> broadcast::Sender<Event> {
    let (events, _) = broadcast::channel(4096);
    crate::webhook::spawn(settings.webhook.clone(), directory.clone(), events.subscribe());
    if let Some(smtp) = settings.smtp.clone() {
        crate::mail::spawn(smtp, store.clone(), events.subscribe());
    }
    events
}

/// A started gateway: what the cluster actor steers, its address and its task.
type StartedGateway = (Arc<crate::gateway::Gateway>, SocketAddr, tokio::task::JoinHandle<()>);

/// With `[gateway]`: the gateway, serving on its address.
async fn start_gateway(settings: &Settings) -> anyhow::Result<Option<StartedGateway>> {
    let Some(config) = &settings.gateway else { return Ok(None) };
    let gateway = crate::gateway::Gateway::new(config);
    let (addr, task) = gateway
        .serve(config.listen)
        .await
        .with_context(|| format!("binding the gateway on {}", config.listen))?;
    Ok(Some((gateway, addr, task)))
}

/// What the agents' side shares with the SSH door and the API: the workloads' log store and
/// the hosts' exec links.
pub(super) struct Agents {
    pub logs: LogStore,
    pub exec_links: Arc<ExecLinks>,
}

/// Serves the agents on `endpoint` (bound before leading), whose address it returns; their
/// logs and snapshots live in the data dir, where snapshot uploads a restart cut short are
/// removed first.
pub(super) fn serve_agents(
    settings: &Settings,
    data_dir: &Path,
    endpoint: &quinn::Endpoint,
    store: &Arc<dyn Store>,
    ca: Arc<CertificateAuthority>,
    cluster: &Addr<ClusterActor>,
) -> anyhow::Result<(SocketAddr, Agents)> {
    let logs = LogStore::new(data_dir.join("logs"), settings.log_max_bytes);
    let snapshot_files = crate::snapshots::SnapshotFiles::new(settings.snapshot_dir.clone());
    let stale = snapshot_files.remove_stale_parts();
    if stale > 0 {
        tracing::info!(stale, "removed snapshot uploads interrupted by a restart");
    }
    let quic_addr = endpoint.local_addr()?;
    let exec_links = Arc::new(ExecLinks::default());
    let context = QuicContext {
        store: store.clone(),
        ca,
        cluster: cluster.clone(),
        logs: logs.clone(),
        snapshots: snapshot_files,
        snapshot_max_bytes: settings.snapshot_max_bytes,
        kill_timeout: settings.timers.kill_timeout,
        exec_links: exec_links.clone(),
    };
    quic::serve(endpoint.clone(), Arc::new(context));
    Ok((quic_addr, Agents { logs, exec_links }))
}

/// With `[ssh]`: the SSH front door, reaching the guests through the agents' exec links.
pub(super) async fn start_ssh(
    settings: &Settings,
    data_dir: &Path,
    cluster: Option<Addr<ClusterActor>>,
    agents: &Agents,
    admin_token: &str,
    directory: &Arc<Directory>,
) -> anyhow::Result<Option<crate::ssh::SshDoor>> {
    let (Some(ssh), Some(cluster)) = (&settings.ssh, cluster) else { return Ok(None) };
    let access = crate::ssh::Access {
        cluster,
        links: agents.exec_links.clone(),
        admin_token: admin_token.to_owned(),
        directory: directory.clone(),
    };
    Ok(Some(crate::ssh::start(ssh, data_dir, access).await?))
}

/// The state the API's handlers share.
pub(super) fn api_state(
    settings: &Settings,
    cluster: Addr<ClusterActor>,
    admin_token: String,
    store: Arc<dyn Store>,
    events: broadcast::Sender<Event>,
    directory: Arc<Directory>,
    agents: Agents,
) -> AppState {
    AppState {
        cluster,
        admin_token,
        logs: agents.logs,
        store,
        events,
        directory,
        streams: Default::default(),
        exec_links: agents.exec_links,
        policy: settings.policy.clone(),
    }
}

/// The HTTP API on `listener` (bound before leading), not yet running; and its address.
pub(super) fn serve_api(
    settings: &Settings,
    listener: std::net::TcpListener,
    state: AppState,
    health: crate::ha::Health,
) -> anyhow::Result<(actix_web::dev::Server, SocketAddr)> {
    let state = web::Data::new(state);
    let admission = Arc::new(crate::listen::Admission::new(settings.api.limits));
    let body_timeout = settings.api.body_timeout;
    let health = web::Data::new(health);
    let server = HttpServer::new(move || {
        api::openapi::assemble(App::new().app_data(state.clone()).app_data(health.clone()))
            .wrap(actix_web::middleware::from_fn(api::metrics::count))
            .wrap(actix_web::middleware::from_fn(move |request, next| {
                crate::listen::api::body_deadline(body_timeout, request, next)
            }))
    })
    .workers(2)
    .disable_signals()
    .on_connect(crate::listen::api::on_connect(admission))
    .client_request_timeout(settings.api.header_timeout)
    .client_disconnect_timeout(CLIENT_DISCONNECT)
    // Actix's 5 s default makes a client that reuses a connection after 5 idle seconds race the server's close
    // and see "connection closed before message completed" on a request that never ran.
    .keep_alive(HTTP_KEEP_ALIVE)
    // Event streams never end by themselves: a stop must not wait for them.
    .shutdown_timeout(SHUTDOWN_GRACE)
    .listen(listener)
    .with_context(|| format!("serving the HTTP API on {}", settings.http))?;
    let http_addr = *server.addrs().first().context("HTTP server bound no address")?;
    Ok((server.run(), http_addr))
}
