//! A standby's API (docs/contracts.md, standby coordinators): `/healthz` says `standby` and
//! names the leader; every other request is sent there with a 307 to the same path and
//! query, or answered 503 `no_leader` with `Retry-After: 1` while no coordinator leads.
//! Agents are sent on to the leader (see [`crate::quic::standby`]), and its gateway answers
//! 503 `not_leader`.

use super::Health;
use crate::listen::Admission;
use crate::listen::Limits;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

/// A standby's listeners hold against floods as the leader's do (per-client and total
/// connection caps, a header deadline): one it cannot refuse could keep it from taking over.
#[derive(Clone, Copy, Debug)]
pub struct Guard {
    pub limits: Limits,
    pub header_timeout: Duration,
}

/// Serves the standby API on `listener` until the returned handle stops it.
pub fn serve(
    listener: TcpListener,
    health: Health,
    guard: Guard,
) -> std::io::Result<actix_web::dev::ServerHandle> {
    let data = web::Data::new(health);
    let admission = Arc::new(Admission::new(guard.limits));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(crate::api::openapi::healthz)
            .default_service(web::to(redirect))
    })
    .workers(1)
    .disable_signals()
    .on_connect(crate::listen::api::on_connect(admission))
    .client_request_timeout(guard.header_timeout)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}

/// Answers every request to the gateway's address with 503 `not_leader` (a load balancer in
/// front routes to the coordinator whose gateway serves), until the returned handle stops it.
pub fn refuse_gateway(
    addr: std::net::SocketAddr,
    guard: Guard,
) -> std::io::Result<actix_web::dev::ServerHandle> {
    let admission = Arc::new(Admission::new(guard.limits));
    let server = HttpServer::new(|| App::new().default_service(web::to(not_leader)))
        .workers(1)
        .disable_signals()
        .on_connect(crate::listen::api::on_connect(admission))
        .client_request_timeout(guard.header_timeout)
        .bind(addr)?
        .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}

async fn not_leader() -> HttpResponse {
    HttpResponse::ServiceUnavailable().insert_header((header::RETRY_AFTER, "1")).json(
        serde_json::json!({ "error": {
            "code": "not_leader",
            "message": "this coordinator is a standby: the leader's gateway serves deployments",
        }}),
    )
}

async fn redirect(request: HttpRequest, health: web::Data<Health>) -> HttpResponse {
    match health.get().1 {
        Some(leader) => {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, format!("{leader}{path}")))
                .finish()
        }
        None => HttpResponse::ServiceUnavailable().insert_header((header::RETRY_AFTER, "1")).json(
            serde_json::json!({ "error": {
                "code": "no_leader",
                "message": "no coordinator leads right now (one takes over within the lease); retry shortly",
            }}),
        ),
    }
}
