//! The HTTP API (docs/contracts.md#http-api) on actix-web: JSON in and out, bearer tokens, and
//! errors as `{"error":{"code","message"}}` with a proper status for every bad input.
//!
//! - [`error`]: the error type and the JSON/path/query error handlers.
//! - [`auth`]: who is calling (admin or account) from the bearer token.
//! - [`instances`], [`hosts`], [`pools`]: the routes; [`views`]: the JSON shapes;
//!   [`listing`]: the `state`, `limit` and `after` of every list and its `Link` header.
//! - [`validation`]: what instance and deployment bodies must be, every problem at once.
//! - [`exec`], [`exec_ws`]: commands and interactive sessions inside an instance.
//! - [`faults`]: drills, and GPU faults injected or cleared.
//! - [`messages`]: the accounts' inboxes; [`ledger`]: their ledgers.
//! - [`dashboard`]: the browser dashboard at `/`.
//! - [`openapi`]: the OpenAPI document generated from the routes, and the docs page;
//!   the answers' shapes are the [`gpuspot_api`] types.

pub mod accounts;
pub mod auth;
pub mod dashboard;
pub mod deployments;
pub mod error;
pub mod events;
pub mod exec;
pub mod exec_ws;
pub mod faults;
pub mod hosts;
pub mod instances;
pub mod ledger;
pub mod listing;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod pools;
pub mod snapshots;
pub mod validation;
pub mod views;

use crate::actors::{ApiRequest, ClusterActor, Reply};
use crate::quic::LogStore;
use actix::Addr;
use actix_web::{HttpResponse, web};
use error::{HttpError, Internal, NotFound, StoreUnavailable};

pub struct AppState {
    pub cluster: Addr<ClusterActor>,
    pub admin_token: String,
    pub logs: LogStore,
    pub store: std::sync::Arc<dyn crate::store::Store>,
    pub events: tokio::sync::broadcast::Sender<crate::core::cluster::Event>,
    pub directory: std::sync::Arc<crate::directory::Directory>,
    /// Open event streams per token (docs/contracts.md#limits).
    pub streams: std::sync::Arc<events::StreamSlots>,
    /// `[policy]`: e.g. whether requests without an image are accepted (docs/contracts.md#guests).
    pub policy: crate::config::Policy,
    /// Agent connections by host, for exec streams (docs/contracts.md#guests).
    pub exec_links: std::sync::Arc<crate::quic::exec::ExecLinks>,
}

impl AppState {
    /// Asks the cluster actor: `request` builds the request around its reply, e.g.
    /// `state.ask(|reply| ApiRequest::GetInstance { scope, id, reply })`.
    pub async fn ask<T: 'static>(
        &self,
        request: impl FnOnce(Reply<T>) -> ApiRequest,
    ) -> Result<T, HttpError> {
        ask(&self.cluster, request).await
    }
}

/// [`AppState::ask`] for callers that hold only the actor's address.
pub async fn ask<T: 'static>(
    cluster: &Addr<ClusterActor>,
    request: impl FnOnce(Reply<T>) -> ApiRequest,
) -> Result<T, HttpError> {
    let unavailable =
        |e: &dyn std::fmt::Display| Internal(format!("cluster actor unavailable: {e}"));
    let (reply, answer) = Reply::channel();
    cluster.send(request(reply)).await.map_err(|e| unavailable(&e))?;
    answer.await.map_err(|e| unavailable(&e))?.map_err(HttpError::from)
}

/// Runs a store or file call off the actix thread; a failure is a 500, or a 503 when the
/// database is unreachable.
pub async fn blocking<T, E>(
    call: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, HttpError>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    web::block(call).await.map_err(|e| Internal(e.to_string()))?.map_err(|e| {
        // A read the database could not answer: worth retrying (503), not a bug (500).
        let any: &dyn std::any::Any = &e;
        match any.downcast_ref::<crate::store::StoreError>() {
            Some(crate::store::StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, "a read could not be answered: the database is unreachable");
                StoreUnavailable(error::UNREACHABLE.to_owned()).into()
            }
            _ => Internal(e.to_string()).into(),
        }
    })
}

/// The documented routes; [`openapi::assemble`] adds [`metrics::routes`] and the docs.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.app_data(error::json_config())
        .app_data(error::path_config())
        .app_data(error::query_config())
        .service(openapi::healthz)
        .configure(dashboard::routes)
        .service(
            utoipa_actix_web::scope("/v1")
                .configure(instances::routes)
                .configure(exec::routes)
                .configure(hosts::routes)
                .configure(faults::routes)
                .configure(pools::routes)
                .configure(events::routes)
                .configure(accounts::routes)
                .configure(ledger::routes)
                .configure(messages::routes)
                .configure(deployments::routes)
                .configure(snapshots::routes),
        )
        .default_service(web::to(not_found));
}

async fn not_found(request: actix_web::HttpRequest) -> Result<HttpResponse, HttpError> {
    let (method, path) = (request.method().to_string(), request.path().to_owned());
    Err(NotFound::Route { method, path }.into())
}
