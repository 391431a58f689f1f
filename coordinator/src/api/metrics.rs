//! `GET /metrics` (Prometheus text format); it needs no token (described by hand in
//! [`super::openapi`]).

use super::AppState;
use super::error::HttpError;
use crate::actors::ApiRequest;
use crate::metrics::{METRICS, One, RequestLabels};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let stats = state.ask(|reply| ApiRequest::Stats { reply }).await?;
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = METRICS.render(&stats, accept);
    Ok(HttpResponse::Ok().content_type(content_type).body(body))
}

/// Counts every API request and its latency (docs/contracts.md#operating-hosts), by method and
/// status.
pub async fn count(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Clients choose the method: any other than the standard ones counts as OTHER, so a
    // flood of invented methods cannot grow the label sets without bound.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "OTHER".to_owned(),
    };
    let started = std::time::Instant::now();
    let response = next.call(request).await?;
    let status = response.status().as_u16();
    METRICS.api_requests.get_or_create(&RequestLabels { method: method.clone(), status }).inc();
    let latency = started.elapsed().as_secs_f64();
    METRICS.api_latency.get_or_create(&One { name: method }).observe(latency);
    Ok(response)
}
