//! `gpuspot deployments update` → the `PATCH /v1/deployments/{id}` body: new specs, a
//! replica count, autoscaling on or off, a schedule set or cleared. Only what is given is
//! sent, so the rest of the deployment stays as it is.

use crate::args::{DeploymentUpdateArgs, ResourceArgs};
use crate::deployment_request::{insert_scaling, specs_json};
use crate::errors::usage;
use serde_json::{Map, Value, json};

/// The `PATCH /v1/deployments/{id}` body.
pub fn update_request(args: &DeploymentUpdateArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    if let Some(replicas) = args.replicas {
        body.insert("replicas".into(), json!(replicas));
    }
    if !args.specs.is_empty() {
        body.insert("specs".into(), specs_json(&args.specs, &args.resources)?);
    } else if has_ranges(&args.resources) {
        return usage("--cpu and --memory-gib go with the new specs: give --spec too");
    }
    insert_scaling(&mut body, &args.scaling)?;
    if args.no_autoscale {
        body.insert("autoscaling".into(), Value::Null);
    }
    if args.clear_schedule {
        body.insert("schedule".into(), json!([]));
    }
    if body.is_empty() {
        return usage(
            "nothing to change: give --replicas, --spec, --autoscale, --schedule, \
             --no-autoscale or --clear-schedule",
        );
    }
    Ok(Value::Object(body))
}

fn has_ranges(r: &ResourceArgs) -> bool {
    r.cpu.is_some()
        || r.cpu_min.is_some()
        || r.cpu_max.is_some()
        || r.memory_gib.is_some()
        || r.memory_gib_min.is_some()
        || r.memory_gib_max.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, DeploymentsCmd};
    use crate::errors::UsageError;
    use clap::Parser;

    fn update(argv: &[&str]) -> anyhow::Result<Value> {
        let mut full = vec!["gpuspot", "deployments", "update", "svc"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).expect("arguments parse");
        match cli.command {
            Command::Deployments(DeploymentsCmd::Update(args)) => update_request(&args),
            _ => panic!("not an update command"),
        }
    }

    fn is_usage(result: anyhow::Result<Value>) -> bool {
        result.is_err_and(|e| e.downcast_ref::<UsageError>().is_some())
    }

    #[test]
    fn only_what_is_given_is_sent() {
        assert_eq!(update(&["--replicas", "3"]).expect("valid"), json!({ "replicas": 3 }));
        let specs = update(&["--spec", "spot:H100:2:1.5", "--cpu", "8-16"]).expect("valid");
        let expected = json!({ "specs": [{
            "gpu": { "models": ["H100"], "count": 2 },
            "billing": { "mode": "spot", "max_price": "1.50" },
            "cpu_cores": { "min": 8, "max": 16 } }] });
        assert_eq!(specs, expected);
        let scaling =
            update(&["--autoscale", "2:6", "--target-gpu", "70", "--schedule", "0 9 * * *=4"]);
        let scaling = scaling.expect("valid");
        assert_eq!(
            scaling["autoscaling"],
            json!({ "min_replicas": 2, "max_replicas": 6, "target_gpu_utilization": 70 })
        );
        assert_eq!(scaling["schedule"], json!([{ "cron": "0 9 * * *", "min_replicas": 4 }]));
        let off = update(&["--no-autoscale", "--clear-schedule"]).expect("valid");
        assert_eq!(off, json!({ "autoscaling": null, "schedule": [] }));
    }

    #[test]
    fn an_empty_or_half_update_is_a_usage_error() {
        assert!(is_usage(update(&[])));
        assert!(is_usage(update(&["--cpu", "8-16"])), "ranges without specs");
        assert!(is_usage(update(&["--autoscale", "x"])));
        let argv =
            ["gpuspot", "deployments", "update", "svc", "--no-autoscale", "--autoscale", "1:2"];
        assert!(Cli::try_parse_from(argv).is_err(), "on and off at once");
    }
}
