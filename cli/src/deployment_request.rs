//! `gpuspot deployments create` → the docs/contracts.md#http-api deployment request: either a file
//! (TOML or JSON, chosen by extension; TOML becomes the same JSON) or flags, with `--spec
//! BILLING:MODELS:COUNT[:MAX_PRICE]` repeated in preference order.

use crate::args::{DeploymentCreateArgs, Mode, ResourceArgs, ScalingArgs};
use crate::errors::usage;
use crate::request::{billing_json, gpu_json, insert_resources, insert_template};
use serde_json::{Map, Value, json};
use std::path::Path;

/// The `POST /v1/deployments` body.
pub fn deployment_request(args: &DeploymentCreateArgs) -> anyhow::Result<Value> {
    let mut body = match &args.file {
        Some(path) => load_deployment_file(path)?,
        None => request_from_flags(args)?,
    };
    if let (Some(account), Some(map)) = (&args.workload.account, body.as_object_mut()) {
        map.insert("account_id".into(), json!(account));
    }
    Ok(body)
}

fn request_from_flags(args: &DeploymentCreateArgs) -> anyhow::Result<Value> {
    let mode = args.mode.unwrap_or(Mode::Replicaset);
    check_mode_flags(mode, args)?;
    if args.specs.is_empty() {
        return usage("give at least one --spec (e.g. --spec spot:H100:1:1.20) or --file");
    }
    let mut body = Map::new();
    if let Some(name) = &args.name {
        body.insert("name".into(), json!(name));
    }
    let mode_name = match mode {
        Mode::Replicaset => "replicaset",
        Mode::Job => "job",
        Mode::Container => "container",
    };
    body.insert("mode".into(), json!(mode_name));
    let counts = [
        ("replicas", args.replicas),
        ("completions", args.completions),
        ("parallelism", args.parallelism),
        ("retry_limit", args.retry_limit),
    ];
    for (key, value) in counts {
        if let Some(value) = value {
            body.insert(key.into(), json!(value));
        }
    }
    body.insert("specs".into(), specs_json(&args.specs, &args.resources)?);
    insert_scaling(&mut body, &args.scaling)?;
    let mut template = Map::new();
    insert_template(&mut template, &args.command, &args.workload)?;
    body.insert("template".into(), Value::Object(template));
    Ok(Value::Object(body))
}

/// `--autoscale MIN:MAX` with its targets, and `--schedule CRON=N` entries.
pub fn insert_scaling(body: &mut Map<String, Value>, args: &ScalingArgs) -> anyhow::Result<()> {
    if let Some(bounds) = &args.autoscale {
        let parsed = bounds.split_once(':').and_then(|(min, max)| {
            Some((min.trim().parse::<u32>().ok()?, max.trim().parse::<u32>().ok()?))
        });
        let Some((min, max)) = parsed else {
            return usage(format!("--autoscale {bounds:?}: give MIN:MAX replicas, e.g. 1:8"));
        };
        let mut policy = Map::new();
        policy.insert("min_replicas".into(), json!(min));
        policy.insert("max_replicas".into(), json!(max));
        if let Some(rps) = args.target_rps {
            policy.insert("target_rps_per_replica".into(), json!(rps));
        }
        if let Some(gpu) = args.target_gpu {
            policy.insert("target_gpu_utilization".into(), json!(gpu));
        }
        if let Some(delay) = &args.scale_in_delay {
            policy.insert("scale_in_delay".into(), json!(delay));
        }
        body.insert("autoscaling".into(), Value::Object(policy));
    }
    let mut schedule = Vec::new();
    for entry in &args.schedule {
        let Some((cron, n)) = entry.rsplit_once('=') else {
            return usage(format!("--schedule {entry:?}: give CRON=N, e.g. '0 9 * * 1-5=4'"));
        };
        let Ok(n) = n.trim().parse::<u32>() else {
            return usage(format!("--schedule {entry:?}: N must be a whole number of replicas"));
        };
        schedule.push(json!({ "cron": cron.trim(), "min_replicas": n }));
    }
    if !schedule.is_empty() {
        body.insert("schedule".into(), Value::Array(schedule));
    }
    Ok(())
}

/// The `--spec` list, each with the `--cpu`/`--memory-gib` ranges.
pub fn specs_json(texts: &[String], resources: &ResourceArgs) -> anyhow::Result<Value> {
    let mut specs = Vec::with_capacity(texts.len());
    for text in texts {
        let mut spec = parse_spec(text)?;
        insert_resources(&mut spec, resources)?;
        specs.push(Value::Object(spec));
    }
    Ok(Value::Array(specs))
}

/// Each mode takes only its own counts.
fn check_mode_flags(mode: Mode, args: &DeploymentCreateArgs) -> anyhow::Result<()> {
    let job_flags =
        args.completions.is_some() || args.parallelism.is_some() || args.retry_limit.is_some();
    match mode {
        Mode::Replicaset if job_flags => {
            usage("--completions, --parallelism and --retry-limit are for --mode job")
        }
        Mode::Job | Mode::Container if args.replicas.is_some() => {
            usage("--replicas is for --mode replicaset (a job takes --completions)")
        }
        Mode::Container if job_flags => usage("a container runs once: it takes no job counts"),
        Mode::Replicaset if args.replicas == Some(0) => usage("--replicas must be at least 1"),
        _ => Ok(()),
    }
}

/// `spot:H100|A100:2:1.20` → `{"gpu": {"models": [...], "count": 2}, "billing": {...}}`.
/// Models are separated by `|` or `,`; the price is required for spot, refused for regular.
pub fn parse_spec(text: &str) -> anyhow::Result<Map<String, Value>> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(3..=4).contains(&parts.len()) {
        return usage(format!(
            "--spec {text:?}: expected BILLING:MODELS:COUNT[:MAX_PRICE], e.g. spot:H100:1:1.20"
        ));
    }
    let spot = match parts[0].trim().to_ascii_lowercase().as_str() {
        "spot" => true,
        "regular" => false,
        other => {
            return usage(format!("--spec {text:?}: billing {other:?} is not spot or regular"));
        }
    };
    let models: Vec<String> = parts[1].split(['|', ',']).map(str::to_owned).collect();
    let Ok(count) = parts[2].trim().parse::<u32>() else {
        return usage(format!("--spec {text:?}: count {:?} is not a number", parts[2]));
    };
    let mut spec = Map::new();
    spec.insert("gpu".into(), gpu_json(&models, count)?);
    spec.insert("billing".into(), billing_json(spot, parts.get(3).copied())?);
    Ok(spec)
}

/// Reads a deployment request from `.toml` or `.json`; it must be a table/object.
pub fn load_deployment_file(path: &Path) -> anyhow::Result<Value> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return usage(format!("cannot read {shown}: {e}")),
    };
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let value = match extension.to_ascii_lowercase().as_str() {
        "toml" => match toml::from_str::<toml::Value>(&text) {
            Ok(doc) => serde_json::to_value(doc)?,
            Err(e) => return usage(format!("{shown} is not valid TOML: {e}")),
        },
        "json" => match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(e) => return usage(format!("{shown} is not valid JSON: {e}")),
        },
        _ => return usage(format!("{shown}: use a .toml or .json file")),
    };
    if !value.is_object() {
        return usage(format!("{shown} must hold one deployment object"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, DeploymentsCmd};
    use crate::errors::UsageError;
    use clap::Parser;

    fn create(argv: &[&str]) -> anyhow::Result<Value> {
        let mut full = vec!["gpuspot", "deployments", "create"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).expect("arguments parse");
        match cli.command {
            Command::Deployments(DeploymentsCmd::Create(args)) => deployment_request(&args),
            _ => panic!("not a create command"),
        }
    }

    fn is_usage(result: anyhow::Result<impl std::fmt::Debug>) -> bool {
        result.is_err_and(|e| e.downcast_ref::<UsageError>().is_some())
    }

    #[test]
    fn specs_parse() {
        let spec = parse_spec("spot:H100|A100:2:1.2").expect("valid");
        let expected = json!({
            "gpu": { "models": ["H100", "A100"], "count": 2 },
            "billing": { "mode": "spot", "max_price": "1.20" }
        });
        assert_eq!(Value::Object(spec), expected);
        let spec = parse_spec("regular:RTX 5090,H100:1").expect("valid");
        assert_eq!(spec["gpu"]["models"], json!(["RTX 5090", "H100"]));
        assert_eq!(spec["billing"], json!({ "mode": "regular" }));
    }

    #[test]
    fn bad_specs_are_usage_errors() {
        for bad in ["spot:H100:1", "regular:H100:1:2.00", "cheap:H100:1", "spot:H100", "spot::1:1"]
        {
            assert!(is_usage(parse_spec(bad)), "{bad} should be refused");
        }
        assert!(is_usage(parse_spec("spot:H100:x:1.00")));
        assert!(is_usage(parse_spec("spot:H100:0:1.00")));
    }

    #[test]
    fn flags_build_a_replicaset() {
        let body = create(&[
            "--name",
            "svc",
            "--replicas",
            "3",
            "--spec",
            "spot:H100:1:1.20",
            "--spec",
            "regular:H100:1",
            "--cpu",
            "8-16",
            "--env",
            "PORT=8000",
            "--",
            "python3",
            "serve.py",
        ]);
        let spec = |billing: Value| {
            json!({ "gpu": { "models": ["H100"], "count": 1 },
                    "cpu_cores": { "min": 8, "max": 16 }, "billing": billing })
        };
        let expected = json!({
            "name": "svc", "mode": "replicaset", "replicas": 3,
            "specs": [spec(json!({"mode": "spot", "max_price": "1.20"})),
                      spec(json!({"mode": "regular"}))],
            "template": { "command": ["python3", "serve.py"], "env": { "PORT": "8000" } }
        });
        assert_eq!(body.expect("valid"), expected);
    }

    #[test]
    fn serving_flags_build_ports_readiness_autoscaling_and_a_schedule() {
        let argv = [
            "--spec",
            "regular:H100:1",
            "--image",
            "srv:1",
            "--port",
            "8000",
            "--readiness",
            "/healthz",
            "--autoscale",
            "1:8",
            "--target-rps",
            "20",
            "--scale-in-delay",
            "2m",
            "--schedule",
            "0 9 * * 1-5=4",
        ];
        let body = create(&argv).expect("valid");
        assert_eq!(body["template"]["ports"], json!([8000]));
        assert_eq!(body["template"]["readiness"], json!({ "http_path": "/healthz" }));
        assert_eq!(
            body["autoscaling"],
            json!({ "min_replicas": 1, "max_replicas": 8, "target_rps_per_replica": 20.0,
                    "scale_in_delay": "2m" })
        );
        assert_eq!(body["schedule"], json!([{ "cron": "0 9 * * 1-5", "min_replicas": 4 }]));
        let bad = ["--spec", "regular:H100:1", "--autoscale", "8", "--target-rps", "1", "--", "x"];
        assert!(is_usage(create(&bad)));
        assert!(is_usage(create(&["--spec", "regular:H:1", "--schedule", "daily", "--", "x"])));
    }

    #[test]
    fn an_image_goes_into_the_template() {
        let argv = ["--spec", "regular:H100:1", "--image", "busybox", "--data-disk-gib", "10"];
        let body = create(&argv).expect("valid");
        assert_eq!(body["template"], json!({ "image": "busybox", "data_disk_gib": 10 }));
    }

    #[test]
    fn mode_flags_are_checked() {
        let job =
            create(&["--mode", "job", "--completions", "5", "--spec", "regular:H:1", "--", "x"]);
        assert_eq!(job.expect("valid")["completions"], json!(5));
        assert!(is_usage(create(&[
            "--mode",
            "job",
            "--replicas",
            "2",
            "--spec",
            "regular:H:1",
            "--",
            "x"
        ])));
        assert!(is_usage(create(&["--completions", "2", "--spec", "regular:H:1", "--", "x"])));
        assert!(is_usage(create(&["--", "x"])));
    }

    #[test]
    fn toml_and_json_files_give_the_same_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let toml_path = dir.path().join("svc.toml");
        let toml_text = r#"
name = "svc"
mode = "job"
completions = 5

[[specs]]
gpu = { models = ["H100"], count = 1 }
billing = { mode = "spot", max_price = "1.20" }

[template]
command = ["python3", "train.py"]
snapshot = { enabled = true }
"#;
        std::fs::write(&toml_path, toml_text).expect("write toml");
        let expected = json!({
            "name": "svc", "mode": "job", "completions": 5,
            "specs": [{ "gpu": { "models": ["H100"], "count": 1 },
                        "billing": { "mode": "spot", "max_price": "1.20" } }],
            "template": { "command": ["python3", "train.py"], "snapshot": { "enabled": true } }
        });
        assert_eq!(load_deployment_file(&toml_path).expect("toml loads"), expected);
        let json_path = dir.path().join("svc.json");
        std::fs::write(&json_path, expected.to_string()).expect("write json");
        let path = json_path.to_str().expect("utf-8 path");
        let body = create(&["--file", path, "--account", "a-1"]).expect("json loads");
        assert_eq!(body["account_id"], json!("a-1"));
        assert_eq!(body["specs"], expected["specs"]);
    }

    #[test]
    fn bad_files_are_usage_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let yaml = dir.path().join("svc.yaml");
        std::fs::write(&yaml, "name: svc").expect("write");
        assert!(is_usage(load_deployment_file(&yaml)));
        let broken = dir.path().join("svc.toml");
        std::fs::write(&broken, "name = ").expect("write");
        assert!(is_usage(load_deployment_file(&broken)));
        assert!(is_usage(load_deployment_file(&dir.path().join("missing.json"))));
    }
}
