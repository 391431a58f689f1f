//! `/v1/deployments`: ReplicaSet, Job and Container deployments with ordered specs
//! (docs/contracts.md#deployments, #http-api), their instances, scaling, rebuild and endpoints.

use super::AppState;
use super::auth::Caller;
use super::error::{HttpError, WorkloadError};
use super::listing::{self, StateQuery};
use super::validation::{self, deployment as validate};
use super::views;
use crate::actors::messages::DeploymentRequest;
use crate::actors::{ApiRequest, Reply};
use crate::core::deployment::{DeploymentState, Template};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use gpuspot_api::requests::{DeploymentBody as CreateBody, DeploymentChangeBody as ChangeBody};
use gpuspot_api::{Deployment, Endpoint as EndpointSchema, ErrorBody};
use gpuspot_common::DeploymentId;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(show)
        .service(change)
        .service(delete)
        .service(rebuild)
        .service(endpoints);
}

/// `[policy] process_workloads = false` refuses a template without an image.
fn admit(state: &AppState, template: &Template) -> Result<(), HttpError> {
    state
        .policy
        .admits("template.image", template.image.as_deref())
        .map_err(|m| WorkloadError::ImageRequired(m).into())
}

/// [`AppState::ask`] for a deployment request, which `request` builds around its reply.
async fn ask<T: 'static>(
    state: &AppState,
    request: impl FnOnce(Reply<T>) -> DeploymentRequest,
) -> Result<T, HttpError> {
    state.ask(|reply| ApiRequest::Deployment(request(reply))).await
}

/// Creates a ReplicaSet, Job or Container deployment.
#[utoipa::path(
    tag = "deployments", operation_id = "create_deployment",
    request_body = CreateBody,
    responses(
        (status = 202, description = "Accepted; its instances are queued", body = Deployment),
        (status = 400, description = "Invalid body (every problem named) or unknown GPU models", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 402, description = "The account is overdue", body = ErrorBody),
        (status = 403, description = "Another account named, or a quota exceeded", body = ErrorBody),
        (status = 409, description = "The name, in any case, is held by a live deployment (name_taken)", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
#[post("/deployments")]
async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let account = caller.account(body.account_id.clone())?;
    let new = validate(body)?;
    admit(&state, &new.template)?;
    let mut known = false;
    for model in new.specs.iter().flat_map(|s| s.gpu.models.iter()) {
        known |= state.ask(|reply| ApiRequest::KnownModel { model: model.clone(), reply }).await?;
    }
    if !known {
        return Err(WorkloadError::UnknownSpecModels.into());
    }
    let v = ask(&state, |reply| DeploymentRequest::Create { account, new, reply }).await?;
    Ok(HttpResponse::Accepted().json(views::deployment(&v)))
}

/// The deployments the caller sees, deleted ones included, oldest first: filtered by state
/// and paged on the server.
#[utoipa::path(
    tag = "deployments", operation_id = "list_deployments", params(StateQuery),
    responses(
        (status = 200, description = "The deployments; a `Link` header (`rel=\"next\"`) when more follow", body = Vec<Deployment>),
        (status = 400, description = "Invalid query (the parameter named)", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
    )
)]
#[get("/deployments")]
async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StateQuery>,
) -> Result<HttpResponse, HttpError> {
    let wanted = query.listing(&DeploymentState::ALL.map(DeploymentState::as_str))?;
    let (scope, query) = (caller.scope, listing::repeated(&wanted));
    let found =
        ask(&state, |reply| DeploymentRequest::List { scope, listing: wanted, reply }).await?;
    Ok(listing::answer("/v1/deployments", &query, &found, views::deployment, |v| {
        v.deployment.id.to_string()
    }))
}

#[utoipa::path(
    tag = "deployments", operation_id = "get_deployment",
    params(("id" = String, Path, description = "Deployment id, or its name (any case) for its account")),
    responses(
        (status = 200, description = "The deployment", body = Deployment),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name on several accounts' deployments, for the admin (ambiguous_name): give an id", body = ErrorBody),
    )
)]
#[get("/deployments/{id}")]
async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let v = ask(&state, |reply| DeploymentRequest::Get { scope: caller.scope, id, reply }).await?;
    Ok(HttpResponse::Ok().json(views::deployment(&v)))
}

/// Scales a replica set, changes specs and template, or turns autoscaling and a schedule
/// on or off for a replica set.
#[utoipa::path(
    tag = "deployments", operation_id = "change_deployment",
    request_body = ChangeBody,
    params(("id" = String, Path, description = "Deployment id, or its name (any case) for its account")),
    responses(
        (status = 200, description = "The changed deployment", body = Deployment),
        (status = 400, description = "Invalid body (every problem named), or autoscaling that does not fit the deployment", body = ErrorBody),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "Only a replica set has replicas to scale, or a name on several accounts' deployments (ambiguous_name)", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
    )
)]
#[patch("/deployments/{id}")]
async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, HttpError> {
    let change = validation::deployment_change(body.into_inner())?;
    if let Some(template) = &change.template {
        admit(&state, template)?;
    }
    let request = |reply| DeploymentRequest::Change {
        scope: caller.scope,
        id: DeploymentId(id.into_inner()),
        change,
        reply,
    };
    Ok(HttpResponse::Ok().json(views::deployment(&ask(&state, request).await?)))
}

/// Deletes the deployment and terminates its instances.
#[utoipa::path(
    tag = "deployments", operation_id = "delete_deployment",
    params(("id" = String, Path, description = "Deployment id, or its name (any case) for its account")),
    responses(
        (status = 200, description = "The deployment, deleted", body = Deployment),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name on several accounts' deployments, for the admin (ambiguous_name): give an id", body = ErrorBody),
    )
)]
#[delete("/deployments/{id}")]
async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let request = |reply| DeploymentRequest::Delete { scope: caller.scope, id, reply };
    Ok(HttpResponse::Ok().json(views::deployment(&ask(&state, request).await?)))
}

/// Replaces every instance with a fresh one from the current template.
#[utoipa::path(
    tag = "deployments", operation_id = "rebuild_deployment",
    params(("id" = String, Path, description = "Deployment id, or its name (any case) for its account")),
    responses(
        (status = 200, description = "The deployment", body = Deployment),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name on several accounts' deployments, for the admin (ambiguous_name): give an id", body = ErrorBody),
    )
)]
#[post("/deployments/{id}/rebuild")]
async fn rebuild(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let request = |reply| DeploymentRequest::Rebuild { scope: caller.scope, id, reply };
    Ok(HttpResponse::Ok().json(views::deployment(&ask(&state, request).await?)))
}

/// Where the deployment's instances serve, and whether each is ready.
#[utoipa::path(
    tag = "deployments", operation_id = "list_endpoints",
    params(("id" = String, Path, description = "Deployment id, or its name (any case) for its account")),
    responses(
        (status = 200, description = "The endpoints", body = Vec<EndpointSchema>),
        (status = 401, description = "No or bad token", body = ErrorBody),
        (status = 404, description = "Not found (or another account's)", body = ErrorBody),
        (status = 409, description = "A name on several accounts' deployments, for the admin (ambiguous_name): give an id", body = ErrorBody),
    )
)]
#[get("/deployments/{id}/endpoints")]
async fn endpoints(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = DeploymentId(id.into_inner());
    let found =
        ask(&state, |reply| DeploymentRequest::Endpoints { scope: caller.scope, id, reply })
            .await?;
    Ok(HttpResponse::Ok().json(found.iter().map(views::endpoint).collect::<Vec<_>>()))
}
