//! The SSH front door (docs/contracts.md#guests "Getting in", seed 004's "SSH command and
//! password"): `ssh -p PORT <instance-id>@<coordinator>` with the instance owner's account token
//! (or the admin token) as password opens a shell in the instance; `ssh … <id>@host CMD` runs CMD.
//! It is a russh server on `[ssh] listen`; every command goes through the same [`Gateway`] as `POST
//! /v1/instances/{id}/exec`, so it reaches only running instances the caller may see. A wrong
//! password and another account's instance are refused alike.
//!
//! Connections are capped per client address and in all (`[ssh] max_connections…`, one
//! past its limit is closed at once), one not logged in within `login_timeout` is closed,
//! and a descriptor shortage pauses accepting, never ends it (docs/contracts.md#limits).
//!
//! - [`keys`]: the host key, made once and kept in the data dir (0600).
//! - [`session`]: one client connection: login, then its session channels.
//! - [`guard`]: a connection's login deadline, and its end when the door closes.

mod guard;
mod keys;
mod session;

use crate::actors::Scope;
use crate::api::exec::Gateway;
use crate::config::SshSettings;
use crate::directory::Directory;
use crate::listen::{Acceptor, Admission};
use anyhow::Context as _;
use gpuspot_common::InstanceId;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Who may log in, and how commands reach instances.
pub struct Access {
    /// Clone it before the cluster actor starts (see [`Gateway`]).
    pub cluster: actix::Addr<crate::actors::ClusterActor>,
    pub links: Arc<crate::quic::exec::ExecLinks>,
    pub admin_token: String,
    pub directory: Arc<Directory>,
}

impl Access {
    fn gateway(&self) -> Gateway<'_> {
        Gateway { cluster: &self.cluster, links: &self.links }
    }

    /// The caller a password (an API token) stands for.
    fn scope_for(&self, token: &str) -> Option<Scope> {
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Some(Scope::Admin);
        }
        self.directory.account_for_token(token).map(Scope::Account)
    }
}

/// Token comparison whose time does not depend on where the bytes differ (the API's bearer
/// check uses it too).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A running SSH door; dropping it stops accepting and ends its connections.
pub struct SshDoor {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Dropped with the door: every connection's [`guard::Guarded`] sees it and ends.
    _open: tokio::sync::watch::Sender<()>,
}

impl Drop for SshDoor {
    fn drop(&mut self) {
        self.task.abort();
        *door_lock() = None;
    }
}

/// Binds `[ssh] listen` and serves it in the background.
pub async fn start(
    settings: &SshSettings,
    data_dir: &Path,
    access: Access,
) -> anyhow::Result<SshDoor> {
    let key = keys::load_or_create(data_dir)?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding the SSH door on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let config = Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-gpuspot".into()),
        methods: (&[russh::MethodKind::Password][..]).into(),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        max_auth_attempts: 3,
        // Shells sit idle for hours; dead clients are found by keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        ..Default::default()
    });
    let host = settings.host.clone().unwrap_or_else(|| default_host(addr));
    *door_lock() = Some(Advertised { port: addr.port(), host });
    let (open, closed) = tokio::sync::watch::channel(());
    let door = Door {
        config,
        access: Arc::new(access),
        admission: Admission::new(settings.limits),
        login_timeout: settings.login_timeout,
        closed,
    };
    let task = tokio::spawn(door.serve(Acceptor::new(listener, "SSH door")));
    tracing::info!(%addr, "SSH door open");
    Ok(SshDoor { addr, task, _open: open })
}

/// What every connection of the door shares.
struct Door {
    config: Arc<russh::server::Config>,
    access: Arc<Access>,
    admission: Admission,
    login_timeout: Duration,
    closed: tokio::sync::watch::Receiver<()>,
}

impl Door {
    /// Accepts until the door is dropped; each admitted connection runs on its own task.
    async fn serve(self, mut acceptor: Acceptor) {
        loop {
            let (stream, peer) = acceptor.next().await;
            let Some(slot) = self.admission.admit(peer.ip()) else {
                // Closed before the SSH banner: there is no way to say why in SSH.
                tracing::debug!(%peer, "SSH connection refused: too many open");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let logged_in = Arc::new(AtomicBool::new(false));
            let client = session::Client::new(self.access.clone(), peer, logged_in.clone());
            let stream =
                guard::Guarded::new(stream, self.login_timeout, logged_in, self.closed.clone());
            let config = self.config.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let ended = match russh::server::run_stream(config, stream, client).await {
                    Ok(session) => session.await,
                    Err(error) => Err(error),
                };
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "SSH connection ended");
                }
            });
        }
    }
}

/// What users are told to type: `ssh -p PORT <id>@<host>`.
struct Advertised {
    port: u16,
    host: String,
}

/// The door of this coordinator process. It is process-wide because the instance JSON is
/// built in many places that know nothing of the server around them; one process runs one
/// coordinator.
static DOOR: RwLock<Option<Advertised>> = RwLock::new(None);

fn door_lock() -> std::sync::RwLockWriteGuard<'static, Option<Advertised>> {
    DOOR.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The SSH command for instance `id` (the instance JSON's `ssh`), None when the door is off.
pub fn command_for(id: &InstanceId) -> Option<String> {
    let door = DOOR.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    door.as_ref().map(|d| format!("ssh -p {} {id}@{}", d.port, d.host))
}

/// The listen address when it names one, else this machine's name.
fn default_host(addr: SocketAddr) -> String {
    // ssh takes a bare IPv6 address in `user@host` (no brackets).
    if !addr.ip().is_unspecified() {
        return addr.ip().to_string();
    }
    gpuspot_common::process::machine_hostname()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_host_is_the_listen_address_when_it_names_one() {
        assert_eq!(default_host("127.0.0.1:22".parse().unwrap()), "127.0.0.1");
        assert_eq!(default_host("[::1]:22".parse().unwrap()), "::1");
        assert!(!default_host("0.0.0.0:22".parse().unwrap()).is_empty());
    }
}
