//! `/v1/instances`: create (202), list, show, change, terminate, and the workload's output.

use super::AppState;
use super::auth::Caller;
use super::error::HttpError;
use super::views;
use crate::actors::{ApiReply, ApiRequest};
use crate::core::guest::{self, DEFAULT_DATA_DISK_GIB};
use crate::core::model::{Billing, GpuRequest, InstanceRequest, Range, SnapshotOptions};
use actix_web::{HttpResponse, web};
use gpuspot_common::{InstanceId, Money};
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/instances", web::post().to(create))
        .route("/instances", web::get().to(list))
        .route("/instances/{id}", web::get().to(show))
        .route("/instances/{id}", web::patch().to(change))
        .route("/instances/{id}", web::delete().to(terminate))
        .route("/instances/{id}/logs", web::get().to(logs));
}

#[derive(Debug, Deserialize)]
pub struct GpuBody {
    #[serde(default)]
    pub models: Vec<String>,
    pub count: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct BillingBody {
    pub mode: String,
    pub max_price: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CreateBody {
    pub name: Option<String>,
    /// The admin may create for another account.
    pub account_id: Option<String>,
    pub gpu: GpuBody,
    pub cpu_cores: Option<Range>,
    pub memory_gib: Option<Range>,
    pub billing: Option<BillingBody>,
    /// Optional with an image (it replaces the image's CMD), required without.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub snapshot: Option<SnapshotOptions>,
    /// Taken as JSON so that a wrong type is refused with the field's name.
    #[serde(default)]
    pub image: Option<serde_json::Value>,
    #[serde(default)]
    pub data_disk_gib: Option<serde_json::Value>,
}

/// What runs the guest: `image` and `data_disk_gib` of a request, or of a template
/// (`prefix` "template."). Problems are added to `problems`, each naming its field.
pub fn parse_guest(
    prefix: &str,
    image: Option<&serde_json::Value>,
    data_disk_gib: Option<&serde_json::Value>,
    problems: &mut Vec<String>,
) -> (Option<String>, u64) {
    let image = match image {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) => {
            let field = format!("{prefix}image");
            guest::check_image(&field, name).map_err(|p| problems.push(p)).ok();
            Some(name.clone())
        }
        Some(_) => {
            problems.push(format!("{prefix}image must be a string naming an OCI image"));
            None
        }
    };
    let field = format!("{prefix}data_disk_gib");
    let data_disk_gib = match data_disk_gib {
        None | Some(serde_json::Value::Null) => DEFAULT_DATA_DISK_GIB,
        Some(value) => match value.as_u64() {
            Some(gib) => {
                guest::check_data_disk(&field, gib).map_err(|p| problems.push(p)).ok();
                gib
            }
            None => {
                problems.push(format!("{field} must be a whole number of GiB, 1 to 50"));
                DEFAULT_DATA_DISK_GIB
            }
        },
    };
    (image, data_disk_gib)
}

/// Without an image the command is what runs, so it must name a program; with one it may
/// be left out (the image's CMD runs).
pub fn check_command(field: &str, command: &[String], image: Option<&str>) -> Option<String> {
    let empty = command.first().is_none_or(|c| c.trim().is_empty());
    match (image, command.is_empty()) {
        (Some(_), true) => None,
        (Some(_), false) if empty => Some(format!("{field}[0] must name a program to run")),
        (None, _) if empty => {
            Some(format!("{field} must name a program to run (or give an image whose CMD runs)"))
        }
        _ => None,
    }
}

fn bad(message: impl Into<String>) -> HttpError {
    HttpError::bad_request("invalid_request", message)
}

pub fn parse_billing(body: Option<&BillingBody>) -> Result<Billing, HttpError> {
    let Some(body) = body else {
        return Ok(Billing::Regular);
    };
    match (body.mode.as_str(), &body.max_price) {
        ("regular", None) => Ok(Billing::Regular),
        ("regular", Some(_)) => Err(bad("billing.max_price is only for spot instances")),
        ("spot", Some(price)) => match price.parse::<Money>() {
            Ok(max_price) if max_price.micros() > 0 => Ok(Billing::Spot { max_price }),
            Ok(_) => Err(bad("billing.max_price must be positive")),
            Err(e) => Err(bad(format!("billing.max_price: {e}"))),
        },
        ("spot", None) => Err(bad("spot billing needs billing.max_price (your bid per GPU-hour)")),
        (other, _) => {
            Err(bad(format!("billing.mode must be \"spot\" or \"regular\", not {other:?}")))
        }
    }
}

/// Checks everything that can be checked without the cluster; every problem at once.
pub fn validate(body: CreateBody) -> Result<InstanceRequest, HttpError> {
    let mut problems = Vec::new();
    let count = body.gpu.count.unwrap_or(1);
    if count == 0 {
        problems.push("gpu.count must be at least 1".to_owned());
    }
    let models: Vec<String> = body.gpu.models.iter().map(|m| m.trim().to_owned()).collect();
    if models.is_empty() || models.iter().any(String::is_empty) {
        problems.push("gpu.models must list at least one GPU model, e.g. [\"H100\"]".to_owned());
    }
    let cpu_cores = body.cpu_cores.unwrap_or_default();
    let memory_gib = body.memory_gib.unwrap_or_default();
    for (name, range) in [("cpu_cores", cpu_cores), ("memory_gib", memory_gib)] {
        if !range.is_valid() {
            problems.push(format!("{name}.min must not exceed {name}.max"));
        }
    }
    let (image, data_disk_gib) =
        parse_guest("", body.image.as_ref(), body.data_disk_gib.as_ref(), &mut problems);
    problems.extend(check_command("command", &body.command, image.as_deref()));
    let billing = parse_billing(body.billing.as_ref()).map_err(|e| problems.push(e.message));
    if !problems.is_empty() {
        return Err(bad(problems.join("; ")));
    }
    Ok(InstanceRequest {
        name: body.name.unwrap_or_default(),
        gpu: GpuRequest { models, count },
        cpu_cores,
        memory_gib,
        billing: billing.unwrap_or(Billing::Regular),
        command: body.command,
        env: body.env,
        snapshot: body.snapshot.unwrap_or_default(),
        image,
        data_disk_gib,
    })
}

fn instance_reply(reply: ApiReply) -> Result<serde_json::Value, HttpError> {
    match reply {
        ApiReply::Instance(i) => Ok(views::instance(&i)),
        other => Err(HttpError::unexpected(other)),
    }
}

async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let account = caller.account(body.account_id.clone())?;
    let request = validate(body)?;
    state
        .policy
        .admits("image", request.image.as_deref())
        .map_err(|m| HttpError::bad_request("image_required", m))?;
    let mut unknown = Vec::new();
    for model in &request.gpu.models {
        if let ApiReply::Known(false) =
            state.ask(ApiRequest::KnownModel { model: model.clone() }).await?
        {
            unknown.push(model.clone());
        }
    }
    if unknown.len() == request.gpu.models.len() {
        return Err(HttpError::bad_request(
            "unknown_model",
            format!("no pool or host offers GPU model {}; see GET /v1/pools", unknown.join(", ")),
        ));
    }
    let reply = state.ask(ApiRequest::CreateInstance { account, request }).await?;
    Ok(HttpResponse::Accepted().json(instance_reply(reply)?))
}

async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, HttpError> {
    match state.ask(ApiRequest::ListInstances { scope: caller.scope }).await? {
        ApiReply::Instances(list) => {
            Ok(HttpResponse::Ok().json(list.iter().map(views::instance).collect::<Vec<_>>()))
        }
        other => Err(HttpError::unexpected(other)),
    }
}

async fn show(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let reply = state.ask(ApiRequest::GetInstance { scope: caller.scope, id }).await?;
    Ok(HttpResponse::Ok().json(instance_reply(reply)?))
}

#[derive(Debug, Deserialize)]
struct ChangeBody {
    name: Option<String>,
    env: Option<BTreeMap<String, String>>,
    billing: Option<serde_json::Value>,
    gpu: Option<serde_json::Value>,
    cpu_cores: Option<serde_json::Value>,
    memory_gib: Option<serde_json::Value>,
}

async fn change(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let body = body.into_inner();
    let resize = body.billing.is_some()
        || body.gpu.is_some()
        || body.cpu_cores.is_some()
        || body.memory_gib.is_some();
    let reply = state
        .ask(ApiRequest::ChangeInstance {
            scope: caller.scope,
            id,
            name: body.name,
            env: body.env,
            resize,
        })
        .await?;
    Ok(HttpResponse::Ok().json(instance_reply(reply)?))
}

async fn terminate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    let reply = state.ask(ApiRequest::DeleteInstance { scope: caller.scope, id }).await?;
    Ok(HttpResponse::Ok().json(instance_reply(reply)?))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    tail_bytes: Option<u64>,
}

async fn logs(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, HttpError> {
    let id = InstanceId(id.into_inner());
    state.ask(ApiRequest::GetInstance { scope: caller.scope, id: id.clone() }).await?;
    let max = query.tail_bytes.unwrap_or(1 << 20);
    let logs = state.logs.clone();
    let bytes = super::blocking(move || logs.read_tail(&id, max)).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(extra: serde_json::Value) -> Result<InstanceRequest, String> {
        let mut body = json!({ "gpu": { "models": ["H100"] }, "command": ["true"] });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        validate(serde_json::from_value(body).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn image_and_data_disk_default_to_a_process_with_50_gib() {
        let request = check(json!({})).unwrap();
        assert_eq!((request.image, request.data_disk_gib), (None, 50));
        let request = check(json!({ "image": "busybox", "data_disk_gib": 8 })).unwrap();
        assert_eq!((request.image.as_deref(), request.data_disk_gib), (Some("busybox"), 8));
        let no_command = json!({ "image": "busybox", "command": [] });
        assert_eq!(check(no_command).unwrap().command, Vec::<String>::new(), "the image's CMD");
    }

    #[test]
    fn bad_images_and_disks_are_refused_naming_the_field() {
        let cases = [
            (json!({ "image": "" }), "image must not be empty"),
            (json!({ "image": "a b" }), "image \"a b\" must not contain whitespace"),
            (json!({ "image": "x".repeat(300) }), "image must be at most 255 bytes"),
            (json!({ "image": 7 }), "image must be a string"),
            (json!({ "data_disk_gib": 0 }), "data_disk_gib must be between 1 and 50"),
            (json!({ "data_disk_gib": 51 }), "data_disk_gib must be between 1 and 50"),
            (json!({ "data_disk_gib": -1 }), "data_disk_gib must be a whole number"),
            (json!({ "data_disk_gib": "10" }), "data_disk_gib must be a whole number"),
            (json!({ "command": [] }), "command must name a program"),
        ];
        for (extra, expected) in cases {
            let problem = check(extra.clone()).expect_err("refused");
            assert!(problem.contains(expected), "{extra}: {problem}");
        }
    }
}
