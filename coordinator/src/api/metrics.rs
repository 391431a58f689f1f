//! `GET /metrics` (Prometheus text format), `GET /openapi.json` and the dashboard at `/`.
//! Metrics and the OpenAPI document need no token; the dashboard asks for one and then
//! uses the API like any client.

use super::AppState;
use super::error::HttpError;
use crate::actors::ApiRequest;
use actix_web::{HttpResponse, web};
use std::fmt::Write;

const OPENAPI: &str = include_str!("openapi.json");
const DASHBOARD: &str = include_str!("dashboard.html");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi))
        .route("/", web::get().to(dashboard));
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let stats = state.ask(|reply| ApiRequest::Stats { reply }).await?;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let by = |key: &str, map: &std::collections::BTreeMap<&str, usize>| {
        map.iter().map(|(k, v)| (format!("{{{key}=\"{k}\"}}"), v.to_string())).collect()
    };
    gauge("gpuspot_hosts", "Hosts by link state.", by("state", &stats.hosts_by_state));
    gauge(
        "gpuspot_instances",
        "Instances by lifecycle state.",
        by("state", &stats.instances_by_state),
    );
    let pool = |f: &dyn Fn(&crate::actors::messages::PoolView) -> String| {
        stats.pools.iter().map(|p| (format!("{{model=\"{}\"}}", p.settings.model), f(p))).collect()
    };
    gauge(
        "gpuspot_pool_units_total",
        "Healthy units per pool.",
        pool(&|p| p.usage.total.to_string()),
    );
    gauge("gpuspot_pool_units_free", "Free units per pool.", pool(&|p| p.usage.free.to_string()));
    gauge(
        "gpuspot_pool_market_price",
        "Spot market price per GPU-hour.",
        pool(&|p| p.market_price.to_string()),
    );
    gauge(
        "gpuspot_pool_list_price",
        "List price per GPU-hour.",
        pool(&|p| p.settings.list_price.to_string()),
    );
    gauge(
        "gpuspot_deployments_active",
        "Deployments not yet ended.",
        vec![(String::new(), stats.deployments.to_string())],
    );
    gauge("gpuspot_accounts", "Accounts.", vec![(String::new(), stats.accounts.to_string())]);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(DASHBOARD)
}
