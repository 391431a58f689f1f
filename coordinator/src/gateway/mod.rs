//! The serving gateway (DESIGN §18): `http://GATEWAY/d/{deployment name or id}/…` is
//! proxied to one of the deployment's ready, non-draining replicas, the one with the
//! fewest requests in flight. The cluster actor publishes a new [`table::Table`] whenever
//! an endpoint changes, so a noticed replica leaves the rotation at once while its
//! requests in flight finish. A request whose body is buffered (known length up to
//! [`proxy::BUFFER_LIMIT`]) is tried on another replica when its connection cannot be
//! made: nothing reached the first one, so this is safe for every method. Connections are
//! limited per client address and in all ([`limits`]); one past its limit gets a 429 and
//! is closed, and a client that sends no request head within [`proxy::HEADER_TIMEOUT`] is
//! dropped, so slow or greedy clients cannot hold the gateway for the others.
//!
//! Plain HTTP/1.1 on hyper: the gateway needs nothing else, and hyper is already what the
//! agent's metadata socket is served with.

pub mod limits;
mod proxy;
pub mod table;

use crate::core::routes::Route;
use gpuspot_common::DeploymentId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

pub struct Gateway {
    table: RwLock<Arc<table::Table>>,
    client: proxy::Client,
    admission: limits::Admission,
}

impl Gateway {
    pub fn new(limits: limits::Limits) -> Arc<Self> {
        let admission = limits::Admission::new(limits);
        Arc::new(Self { table: Default::default(), client: proxy::client(), admission })
    }

    /// Replaces the routing table (the cluster actor calls this after endpoint changes).
    pub fn publish(&self, routes: Vec<Route>) {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        *table = Arc::new(table::Table::build(routes, &table));
    }

    fn current(&self) -> Arc<table::Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Requests received so far per deployment, for autoscaling on requests per second.
    pub fn request_counts(&self) -> HashMap<DeploymentId, u64> {
        self.current().request_counts()
    }

    /// Binds `addr` and serves until the returned task is aborted.
    pub async fn serve(
        self: &Arc<Self>,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let gateway = self.clone();
        let task = tokio::spawn(async move { proxy::accept_loop(gateway, listener).await });
        tracing::info!(%local, "gateway listening");
        Ok((local, task))
    }
}
