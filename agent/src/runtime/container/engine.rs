//! The host's container engine: connecting to its Docker Engine API (a unix socket, which
//! Docker and Podman both serve), checking that it answers, and what kind of engine it is.

use super::ContainerError;
use bollard::{ClientVersion, Docker};
use std::future::Future;

/// The API version we speak. Podman 4.3 serves 1.41, which has everything we use (device
/// requests came in 1.40); newer engines serve older versions too.
const API_VERSION: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };
/// How long one request may take to answer with its headers. Streams (wait, logs, pulls)
/// answer at once and are not bounded by it.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Which engine serves the API: they differ in how CDI devices are named in a create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Podman,
    Docker,
}

/// A connected, answering engine.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    /// As configured, e.g. `unix:///run/podman/podman.sock`.
    pub url: String,
    pub kind: EngineKind,
    /// `Podman Engine 4.3.1`, for logs.
    pub version: String,
}

impl Engine {
    /// Connects to `url` and asks for its version. Runs on a thread of its own, so it may be
    /// called from anywhere (inside a runtime or not).
    pub fn connect(url: &str) -> Result<Engine, ContainerError> {
        let docker = client(url)?;
        let checked = docker.clone();
        let version = block_on_side(async move { checked.version().await })
            .map_err(|source| ContainerError::Unreachable { url: url.to_owned(), source })?;
        let podman = version
            .components
            .iter()
            .flatten()
            .find(|c| c.name.to_ascii_lowercase().contains("podman"));
        let (kind, version) = match podman {
            Some(c) => (EngineKind::Podman, format!("{} {}", c.name, c.version)),
            None => (EngineKind::Docker, format!("Docker {}", version.version.unwrap_or_default())),
        };
        Ok(Engine { docker, url: url.to_owned(), kind, version })
    }
}

/// A client for `unix://PATH` (or a bare path). Nothing is sent yet.
fn client(url: &str) -> Result<Docker, ContainerError> {
    let path = url.strip_prefix("unix://").unwrap_or(url);
    if !path.starts_with('/') {
        return Err(ContainerError::Url(url.to_owned()));
    }
    Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, &API_VERSION)
        .map_err(|source| ContainerError::Unreachable { url: url.to_owned(), source })
}

/// Runs `future` to completion on a thread and a runtime of its own. The trait's methods
/// are synchronous and may be called on a runtime worker, where blocking on the caller's
/// runtime would panic. The client opens a connection per request, so nothing it starts
/// here outlives the call.
pub fn block_on_side<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime (only fails when out of file descriptors)");
            runtime.block_on(future)
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_name_a_unix_socket() {
        assert!(matches!(client("tcp://127.0.0.1:2375"), Err(ContainerError::Url(_))));
        let missing = Engine::connect("unix:///nonexistent/engine.sock").err().expect("an error");
        let text = missing.to_string();
        assert!(text.contains("unix:///nonexistent/engine.sock"), "{text}");
    }
}
