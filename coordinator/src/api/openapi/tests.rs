//! The document against the app: every documented operation is served, nothing is served
//! around the document, and the document says what clients need (ids, schemas, errors).

use super::{assemble, document};
use actix_web::App;
use actix_web::http::Method;
use actix_web::test as actix_test;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn spec() -> Value {
    serde_json::to_value(document()).expect("the document serializes")
}

/// Every `(METHOD, path)` in the document, e.g. `("GET", "/v1/instances/{id}")`.
fn operations(spec: &Value) -> BTreeSet<(String, String)> {
    let paths = spec["paths"].as_object().expect("paths");
    let mut found = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            found.insert((method.to_uppercase(), path.clone()));
        }
    }
    found
}

fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let found = &spec["paths"][path][method];
    assert!(found.is_object(), "{method} {path} is not documented");
    found
}

/// A documented path with each `{param}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
        out.push_str(&rest[..start]);
        out.push('x');
        rest = &rest[end..];
    }
    out + rest
}

/// Whether `source` names `item` itself (`web::scope(`, not `utoipa_actix_web::scope(`).
fn mentions(source: &str, item: &str) -> bool {
    source.match_indices(item).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[actix_web::test]
async fn every_documented_operation_is_served() {
    let app = actix_test::init_service(assemble(App::new())).await;
    let spec = spec();
    let operations = operations(&spec);
    assert!(operations.len() >= 40, "only {} operations documented", operations.len());
    for (method, path) in operations {
        let uri = concrete(&path);
        let request = actix_test::TestRequest::default()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(&uri)
            .to_request();
        let response = actix_test::call_service(&app, request).await;
        let body = actix_test::read_body(response).await;
        let text = String::from_utf8_lossy(&body);
        // The fallback's answer: nothing is registered for this method and path.
        assert!(!text.contains("no route for"), "{method} {path} is documented, not served");
    }
}

/// Routes registered with `.route(…)` bypass utoipa-actix-web; only [`super::super::metrics`]
/// may, and only for the routes described by hand in [`super`].
#[test]
fn no_route_bypasses_the_document() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let spec = spec();
    let documented = operations(&spec);
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for bypass in ["web::resource(", "web::scope(", "Resource::new("] {
            assert!(!mentions(&source, bypass), "{name} registers a route around the document");
        }
        for (at, _) in source.match_indices(".route(\"") {
            assert_eq!(name, "metrics.rs", "{name} registers a route around the document");
            let route = &source[at + 8..];
            let path = &route[..route.find('"').unwrap()];
            let method = route.split("web::").nth(1).and_then(|m| m.split('(').next()).unwrap();
            let key = (method.to_uppercase(), path.to_owned());
            assert!(documented.contains(&key), "{key:?} is served, not documented");
            checked += 1;
        }
    }
    assert_eq!(checked, 1, "metrics.rs registers /metrics by hand");
}

#[test]
fn every_operation_has_an_id_a_tag_and_typed_answers() {
    let spec = spec();
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&spec) {
        let op = operation(&spec, &method.to_lowercase(), &path);
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no id"));
        assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{id} not snake_case");
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        assert!(op["tags"][0].is_string(), "{id}: no tag");
        let responses = op["responses"].as_object().unwrap();
        let success = responses.iter().find(|(s, _)| s.starts_with('2'));
        if let Some((status, answer)) = success {
            assert!(answer["content"].is_object(), "{id}: {status} has no schema");
        } else {
            assert!(responses.contains_key("101") || responses.contains_key("308"), "{id}");
        }
        for (status, answer) in responses.iter().filter(|(s, _)| s.starts_with('4')) {
            let schema = &answer["content"]["application/json"]["schema"]["$ref"];
            if path.starts_with("/v1") {
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{id}: {status}");
            }
        }
        // No `security`: the global bearer scheme; `[{}]`: no token.
        let public = op["security"].as_array().is_some_and(|s| s.iter().all(|r| r == &json!({})));
        let needs_token = !public;
        assert_eq!(needs_token, path.starts_with("/v1"), "{id}: security");
        if needs_token {
            assert!(responses.contains_key("401"), "{id}: no 401");
        }
        if op["requestBody"]["content"]["application/json"].is_object() {
            for status in ["400", "413", "415"] {
                let body_optional = matches!(id, "drain_host" | "interrupt_instance");
                let optional = body_optional && status != "400";
                assert!(optional || responses.contains_key(status), "{id}: no {status}");
            }
        }
    }
}

#[test]
fn the_document_says_what_clients_need() {
    let spec = spec();
    let create = operation(&spec, "post", "/v1/instances");
    assert_eq!(create["operationId"], "create_instance");
    let accepted = &create["responses"]["202"]["content"]["application/json"]["schema"];
    assert_eq!(accepted["$ref"], "#/components/schemas/Instance");
    let body = &create["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/InstanceBody");
    let change = operation(&spec, "patch", "/v1/instances/{id}");
    assert!(change["responses"]["409"].is_object());
    let history = operation(&spec, "get", "/v1/pools/{model}/price-history");
    let params: Vec<_> = history["parameters"].as_array().unwrap().iter().collect();
    assert!(params.iter().any(|p| p["name"] == "hours" && p["in"] == "query"), "{params:?}");
    assert!(params.iter().any(|p| p["name"] == "model" && p["in"] == "path"), "{params:?}");
    let events = operation(&spec, "get", "/v1/events");
    assert!(events["responses"]["200"]["content"]["text/event-stream"].is_object());
    assert!(events["responses"]["429"].is_object());
    let ws = operation(&spec, "get", "/v1/instances/{id}/exec");
    assert!(ws["responses"]["101"].is_object());
    let hosts = operation(&spec, "get", "/v1/hosts");
    assert!(hosts["responses"]["403"].is_object(), "admin only");
    let instance = &spec["components"]["schemas"]["Instance"]["properties"];
    for field in ["id", "state", "reason", "gpu_uuids", "billing", "price", "hold_until"] {
        assert!(instance[field].is_object(), "Instance.{field}");
    }
    let scheme = &spec["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["scheme"], "bearer");
    let dashboard = operation(&spec, "get", "/dashboard.js");
    assert_eq!(dashboard["operationId"], "dashboard_script");
}

#[test]
fn the_document_cites_no_design_sections_and_documents_the_new_patch_fields() {
    let spec = spec();
    let text = spec.to_string();
    let cited: Vec<&str> = text.match_indices("DESIGN").map(|(at, _)| &text[at..at + 12]).collect();
    assert!(cited.is_empty(), "a user reads the document, not DESIGN.md: {cited:?}");
    let schemas = &spec["components"]["schemas"];
    for field in ["autoscaling", "schedule", "replicas", "specs", "template"] {
        assert!(schemas["DeploymentChange"]["properties"][field].is_object(), "{field}");
    }
    assert!(schemas["AccountChange"]["properties"]["webhook_url"].is_object());
}
