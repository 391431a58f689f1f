//! The agent's own `/metrics` (docs/contracts.md#operating-hosts, `--metrics ADDR`): per GPU its
//! utilisation, memory used and total, temperature and health (NVML, or the simulated profile), the
//! guests running, guest socket connections open, and the link's heartbeats and sessions.
//! Everything is read at each scrape into a fresh registry: the agent keeps no metric state of its
//! own beyond the counters it already has.

use crate::discovery::GpuDiscovery;
use crate::link::LinkStats;
use crate::metadata::ConnectionBudget;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Gpu {
    uuid: String,
    model: String,
}

/// What a scrape reads.
#[derive(Clone)]
pub struct Sources {
    pub discovery: Arc<dyn GpuDiscovery>,
    pub stats: Arc<LinkStats>,
}

/// The registry as of now.
pub fn collect(sources: &Sources) -> Registry {
    let mut registry = Registry::default();
    register_gpus(&mut registry, sources);
    register_link(&mut registry, &sources.stats);
    registry
}

/// Each GPU's memory, health, and what its status says of utilisation, memory in use and
/// temperature.
fn register_gpus(registry: &mut Registry, sources: &Sources) {
    let mut gauges = |name: &str, help: &str| {
        let family = Family::<Gpu, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let utilization = gauges("gpuspot_agent_gpu_utilization_percent", "GPU utilisation");
    let used = gauges("gpuspot_agent_gpu_memory_used_bytes", "GPU memory in use");
    let total = gauges("gpuspot_agent_gpu_memory_total_bytes", "GPU memory");
    let temperature = gauges("gpuspot_agent_gpu_temperature_celsius", "GPU temperature");
    let healthy = gauges("gpuspot_agent_gpu_healthy", "1 if the GPU is healthy, else 0");
    let inventory = sources.discovery.inventory().ok();
    let status = sources.discovery.gpu_status().unwrap_or_default();
    for gpu in inventory.iter().flat_map(|i| i.gpus.iter()) {
        let labels = Gpu { uuid: gpu.uuid.clone(), model: gpu.model.clone() };
        total.get_or_create(&labels).set((gpu.memory_mib << 20) as i64);
        let now = status.iter().find(|s| s.uuid == gpu.uuid);
        healthy.get_or_create(&labels).set(i64::from(now.map_or(gpu.healthy, |s| s.healthy)));
        if let Some(percent) = now.and_then(|s| s.utilization_percent) {
            utilization.get_or_create(&labels).set(i64::from(percent));
        }
        if let Some(mib) = now.and_then(|s| s.memory_used_mib) {
            used.get_or_create(&labels).set((mib << 20) as i64);
        }
        if let Some(celsius) = now.and_then(|s| s.temperature_celsius) {
            temperature.get_or_create(&labels).set(i64::from(celsius));
        }
    }
}

/// Guests, socket connections, sessions, heartbeats and connects.
fn register_link(registry: &mut Registry, stats: &LinkStats) {
    let mut gauge = |name: &str, help: &str, value: u64| {
        let gauge = Gauge::<i64>::default();
        gauge.set(value as i64);
        registry.register(name, help, gauge);
    };
    gauge("gpuspot_agent_guests", "Guest workloads running", stats.guests.load(Ordering::Relaxed));
    let sockets = ConnectionBudget::process().in_use() as u64;
    gauge("gpuspot_agent_socket_connections", "Guest metadata socket connections open", sockets);
    let sessions = stats.sessions.load(Ordering::Relaxed);
    gauge("gpuspot_agent_sessions", "Sessions open to the coordinator", sessions);
    let heartbeats = Counter::<u64>::default();
    heartbeats.inc_by(stats.heartbeats.load(Ordering::Relaxed));
    registry.register("gpuspot_agent_heartbeats", "Heartbeats sent to the coordinator", heartbeats);
    let connects = Counter::<u64>::default();
    connects.inc_by(stats.connects.load(Ordering::Relaxed));
    registry.register("gpuspot_agent_connects", "Sessions opened to the coordinator", connects);
}

/// Serves `/metrics` on `addr` until the task is dropped; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    sources: Sources,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "metrics listening");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sources = sources.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let answer = answer(&sources, &request);
                        async move { Ok::<_, std::convert::Infallible>(answer) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((local, task))
}

fn answer<B>(sources: &Sources, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"see /metrics\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let accept = request.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = gpuspot_common::metrics::render(&collect(sources), accept);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
