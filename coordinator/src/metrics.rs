//! The coordinator's metrics (docs/contracts.md#operating-hosts), through `prometheus-client`:
//! counters of API requests, placements, reclaims and notices by reason, webhook and mail
//! deliveries; histograms of API latency and notice latency (the decision until the agent says the
//! guest's socket shows it); gauges read from the cluster at each scrape (queue, market price,
//! units free and used per pool, hosts by state, instances by state, heartbeat age).
//!
//! One set per process ([`METRICS`]): the code that counts (API middleware, the cluster
//! actor, the webhook and mail tasks) reaches it without being handed it.

use crate::actors::messages::Stats;
use crate::core::cluster::Event;
use crate::core::events::EventKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct One {
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Pool {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolUnits {
    pub pool: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct State {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabel {
    pub host: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    pub api_requests: Family<RequestLabels, Counter>,
    pub api_latency: Family<One, Histogram>,
    pub placements: Counter,
    pub reclaims: Family<Reason, Counter>,
    pub notices: Family<Reason, Counter>,
    pub notice_latency: Histogram,
    pub webhook_deliveries: Family<Outcome, Counter>,
    pub mail_deliveries: Family<Outcome, Counter>,
    queue: Family<Pool, Gauge>,
    market_price: Family<Pool, FloatGauge>,
    units: Family<PoolUnits, Gauge>,
    hosts: Family<State, Gauge>,
    instances: Family<State, Gauge>,
    heartbeat_age: Family<HostLabel, FloatGauge>,
    /// 1 while this coordinator leads (docs/architecture.md, standby coordinators).
    pub leader: Gauge,
    pub leader_changes: Counter,
    pub store_commit: Histogram,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

fn seconds_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::default();
        let m = Metrics {
            api_requests: Default::default(),
            api_latency: Family::new_with_constructor(seconds_histogram),
            placements: Default::default(),
            reclaims: Default::default(),
            notices: Default::default(),
            notice_latency: seconds_histogram(),
            webhook_deliveries: Default::default(),
            mail_deliveries: Default::default(),
            queue: Default::default(),
            market_price: Default::default(),
            units: Default::default(),
            hosts: Default::default(),
            instances: Default::default(),
            heartbeat_age: Default::default(),
            leader: Default::default(),
            leader_changes: Default::default(),
            store_commit: seconds_histogram(),
            registry: Registry::default(),
        };
        m.register_api(&mut r);
        m.register_lifecycle(&mut r);
        m.register_gauges(&mut r);
        m.register_store(&mut r);
        Metrics { registry: r, ..m }
    }

    /// The HTTP API: requests by method and status, and their latency.
    fn register_api(&self, r: &mut Registry) {
        r.register(
            "gpuspot_api_requests",
            "HTTP API requests by method and status",
            self.api_requests.clone(),
        );
        r.register(
            "gpuspot_api_request_duration_seconds",
            "HTTP API latency by route method",
            self.api_latency.clone(),
        );
    }

    /// What happens to instances (placements, reclaims, notices and how fast the guest sees
    /// them) and the deliveries that tell their owners.
    fn register_lifecycle(&self, r: &mut Registry) {
        r.register("gpuspot_placements", "Instances placed on a host", self.placements.clone());
        r.register(
            "gpuspot_reclaims",
            "Instances ended by a reclaim, by reason",
            self.reclaims.clone(),
        );
        r.register(
            "gpuspot_notices",
            "Terminations scheduled (notices), by reason",
            self.notices.clone(),
        );
        r.register(
            "gpuspot_notice_latency_seconds",
            "From a notice's decision until the agent reports the guest's socket shows it",
            self.notice_latency.clone(),
        );
        r.register(
            "gpuspot_webhook_deliveries",
            "Webhook deliveries by outcome (delivered, failed attempt, given up)",
            self.webhook_deliveries.clone(),
        );
        r.register(
            "gpuspot_mail_deliveries",
            "Mails by outcome (sent, failed attempt, unsendable)",
            self.mail_deliveries.clone(),
        );
    }

    /// The gauges set from the cluster at each scrape: pools, hosts, instances and heartbeats.
    fn register_gauges(&self, r: &mut Registry) {
        r.register(
            "gpuspot_pool_queue_length",
            "Queued requests that may take a pool's GPUs",
            self.queue.clone(),
        );
        r.register(
            "gpuspot_pool_market_price",
            "Spot market price per GPU-hour",
            self.market_price.clone(),
        );
        r.register(
            "gpuspot_pool_units",
            "Healthy units per pool: free, used (holding an instance or promised to a request) or \
             unavailable (free on a cordoned, draining or disconnected host)",
            self.units.clone(),
        );
        r.register("gpuspot_hosts", "Hosts by state", self.hosts.clone());
        r.register("gpuspot_instances", "Instances by lifecycle state", self.instances.clone());
        r.register(
            "gpuspot_host_heartbeat_age_seconds",
            "Seconds since each host was last heard from",
            self.heartbeat_age.clone(),
        );
    }

    /// Leadership among coordinators sharing a store, and the store's commits.
    fn register_store(&self, r: &mut Registry) {
        r.register("gpuspot_leader", "1 while this coordinator leads", self.leader.clone());
        r.register(
            "gpuspot_leader_changes",
            "Times this coordinator took the lead",
            self.leader_changes.clone(),
        );
        r.register(
            "gpuspot_store_commit_seconds",
            "Time of one group commit to the store",
            self.store_commit.clone(),
        );
    }

    /// Counts one delivery outcome of a webhook (`delivered`, `failed`, `given_up`) or a
    /// mail (`sent`, `failed`, `refused`).
    pub fn delivery(family: &Family<Outcome, Counter>, outcome: &str) {
        family.get_or_create(&Outcome { outcome: outcome.to_owned() }).inc();
    }

    /// Counts what committed events say happened.
    pub fn observe_events(&self, events: &[Event]) {
        for event in events {
            let reason = || event.data.reason().unwrap_or("unknown").to_owned();
            match event.kind {
                EventKind::InstancePlaced => {
                    self.placements.inc();
                }
                EventKind::TerminationScheduled => {
                    self.notices.get_or_create(&Reason { reason: reason() }).inc();
                }
                EventKind::InstanceTerminated if reason().starts_with("reclaimed") => {
                    self.reclaims.get_or_create(&Reason { reason: reason() }).inc();
                }
                _ => {}
            }
        }
    }

    /// The body of `/metrics`, with the gauges read from `stats` now.
    pub fn render(&self, stats: &Stats, accept: Option<&str>) -> (&'static str, String) {
        let set = |family: &Family<Pool, Gauge>, pool: &str, value: usize| {
            family.get_or_create(&Pool { pool: pool.to_owned() }).set(value as i64);
        };
        for family in [&self.hosts, &self.instances] {
            family.clear();
        }
        self.heartbeat_age.clear();
        for pool in &stats.pools {
            let model = &pool.settings.model;
            set(&self.queue, model, stats.queued_by_pool.get(model).copied().unwrap_or(0));
            let price = pool.market_price.micros() as f64 / 1e6;
            self.market_price.get_or_create(&Pool { pool: model.clone() }).set(price);
            let usage = &pool.usage;
            let states =
                [("free", usage.free), ("used", usage.used), ("unavailable", usage.unavailable())];
            for (state, n) in states {
                let labels = PoolUnits { pool: model.clone(), state: state.to_owned() };
                self.units.get_or_create(&labels).set(n as i64);
            }
        }
        for (state, n) in &stats.hosts_by_state {
            self.hosts.get_or_create(&State { state: (*state).to_owned() }).set(*n as i64);
        }
        for (state, n) in &stats.instances_by_state {
            self.instances.get_or_create(&State { state: (*state).to_owned() }).set(*n as i64);
        }
        for (host, age) in &stats.heartbeat_ages {
            self.heartbeat_age.get_or_create(&HostLabel { host: host.clone() }).set(*age);
        }
        gpuspot_common::metrics::render(&self.registry, accept)
    }
}
