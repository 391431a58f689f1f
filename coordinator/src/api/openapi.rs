//! The OpenAPI document, generated from the code (utoipa, docs/architecture.md#dependencies), and
//! the routes that serve it: `GET /openapi.json` and the Swagger UI at `GET /docs` (its assets are
//! compiled in, so the page works offline).
//!
//! Every API route is registered through utoipa-actix-web's `service(…)`, which takes the
//! path and method from the handler's own `#[get(…)]`/`#[post(…)]` and its
//! `#[utoipa::path(…)]` from beside it: a route cannot be served without being in the
//! document. The few routes registered otherwise (`/metrics` and `/`, in
//! [`super::metrics`], and the Swagger UI's own) are described here by hand;
//! `tests` below probes every documented operation against the assembled app and checks
//! that no `.route(…)` bypasses the document.

use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::{App, HttpResponse, get, http::header, web};
use gpuspot_api::{CoordinatorRole, ErrorBody, Health};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gpuspot",
        version = "1",
        description = "Spot GPU cloud: instances, deployments, market, billing. \
            Every error is `{\"error\":{\"code\",\"message\"}}`; times are RFC 3339 UTC; money \
            is a decimal string. An account token sees only its own resources (another \
            account's ids answer 404); routes marked admin only answer 403 to account tokens."
    ),
    paths(metrics_doc, document_doc, docs_page_doc),
    components(schemas(ErrorBody)),
    modifiers(&Bearer),
    security(("bearer" = [])),
    tags(
        (name = "instances", description = "Instances: create, list, change, terminate, logs"),
        (name = "exec", description = "Commands inside a running instance"),
        (name = "deployments", description = "ReplicaSet, Job and Container deployments"),
        (name = "hosts", description = "The fleet (admin only)"),
        (name = "pools", description = "Per GPU model: prices and availability"),
        (name = "accounts", description = "Accounts, payments, tokens and ledgers"),
        (name = "snapshots", description = "Snapshots kept for instances and deployments"),
        (name = "events", description = "Every change, as server-sent events"),
        (name = "messages", description = "The accounts' inboxes"),
        (name = "operations", description = "Health, metrics, this document, the dashboard"),
    )
)]
struct ApiDoc;

/// The `bearer` scheme that the document's global `security` names.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, document: &mut Document) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The admin token from the config, or an account's token"))
            .build();
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The whole API on `app`: the routes of [`super::configure`] and [`super::metrics`], the
/// document built from them, and the docs page.
pub fn assemble<T>(app: App<T>) -> App<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    let (app, document) = documented(app.configure(super::metrics::routes));
    app.service(SwaggerUi::new("/docs/{_:.*}").url(DOCUMENT_PATH, document))
}

/// The document as [`assemble`] serves it.
pub fn document() -> Document {
    documented(App::new()).1
}

/// `app` with the documented routes, and the document that utoipa-actix-web collected
/// while registering them.
fn documented<T>(app: App<T>) -> (App<T>, Document)
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(super::configure)
        .configure(docs_routes)
        .split_for_parts()
}

fn docs_routes(cfg: &mut ServiceConfig) {
    cfg.service(docs_redirect);
}

/// The page's assets are relative to `/docs/`, so `/docs` itself only redirects there.
#[utoipa::path(
    tag = "operations", operation_id = "docs", security(()),
    responses((status = 308, description = "Redirect to `/docs/`, the rendered documentation"))
)]
#[get("/docs")]
async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/docs/")).finish()
}

/// `GET /healthz` (registered in [`super::configure`]).
#[utoipa::path(
    tag = "operations", operation_id = "healthz", security(()),
    responses((status = 200, description = "The coordinator answers", body = Health))
)]
#[get("/healthz")]
pub async fn healthz(health: Option<web::Data<crate::ha::Health>>) -> HttpResponse {
    let (role, leader) = health.map_or((crate::ha::Role::Leader, None), |h| h.get());
    let role = match role {
        crate::ha::Role::Leader => CoordinatorRole::Leader,
        crate::ha::Role::Standby => CoordinatorRole::Standby,
    };
    HttpResponse::Ok().json(Health { status: "ok".to_owned(), role, leader })
}

// The functions below are never called: each describes a route registered elsewhere, for
// its `#[utoipa::path]`.

/// Prometheus metrics; OpenMetrics when the client asks for it.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics", security(()),
    responses((status = 200, description = "Prometheus text format, or OpenMetrics if asked for",
        content((String = "text/plain"), (String = "application/openmetrics-text"))))
)]
#[allow(dead_code)]
fn metrics_doc() {}

/// This document (OpenAPI 3.1).
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations", operation_id = "openapi", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
#[allow(dead_code)]
fn document_doc() {}

/// The rendered documentation (Swagger UI) and its assets, all served from the binary.
#[utoipa::path(
    get, path = "/docs/{file}", tag = "operations", operation_id = "docs_page", security(()),
    params(("file" = String, Path, description = "Empty for the page, else an asset")),
    responses(
        (status = 200, description = "The page or an asset", content(
            (String = "text/html"), (String = "text/javascript"), (String = "text/css"),
            (String = "image/png"), (String = "application/json"))),
        (status = 404, description = "No such asset"),
    )
)]
#[allow(dead_code)]
fn docs_page_doc() {}

#[cfg(test)]
mod tests;
