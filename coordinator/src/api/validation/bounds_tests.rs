//! The caps of [`super::bounds`] as a body meets them: each refusal names its field, quotes
//! little, and comes from counting, not from looking at every entry of a long list.

use super::*;
use serde_json::{Value, json};

fn instance_body(extra: Value) -> InstanceBody {
    let mut body = json!({ "gpu": { "models": ["H100"] }, "command": ["true"] });
    body.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::from_value(body).expect("a body")
}

fn refused(result: Result<impl std::fmt::Debug, HttpError>) -> String {
    let error = result.expect_err("refused");
    assert_eq!((error.status.as_u16(), error.code), (400, "invalid_request"), "{error}");
    error.message
}

#[test]
fn models_are_counted_with_their_repeats_then_merged() {
    let flood =
        refused(instance(instance_body(json!({ "gpu": { "models": vec!["H100"; 20_000] } }))));
    assert_eq!(flood, "gpu.models may list at most 16 GPU models, not 20000");
    let sixteen = instance(instance_body(json!({ "gpu": { "models": vec![" h100 "; 16] } })));
    assert_eq!(sixteen.expect("16 entries are fine").gpu.models, ["h100"]);
    let long = json!({ "gpu": { "models": ["H100", "x".repeat(65)] } });
    let message = refused(instance(instance_body(long)));
    assert!(message.starts_with("gpu.models[1] must be at most 64 characters"), "{message}");
    assert!(message.len() < 400, "quoted in part: {message}");
}

#[test]
fn env_and_command_are_bounded_in_bytes_as_the_kernel_counts_them() {
    // 16 × ("VAR_nn" + "=" + 4084 + NUL) = 65,472 bytes: within 64 KiB.
    let env: BTreeMap<String, String> =
        (0..16).map(|i| (format!("VAR_{i:02}"), "v".repeat(4084))).collect();
    assert!(instance(instance_body(json!({ "env": env }))).is_ok());
    let big = json!({ "env": { "BIG": "x".repeat(912 * 1024) } });
    assert!(refused(instance(instance_body(big))).starts_with("env must be at most 65536 bytes"));
    let names = json!({ "env": { "1A": "x", "A-B": "y", "OK_1": "z" } });
    let message = refused(instance(instance_body(names)));
    assert!(message.starts_with("env name \"1A\" (and 1 more) must be letters"), "{message}");
    let nul = json!({ "env": { "A": "x\u{0}y" } });
    assert!(refused(instance(instance_body(nul))).contains("NUL"));
    // "sh" and NUL, then the argument and its NUL: 65,536 bytes exactly.
    let exact = 65_536 - 3 - 1;
    let fits = json!({ "command": ["sh", "x".repeat(exact)] });
    assert!(instance(instance_body(fits)).is_ok());
    let over = json!({ "command": ["sh", "x".repeat(exact + 1)] });
    assert!(refused(instance(instance_body(over))).starts_with("command must be at most 65536"));
}

#[test]
fn names_and_echoed_values_are_short() {
    let message = refused(instance(instance_body(json!({ "name": "n".repeat(64) }))));
    assert!(message.starts_with("name must be at most 63 characters"), "{message}");
    assert!(instance(instance_body(json!({ "name": "n".repeat(63) }))).is_ok());
    let mode = json!({ "billing": { "mode": "m".repeat(100_000) } });
    assert!(refused(instance(instance_body(mode))).len() < 400);
    let readiness =
        json!({ "image": "busybox", "readiness": { "http_path": 7, "x": "y".repeat(100_000) } });
    assert!(refused(instance(instance_body(readiness))).len() < 400);
    assert!(instance_change(Some(&"n".repeat(64)), None).is_err());
    let env = BTreeMap::from([("BAD NAME".to_owned(), String::new())]);
    assert!(refused(instance_change(None, Some(&env))).starts_with("env name"));
}

#[test]
fn deployment_names_and_lists_are_bounded() {
    let body = |name: &str, specs: usize, schedule: usize| {
        let spec = json!({ "gpu": { "models": ["H100"] } });
        let entry = json!({ "cron": "0 9 * * 1-5", "min_replicas": 1 });
        serde_json::from_value::<DeploymentBody>(json!({
            "name": name, "mode": "replicaset", "specs": vec![spec; specs],
            "template": { "command": ["true"] }, "schedule": vec![entry; schedule],
        }))
        .expect("a body")
    };
    assert!(deployment(body("web", 16, 32)).is_ok());
    for name in ["web.", "WEB.", ".web"] {
        assert!(refused(deployment(body(name, 1, 0))).starts_with("name: at most 63"), "{name}");
    }
    assert_eq!(refused(deployment(body("web", 17, 0))), "specs may list at most 16 specs");
    let many = refused(deployment(body("web", 1, 33)));
    assert_eq!(many, "schedule may list at most 32 entries, not 33");
}
