//! The serving gateway (docs/contracts.md#serving): `http://GATEWAY/d/{deployment name or id}/…` is
//! proxied to one of the deployment's ready, non-draining replicas, the one with the
//! fewest requests in flight. The cluster actor publishes a new [`table::Table`] whenever
//! an endpoint changes: a noticed replica stays in it until a replacement is ready or its
//! drain margin came ([`crate::core::rotation`]), then leaves while its requests in flight
//! finish. A request whose body is buffered (known length up to
//! [`proxy::BUFFER_LIMIT`]) is tried on another replica when its connection cannot be
//! made: nothing reached the first one, so this is safe for every method. Connections are
//! limited per client address and in all ([`crate::listen::admission`]); one past its limit
//! gets a 429 and is closed. A client that sends no request head within `header_timeout`
//! is dropped, and one whose body misses its deadline (`body_timeout`, see
//! [`crate::listen::body`]) gets a 408 and is closed, so slow or greedy clients cannot hold
//! the gateway for the others. A descriptor shortage pauses accepting, never ends it.
//!
//! Plain HTTP/1.1 on hyper: the gateway needs nothing else, and hyper is already what the
//! agent's metadata socket is served with.

mod proxy;
pub mod table;

use crate::config::GatewaySettings;
use crate::core::routes::Route;
use crate::listen::{Acceptor, Admission};
use gpuspot_common::DeploymentId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub struct Gateway {
    table: RwLock<Arc<table::Table>>,
    client: proxy::Client,
    admission: Admission,
    header_timeout: Duration,
    body_timeout: Duration,
}

impl Gateway {
    pub fn new(settings: &GatewaySettings) -> Arc<Self> {
        Arc::new(Self {
            table: Default::default(),
            client: proxy::client(),
            admission: Admission::new(settings.limits),
            header_timeout: settings.header_timeout,
            body_timeout: settings.body_timeout,
        })
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
        let acceptor = Acceptor::new(tokio::net::TcpListener::bind(addr).await?, "gateway");
        let local = acceptor.local_addr()?;
        let gateway = self.clone();
        let task = tokio::spawn(async move { proxy::accept_loop(gateway, acceptor).await });
        tracing::info!(%local, "gateway listening");
        Ok((local, task))
    }
}
