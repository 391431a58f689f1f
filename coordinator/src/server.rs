//! Starts a coordinator inside the current actix system: store, CA, cluster actor, QUIC
//! listener and HTTP API, and writes `endpoints.json` into the data dir so tools (and the
//! test harness) find the addresses it actually bound. The data dir is kept 0700 and its
//! secrets (database, CA key, admin token, reset key) 0600 (docs/contracts.md#limits). With a
//! shared PostgreSQL store it first waits as a standby until it takes the lead ([`crate::ha`]).

mod services;

use crate::actors::ClusterActor;
use crate::config::Settings;
use crate::store::files::{self, restrict};
use crate::store::lock::DataDirLock;
use anyhow::Context as _;
use services::{Core, Lead};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub struct Running {
    pub http_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    pub admin_token: String,
    /// Whether the admin token was generated (and should be shown to the operator).
    pub admin_token_generated: bool,
    /// The SSH front door's address, when `[ssh]` is configured.
    pub ssh_addr: Option<SocketAddr>,
    /// The serving gateway's address, when `[gateway]` is configured (docs/contracts.md#serving).
    pub gateway_addr: Option<SocketAddr>,
    http: actix_web::dev::ServerHandle,
    /// The API server until [`Running::open_api`] runs it (its socket is bound already).
    unopened_api: Option<actix_web::dev::Server>,
    endpoint: quinn::Endpoint,
    /// Held while this coordinator runs: no second one starts on its data dir.
    _lock: DataDirLock,
    ssh: Option<crate::ssh::SshDoor>,
    gateway_task: Option<tokio::task::JoinHandle<()>>,
    cluster: actix::Addr<ClusterActor>,
    /// With a shared store: this coordinator's hold on the lease.
    leadership: Option<crate::ha::Leadership>,
}

impl Running {
    /// Lets the API answer (once; later calls do nothing).
    pub fn open_api(&mut self) {
        if let Some(server) = self.unopened_api.take() {
            actix_rt::spawn(server);
        }
    }

    /// Resolves when this coordinator lost the lead to another (never with SQLite): it must
    /// then end without committing anything more.
    pub async fn deposed(&self) {
        match &self.leadership {
            Some(leadership) => leadership.deposed().await,
            None => std::future::pending().await,
        }
    }

    /// How many hosts are connected now.
    pub async fn connected_hosts(&self) -> anyhow::Result<usize> {
        let hosts = crate::api::ask(&self.cluster, |reply| crate::actors::ApiRequest::ListHosts {
            listing: crate::core::listing::Listing::everything(),
            reply,
        })
        .await
        .map_err(|error| anyhow::anyhow!("listing hosts: {error:?}"))?;
        let connected = crate::core::registry::HostState::Connected;
        Ok(hosts.items.iter().filter(|host| host.state() == connected).count())
    }

    /// Stops promptly (docs/contracts.md#operating-hosts): the API first (requests in flight get a
    /// few seconds, open event streams are cut), then the cluster commits and stops taking events,
    /// and only then do the agents' connections close, so none of them is counted lost.
    pub async fn stop(self) {
        if let Some(task) = self.gateway_task {
            task.abort();
        }
        drop(self.ssh);
        // A server never run cannot answer its stop: dropping it closes its socket.
        if self.unopened_api.is_none() {
            self.http.stop(true).await;
        }
        if let Err(error) = self.cluster.send(crate::actors::cluster::Shutdown).await {
            tracing::debug!(%error, "the cluster had stopped already");
        }
        self.endpoint.close(0u32.into(), b"coordinator shutting down");
        if let Some(leadership) = self.leadership {
            leadership.release().await;
        }
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
        restrict(&path, 0o600).with_context(|| format!("tightening {}", path.display()))?;
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
        restrict(&path, 0o600).with_context(|| format!("tightening {}", path.display()))?;
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
    files::write_private(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `endpoints.json`: the addresses this coordinator bound (a standby's too: tools and the
/// test harness find it before it leads).
fn write_endpoints(
    dir: &Path,
    http: SocketAddr,
    quic: SocketAddr,
    ssh: Option<SocketAddr>,
    gateway: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let endpoints = serde_json::json!({
        "http": http.to_string(),
        "quic": quic.to_string(),
        "ssh": ssh.map(|a| a.to_string()),
        "gateway": gateway.map(|a| a.to_string()),
    });
    Ok(std::fs::write(dir.join("endpoints.json"), endpoints.to_string())?)
}

pub use crate::join::{JOIN_TOKEN_TTL, create_join_token_in, create_join_token_with};

/// Starts everything; call from inside `actix::System::with_tokio_rt`.
/// How long an idle HTTP connection stays open.
const HTTP_KEEP_ALIVE: Duration = Duration::from_secs(75);

/// How long a connection being closed (a 408, a refusal) waits for its client to take the
/// last bytes: a client that stops reading is not waited for.
const CLIENT_DISCONNECT: Duration = Duration::from_secs(1);

/// How long API requests in flight may take once a stop began.
const SHUTDOWN_GRACE: u64 = 3;

/// Starts the coordinator with its API answering at once.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let mut running = start_unopened(settings).await?;
    running.open_api();
    Ok(running)
}

/// Starts everything but the API's answers: its socket is bound (and its address known), but
/// requests wait until [`Running::open_api`] (`gpuspot dev` first waits for its hosts, so a
/// client that sees `/healthz` answer also sees them).
pub async fn start_unopened(settings: Settings) -> anyhow::Result<Running> {
    let started = start_services(settings).await;
    if started.is_err() {
        // The cluster actor of a start that failed half-way must run its `started` inside
        // the runtime: dropped unstarted with the runtime, it panics ("no reactor running").
        actix_rt::task::yield_now().await;
    }
    started
}

async fn start_services(settings: Settings) -> anyhow::Result<Running> {
    let data_dir = settings.data_dir.clone();
    let Lead { lock, ca, listeners, health, leadership, store } =
        services::take_the_lead(&settings, &data_dir).await?;
    let Core { cluster, stop_handle, ssh_cluster, events, directory, gateway_addr, gateway_task } =
        services::start_core(&settings, &store).await?;
    let endpoint = listeners.quic.clone();
    let (quic_addr, agents) =
        services::serve_agents(&settings, &data_dir, &endpoint, &store, ca, &cluster)?;
    let (admin_token, admin_token_generated) = admin_token(&settings)?;
    let ssh =
        services::start_ssh(&settings, &data_dir, ssh_cluster, &agents, &admin_token, &directory)
            .await?;
    let ssh_addr = ssh.as_ref().map(|door| door.addr);
    let token = admin_token.clone();
    let state = services::api_state(&settings, cluster, token, store, events, directory, agents);
    let (server, http_addr) = services::serve_api(&settings, listeners.http, state, health)?;
    let http = server.handle();
    write_endpoints(&data_dir, http_addr, quic_addr, ssh_addr, gateway_addr)?;
    tracing::info!(%http_addr, %quic_addr, data_dir = %data_dir.display(), "coordinator running");
    Ok(Running {
        http_addr,
        quic_addr,
        admin_token,
        admin_token_generated,
        ssh_addr,
        gateway_addr,
        http,
        unopened_api: Some(server),
        endpoint,
        ssh,
        gateway_task,
        cluster: stop_handle,
        _lock: lock,
        leadership,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o777
    }

    fn settings(data_dir: &Path) -> Settings {
        let raw = crate::config::RawConfig {
            http: Some("127.0.0.1:0".parse().unwrap()),
            quic: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(data_dir.to_owned()),
            ..Default::default()
        };
        raw.validate().unwrap()
    }

    #[test]
    fn after_a_start_the_data_dir_is_0700_and_its_secrets_0600() {
        gpuspot_common::pki::install_crypto_provider();
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        // A data dir an older version (or a umask) left open is tightened too.
        std::fs::create_dir(&data_dir).unwrap();
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let settings = settings(&data_dir);
        let dir = data_dir.clone();
        actix::System::new().block_on(async move {
            let running = start(settings).await.unwrap();
            assert!(running.admin_token_generated);
            // While it runs: SQLite removes its -wal and -shm files at a clean close.
            assert_eq!(mode(&dir), 0o700);
            for file in ["gpuspot.db", "gpuspot.db-wal", "gpuspot.db-shm", "ca.key", "admin-token"]
            {
                assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
            }
            assert_eq!(mode(&dir.join("quic-reset.key")), 0o600);
            running.stop().await;
        });
    }
}
