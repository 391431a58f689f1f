//! Starts a coordinator inside the current actix system: store, CA, cluster actor, QUIC
//! listener and HTTP API, and writes `endpoints.json` into the data dir so tools (and the
//! test harness) find the addresses it actually bound.

use crate::actors::ClusterActor;
use crate::api::{self, AppState};
use crate::config::Settings;
use crate::core::Cluster;
use crate::quic::{self, LogStore, QuicContext};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::store::writer::Writer;
use actix::Actor;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use gpuspot_common::pki::{CertificateAuthority, JoinToken};
use gpuspot_common::{Clock, SystemClock};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Running {
    pub http_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    pub admin_token: String,
    /// Whether the admin token was generated (and should be shown to the operator).
    pub admin_token_generated: bool,
    http: actix_web::dev::ServerHandle,
    endpoint: quinn::Endpoint,
}

impl Running {
    pub async fn stop(self) {
        self.endpoint.close(0u32.into(), b"coordinator shutting down");
        self.http.stop(true).await;
    }
}

/// The admin token: configured (or `GPUSPOT_ADMIN_TOKEN`), else the one saved in the data
/// dir by an earlier start, else a new one saved there.
fn admin_token(settings: &Settings) -> anyhow::Result<(String, bool)> {
    if let Some(token) = &settings.admin_token {
        return Ok((token.clone(), false));
    }
    let path = settings.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok((token.trim().to_owned(), false));
    }
    let token = hex_token();
    write_private(&path, &token)?;
    Ok((token, true))
}

/// The QUIC stateless-reset key, kept in the data dir so that it survives restarts.
fn quic_reset_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("quic-reset.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return hex::decode(text.trim()).with_context(|| format!("reading {}", path.display()));
    }
    let key: [u8; 32] = rand::random();
    write_private(&path, &hex::encode(key))?;
    Ok(key.to_vec())
}

fn hex_token() -> String {
    let bytes: [u8; 20] = rand::random();
    hex::encode(bytes)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Creates a join token for agents (works whether or not the coordinator is running).
pub fn create_join_token(data_dir: &Path) -> anyhow::Result<JoinToken> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let ca = CertificateAuthority::load_or_create(data_dir)?;
    let store = SqliteStore::open(data_dir)?;
    let token = JoinToken::generate(&ca);
    store.add_join_token(&token.secret_hash(), chrono::Utc::now())?;
    Ok(token)
}

/// Starts everything; call from inside `actix::System::with_tokio_rt`.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let data_dir = settings.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let ca = Arc::new(CertificateAuthority::load_or_create(&data_dir)?);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data_dir)?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let loaded = store.load().context("loading coordinator state")?;
    tracing::info!(hosts = loaded.hosts.len(), instances = loaded.instances.len(), "state loaded");
    let core = Cluster::new(settings.pools.clone(), settings.timers.clone())
        .restore(loaded.hosts, loaded.instances, loaded.last_event_id, clock.now())
        .with_prices(loaded.prices)
        .with_accounts(loaded.accounts.clone(), loaded.last_ledger_id)
        .with_deployments(loaded.deployments)
        .with_snapshots(loaded.snapshots)
        .with_snapshot_limit(settings.snapshot_max_bytes);
    let directory = Arc::new(crate::directory::Directory::default());
    for account in &loaded.accounts {
        directory.add(account);
    }
    let (events, _) = tokio::sync::broadcast::channel(4096);
    crate::webhook::spawn(settings.webhook.clone(), directory.clone(), events.subscribe());
    let writer = Writer::start(store.clone());
    let cluster = ClusterActor::new(core, writer, clock, events.clone()).start();
    let logs = LogStore::new(data_dir.join("logs"));
    let snapshot_files = crate::snapshots::SnapshotFiles::new(data_dir.join("snapshots"));
    let stale = snapshot_files.remove_stale_parts();
    if stale > 0 {
        tracing::info!(stale, "removed snapshot uploads interrupted by a restart");
    }

    let idle = (settings.timers.host_lost_after * 2).max(Duration::from_secs(5));
    let endpoint = gpuspot_common::transport::server_endpoint_with_reset_key(
        settings.quic,
        ca.server_config()?,
        idle,
        &quic_reset_key(&data_dir)?,
    )?;
    let quic_addr = endpoint.local_addr()?;
    quic::serve(
        endpoint.clone(),
        Arc::new(QuicContext {
            store: store.clone(),
            ca,
            cluster: cluster.clone(),
            logs: logs.clone(),
            snapshots: snapshot_files,
            snapshot_max_bytes: settings.snapshot_max_bytes,
        }),
    );

    let (admin_token, admin_token_generated) = admin_token(&settings)?;
    let state = web::Data::new(AppState {
        cluster,
        admin_token: admin_token.clone(),
        logs,
        store: store.clone(),
        events: events.clone(),
        directory,
    });
    let server =
        HttpServer::new(move || App::new().app_data(state.clone()).configure(api::configure))
            .workers(2)
            .disable_signals()
            .bind(settings.http)
            .with_context(|| format!("binding the HTTP API on {}", settings.http))?;
    let http_addr = *server.addrs().first().context("HTTP server bound no address")?;
    let server = server.run();
    let http = server.handle();
    actix_rt::spawn(server);

    let endpoints =
        serde_json::json!({ "http": http_addr.to_string(), "quic": quic_addr.to_string() });
    std::fs::write(data_dir.join("endpoints.json"), endpoints.to_string())?;
    tracing::info!(%http_addr, %quic_addr, data_dir = %data_dir.display(), "coordinator running");
    Ok(Running { http_addr, quic_addr, admin_token, admin_token_generated, http, endpoint })
}
