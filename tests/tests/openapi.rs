//! `GET /openapi.json` and `GET /docs` on a real coordinator: the document passes
//! `openapi-spec-validator` (from PyPI, installed by scripts/install-test-deps.sh), the docs
//! page and every asset it names are served by the coordinator itself (no CDN), and the
//! response schemas name exactly the fields that real answers carry.

use gpuspot_e2e::deploy::{Deployments, regular_spec};
use gpuspot_e2e::{Cluster, cluster, request, s, sh};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// Where scripts/install-test-deps.sh puts the validator; `OPENAPI_SPEC_VALIDATOR` overrides.
const VALIDATOR: &str = "/opt/gpuspot-test-venv/bin/openapi-spec-validator";

fn validator() -> PathBuf {
    let path: PathBuf =
        std::env::var_os("OPENAPI_SPEC_VALIDATOR").unwrap_or(VALIDATOR.into()).into();
    assert!(path.exists(), "{} is missing: run scripts/install-test-deps.sh", path.display());
    path
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().no_proxy().build().unwrap()
}

fn fetch(url: &str) -> (u16, String, String) {
    let response = client().get(url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (status, kind.unwrap_or_default(), response.text().unwrap())
}

#[test]
fn the_document_passes_openapi_spec_validator() {
    let c = cluster!();
    let (status, kind, text) = fetch(&format!("{}/openapi.json", c.coordinator.url()));
    assert_eq!(status, 200, "{text}");
    assert!(kind.starts_with("application/json"), "{kind}");
    let document: Value = serde_json::from_str(&text).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    let file = c.dir().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let output = Command::new(validator()).arg(&file).output().expect("openapi-spec-validator");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("openapi-spec-validator: {said}");
    assert!(output.status.success(), "openapi-spec-validator: {said}");
    assert!(said.contains("OK"), "{said}");
}

/// `src="…"` and `href="…"` values in `html`.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            urls.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    urls
}

#[test]
fn the_docs_page_and_its_assets_are_served_locally() {
    let c = cluster!();
    let base = c.coordinator.url();
    let (status, kind, page) = fetch(&format!("{base}/docs"));
    assert_eq!(status, 200, "{page}");
    assert!(kind.starts_with("text/html"), "{kind}");
    let assets = asset_urls(&page);
    assert!(assets.iter().any(|u| u.ends_with(".js")), "no scripts in {page}");
    for asset in assets {
        assert!(!asset.contains("://") && !asset.starts_with("//"), "{asset} is not local");
        let url = format!("{base}/docs/{}", asset.trim_start_matches("./"));
        let (status, _, body) = fetch(&url);
        assert_eq!(status, 200, "{url}");
        assert!(!body.is_empty(), "{url} is empty");
        if asset.contains("initializer") {
            assert!(body.contains("/openapi.json"), "the page does not load /openapi.json");
        }
    }
}

/// The property names of schema `name`, `$ref`s and `allOf`s followed.
fn properties(document: &Value, schema: &Value) -> BTreeSet<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return properties(document, &document["components"]["schemas"][name]);
    }
    let mut names: BTreeSet<String> =
        schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        names.extend(properties(document, part));
    }
    names
}

/// Checks each `(schema, answer)` with openapi-schema-validator (installed with the spec
/// validator): types, nullability and required fields, as an API fuzzer would.
fn validate_answers(c: &Cluster, document: &Value, answers: &[(&str, &Value)]) {
    let file = c.dir().join("answers.json");
    let pairs: Vec<_> = answers.iter().map(|(name, answer)| json!([name, answer])).collect();
    std::fs::write(&file, json!({ "document": document, "answers": pairs }).to_string()).unwrap();
    let python = validator().with_file_name("python3");
    let output = Command::new(python).arg("-c").arg(CHECK_ANSWERS).arg(&file).output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "answers do not match their schemas:\n{said}");
}

const CHECK_ANSWERS: &str = r##"
import json, sys
from openapi_schema_validator import OAS31Validator
data = json.load(open(sys.argv[1]))
components = data["document"]["components"]
failed = 0
for name, answer in data["answers"]:
    schema = {"$ref": "#/components/schemas/" + name, "components": components}
    for error in OAS31Validator(schema).iter_errors(answer):
        failed += 1
        print(f"{name}: {list(error.absolute_path)}: {error.message}")
sys.exit(1 if failed else 0)
"##;

/// The answer's fields are the schema's, or the schema's less the optional ones it omits.
fn assert_shape(document: &Value, name: &str, answer: &Value, optional: &[&str]) {
    let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
    let documented = properties(document, &schema);
    let got: BTreeSet<String> = answer.as_object().expect(name).keys().cloned().collect();
    let missing: Vec<_> =
        documented.difference(&got).filter(|f| !optional.contains(&f.as_str())).collect();
    let undocumented: Vec<_> = got.difference(&documented).collect();
    assert!(
        missing.is_empty() && undocumented.is_empty(),
        "{name}: undocumented {undocumented:?}, documented but absent {missing:?} in {answer}"
    );
}

fn document(c: &Cluster) -> Value {
    let (_, _, text) = fetch(&format!("{}/openapi.json", c.coordinator.url()));
    serde_json::from_str(&text).unwrap()
}

/// One real answer per schema, `(schema name, answer)`: an instance (queued and running),
/// a host and its parts, a pool, accounts, a payment, whoami, a deployment, an error, health.
fn real_answers(c: &Cluster) -> Vec<(&'static str, Value)> {
    let profile = c.write_profile("schemas", "NVIDIA GeForce RTX 4090", 1, 8, 32);
    let _agent = c.agent(&profile);
    let instance = c.api.create(&request("shape", &["RTX 4090"], 1, &sh("exec sleep 60")));
    let running = c.wait_state(s(&instance, "id"), "running");
    let host = c.host("schemas").expect("host");
    let (status, account) = c.api.post("/v1/accounts", &json!({ "name": "shapes" }));
    assert_eq!(status, 201, "{account}");
    let payments = format!("/v1/accounts/{}/payments", s(&account, "id"));
    let (status, paid) = c.api.post(&payments, &json!({ "amount": "5" }));
    assert_eq!(status, 201, "{paid}");
    let body = json!({ "name": "svc", "mode": "replicaset", "replicas": 1,
        "specs": [regular_spec(&["RTX 4090"], 1)], "template": { "command": sh("exec sleep 60") } });
    let deployment = Deployments::new(&c.api).create(&body);
    let (status, error) = c.api.get("/v1/instances/i-none");
    assert_eq!(status, 404, "{error}");
    vec![
        ("Instance", instance),
        ("Instance", running),
        ("HostGpu", host["gpus"][0].clone()),
        ("HostUnit", host["unit"].clone()),
        ("Host", host),
        ("Pool", c.api.get_ok("/v1/pools")[0].clone()),
        ("AccountWithToken", account),
        ("LedgerEntry", paid["entry"].clone()),
        ("Account", paid["account"].clone()),
        ("PaymentReceipt", paid),
        ("Whoami", c.api.get_ok("/v1/whoami")),
        ("Deployment", deployment),
        ("ErrorDetail", error["error"].clone()),
        ("ErrorBody", error),
        ("Health", c.api.get_ok("/healthz")),
    ]
}

#[test]
fn response_schemas_name_the_fields_real_answers_carry() {
    let c = cluster!();
    let doc = document(&c);
    let answers = real_answers(&c);
    for (name, answer) in &answers {
        // `moved` is only in the answer to a change that moved instances.
        assert_shape(&doc, name, answer, &["moved"]);
    }
    let named: Vec<_> = answers.iter().map(|(name, answer)| (*name, answer)).collect();
    validate_answers(&c, &doc, &named);
}
