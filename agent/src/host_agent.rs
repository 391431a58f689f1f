//! One host's agent: what the host runs (see [`crate::local_host`]) and the link that keeps
//! it in step with the coordinator (see [`crate::link`]). [`crate::host`] assembles one from
//! settings; the agent binary, `gpuspot dev` and load-test fleets run it.

use crate::link::{Link, LinkError, LinkStats};
use crate::local_host::LocalHost;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// One host's agent, ready to run.
pub struct HostAgent {
    link: Link,
    host: LocalHost,
}

impl HostAgent {
    pub(crate) fn new(link: Link, host: LocalHost) -> Self {
        Self { link, host }
    }

    /// Joins and handshakes only while holding a permit of `gate` (a fleet shares one).
    pub fn with_connect_gate(mut self, gate: Arc<Semaphore>) -> Self {
        self.link.set_connect_gate(gate);
        self
    }

    /// Counts this host's link in `stats` (a fleet's hosts share one).
    pub fn with_stats(mut self, stats: Arc<LinkStats>) -> Self {
        self.link.set_stats(stats);
        self
    }

    /// The counters of this host's link.
    pub fn stats(&self) -> Arc<LinkStats> {
        self.link.stats()
    }

    /// Runs until `shutdown` resolves or a fatal link error. First takes over what an
    /// earlier agent process on this state dir left running. Workloads keep running when it
    /// returns (docs/contracts.md#guests: only a stop from the coordinator ends a workload); the
    /// next agent on this state dir adopts them.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), LinkError> {
        self.serve(shutdown).await
    }

    /// [`HostAgent::run`], then stops every workload and waits (bounded) for their ends:
    /// for hosts that live and die with their process (`gpuspot dev`, load-test fleets).
    pub async fn run_stopping_workloads(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LinkError> {
        let result = self.serve(shutdown).await;
        tracing::info!("stopping workloads");
        self.host.stop_workloads().await;
        result
    }

    async fn serve(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), LinkError> {
        self.host.supervisor.adopt();
        self.link.serve(&mut self.host, shutdown).await
    }
}
