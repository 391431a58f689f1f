//! The dashboard at `GET /` (with `/dashboard.js` and `/dashboard.css`): plain HTML, CSS
//! and JavaScript compiled into the binary, so it works with no network beyond the
//! coordinator. It needs no token to load; it asks for one and then uses the API like any
//! client: the token stays in this origin's localStorage and goes only in `Authorization`
//! headers, the event stream included (read with `fetch`, not `EventSource`, which cannot
//! send one). Never in a cookie: cookies are not separated by port, so a tenant's page
//! behind the gateway on the same host could read it.
//!
//! Every response carries a strict Content-Security-Policy: scripts and styles only from
//! these files and connections only to this origin, so a tenant's string that slipped past
//! the page's escaping could still not run as script.

use actix_web::{HttpResponse, get};
use utoipa_actix_web::service_config::ServiceConfig;

const HTML: &str = include_str!("dashboard/dashboard.html");
const JS: &str = include_str!("dashboard/dashboard.js");
const CSS: &str = include_str!("dashboard/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(page).service(script).service(style);
}

/// The dashboard: it asks for a token, then uses this API like any client.
#[utoipa::path(
    tag = "operations", operation_id = "dashboard", security(()),
    responses((status = 200, description = "The dashboard page", body = String,
        content_type = "text/html"))
)]
#[get("/")]
async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", HTML).await
}

/// The dashboard's script.
#[utoipa::path(
    tag = "operations", operation_id = "dashboard_script", security(()),
    responses((status = 200, description = "JavaScript", body = String,
        content_type = "text/javascript"))
)]
#[get("/dashboard.js")]
async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS).await
}

/// The dashboard's style sheet.
#[utoipa::path(
    tag = "operations", operation_id = "dashboard_style", security(()),
    responses((status = 200, description = "CSS", body = String, content_type = "text/css"))
)]
#[get("/dashboard.css")]
async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS).await
}

async fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        // A new coordinator version brings a new dashboard: never serve a stale one.
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}
