//! The dashboard at `GET /` (with `/dashboard.js` and `/dashboard.css`): plain HTML, CSS
//! and JavaScript compiled into the binary, so it works with no network beyond the
//! coordinator. It needs no token to load; it asks for one and then uses the API like any
//! client (the token stays in the browser's localStorage, and in the `gpuspot_token` cookie
//! scoped to `/v1/events`, see [`super::auth::StreamCaller`]).
//!
//! Every response carries a strict Content-Security-Policy: scripts and styles only from
//! these files and connections only to this origin, so a tenant's string that slipped past
//! the page's escaping could still not run as script.

use actix_web::{HttpResponse, web};

const HTML: &str = include_str!("dashboard/dashboard.html");
const JS: &str = include_str!("dashboard/dashboard.js");
const CSS: &str = include_str!("dashboard/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| asset("text/html; charset=utf-8", HTML)))
        .route("/dashboard.js", web::get().to(|| asset("text/javascript; charset=utf-8", JS)))
        .route("/dashboard.css", web::get().to(|| asset("text/css; charset=utf-8", CSS)));
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
