//! Command-line arguments → the JSON bodies of docs/contracts.md#http-api (instances), plus the
//! pieces that deployments share: ranges, billing, env and the command. Everything obviously wrong
//! is reported here as a [`UsageError`](crate::errors::UsageError) before anything is sent.

use crate::args::{GuestArgs, InstanceCreateArgs, OnUnavailable, ResourceArgs, WorkloadArgs};
use crate::errors::usage;
use gpuspot_common::Money;
use serde_json::{Map, Value, json};

/// `POST /v1/instances` body for `gpuspot instances create`.
pub fn instance_request(args: &InstanceCreateArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    if let Some(name) = &args.name {
        body.insert("name".into(), json!(name));
    }
    body.insert("gpu".into(), gpu_json(&args.gpus, args.count)?);
    insert_resources(&mut body, &args.resources)?;
    body.insert("billing".into(), billing_json(args.spot, args.max_price.as_deref())?);
    insert_template(&mut body, &args.command, &args.workload)?;
    if let Some(choice) = args.on_unavailable {
        let choice = match choice {
            OnUnavailable::Queue => "queue",
            OnUnavailable::Fail => "fail",
        };
        body.insert("on_unavailable".into(), json!(choice));
    }
    if let Some(account) = &args.workload.account {
        body.insert("account_id".into(), json!(account));
    }
    Ok(Value::Object(body))
}

/// `{"models": [...], "count": n}`; models trimmed, empty ones dropped.
pub fn gpu_json(models: &[String], count: u32) -> anyhow::Result<Value> {
    let models: Vec<&str> = models.iter().map(|m| m.trim()).filter(|m| !m.is_empty()).collect();
    if models.is_empty() {
        return usage("name at least one GPU model (--gpu H100)");
    }
    if count == 0 {
        return usage("the GPU count must be at least 1");
    }
    Ok(json!({ "models": models, "count": count }))
}

/// Adds `cpu_cores` and `memory_gib` when the user gave them.
pub fn insert_resources(body: &mut Map<String, Value>, res: &ResourceArgs) -> anyhow::Result<()> {
    let cpu = range_json("--cpu", res.cpu.as_deref(), res.cpu_min, res.cpu_max)?;
    if let Some(cpu) = cpu {
        body.insert("cpu_cores".into(), cpu);
    }
    let memory = range_json(
        "--memory-gib",
        res.memory_gib.as_deref(),
        res.memory_gib_min,
        res.memory_gib_max,
    )?;
    if let Some(memory) = memory {
        body.insert("memory_gib".into(), memory);
    }
    Ok(())
}

/// `{"min", "max"}` from `MIN-MAX` text or separate bounds; `None` when neither was given.
pub fn range_json(
    flag: &str,
    text: Option<&str>,
    min: Option<u64>,
    max: Option<u64>,
) -> anyhow::Result<Option<Value>> {
    let (min, max) = match text {
        Some(text) => parse_range(flag, text)?,
        None => (min, max),
    };
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return usage(format!("{flag}: the minimum {lo} is above the maximum {hi}"));
    }
    let mut range = Map::new();
    if let Some(lo) = min {
        range.insert("min".into(), json!(lo));
    }
    if let Some(hi) = max {
        range.insert("max".into(), json!(hi));
    }
    Ok((!range.is_empty()).then_some(Value::Object(range)))
}

/// `16-64` → (16, 64); `16-` → (16, none); `-64` → (none, 64); `32` → (32, 32).
pub fn parse_range(flag: &str, text: &str) -> anyhow::Result<(Option<u64>, Option<u64>)> {
    let bound = |part: &str| -> anyhow::Result<Option<u64>> {
        let part = part.trim();
        if part.is_empty() {
            return Ok(None);
        }
        match part.parse::<u64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => {
                usage(format!("{flag}: {text:?} is not a range (expected MIN-MAX, e.g. 16-64)"))
            }
        }
    };
    let (min, max) = match text.split_once('-') {
        Some((lo, hi)) => (bound(lo)?, bound(hi)?),
        None => {
            let n = bound(text)?;
            (n, n)
        }
    };
    if min.is_none() && max.is_none() {
        return usage(format!("{flag}: {text:?} gives no bound"));
    }
    Ok((min, max))
}

/// `{"mode":"spot","max_price":"1.20"}` or `{"mode":"regular"}`.
pub fn billing_json(spot: bool, max_price: Option<&str>) -> anyhow::Result<Value> {
    match (spot, max_price) {
        (false, None) => Ok(json!({ "mode": "regular" })),
        (false, Some(_)) => usage("--max-price is a spot bid: add --spot (or drop --max-price)"),
        (true, None) => usage("--spot needs a bid: --max-price PRICE (per GPU-hour, e.g. 1.20)"),
        (true, Some(price)) => Ok(json!({ "mode": "spot", "max_price": parse_price(price)? })),
    }
}

/// A positive decimal amount, normalised ("1.2" → "1.20").
pub fn parse_price(text: &str) -> anyhow::Result<String> {
    match text.parse::<Money>() {
        Ok(money) if money.micros() > 0 => Ok(money.to_string()),
        Ok(_) => usage(format!("the price {text:?} must be above zero")),
        Err(e) => usage(format!("bad price: {e}")),
    }
}

/// `K=V` items → a JSON object; the key must be a plausible variable name.
pub fn env_json(items: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut env = Map::new();
    for item in items {
        let Some((key, value)) = item.split_once('=') else {
            return usage(format!("--env {item:?}: expected K=V"));
        };
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return usage(format!("--env {item:?}: {key:?} is not a variable name"));
        }
        env.insert(key.to_owned(), json!(value));
    }
    Ok(env)
}

/// Adds `command`, `env` (when given), `snapshot` (when enabled or restored), `image` and
/// `data_disk_gib` (when given) to a body or template. With an image the command may be
/// left out: the image's CMD runs.
pub fn insert_template(
    body: &mut Map<String, Value>,
    command: &[String],
    workload: &WorkloadArgs,
) -> anyhow::Result<()> {
    let guest = &workload.guest;
    insert_guest(body, guest)?;
    let image_cmd = guest.image.is_some() && command.is_empty();
    if !image_cmd && command.first().is_none_or(|c| c.trim().is_empty()) {
        return usage("no command: give it after `--`, e.g. `-- python3 train.py`");
    }
    if !image_cmd {
        body.insert("command".into(), json!(command));
    }
    let env = env_json(&workload.env)?;
    if !env.is_empty() {
        body.insert("env".into(), Value::Object(env));
    }
    let mut snapshot = Map::new();
    if workload.snapshot {
        snapshot.insert("enabled".into(), json!(true));
    }
    if let Some(id) = &workload.restore_from {
        if id.trim().is_empty() {
            return usage("--restore-from: name a snapshot id (see `gpuspot snapshots`)");
        }
        snapshot.insert("restore_from".into(), json!(id.trim()));
    }
    if !snapshot.is_empty() {
        body.insert("snapshot".into(), Value::Object(snapshot));
    }
    Ok(())
}

/// `image` and `data_disk_gib`, checked as far as the CLI can (the API has the last word).
fn insert_guest(body: &mut Map<String, Value>, guest: &GuestArgs) -> anyhow::Result<()> {
    if let Some(image) = &guest.image {
        if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
            return usage(format!("--image {image:?}: name an OCI image, e.g. python:3.12"));
        }
        body.insert("image".into(), json!(image));
    }
    if let Some(gib) = guest.data_disk_gib {
        if !(1..=50).contains(&gib) {
            return usage(format!("--data-disk-gib {gib}: the data disk is 1 to 50 GiB"));
        }
        body.insert("data_disk_gib".into(), json!(gib));
    }
    if !guest.ports.is_empty() {
        body.insert("ports".into(), json!(guest.ports));
    }
    if let Some(path) = &guest.readiness {
        body.insert("readiness".into(), json!({ "http_path": path }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command, InstancesCmd};
    use crate::errors::UsageError;
    use clap::Parser;

    fn create(argv: &[&str]) -> anyhow::Result<Value> {
        let mut full = vec!["gpuspot", "instances", "create"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).expect("arguments parse");
        match cli.command {
            Command::Instances(InstancesCmd::Create(args)) => instance_request(&args),
            _ => panic!("not a create command"),
        }
    }

    fn usage_message(result: anyhow::Result<Value>) -> String {
        let err = result.expect_err("should be refused");
        err.downcast_ref::<UsageError>().expect("a usage error").0.clone()
    }

    #[test]
    fn spot_request_matches_the_design() {
        let body = create(&[
            "--name",
            "train-1",
            "--gpu",
            "H100,A100",
            "--count",
            "2",
            "--cpu",
            "16-64",
            "--memory-gib",
            "64-512",
            "--spot",
            "--max-price",
            "1.2",
            "--env",
            "EPOCHS=10",
            "--snapshot",
            "--",
            "python3",
            "train.py",
        ]);
        let expected = json!({
            "name": "train-1",
            "gpu": { "models": ["H100", "A100"], "count": 2 },
            "cpu_cores": { "min": 16, "max": 64 },
            "memory_gib": { "min": 64, "max": 512 },
            "billing": { "mode": "spot", "max_price": "1.20" },
            "command": ["python3", "train.py"],
            "env": { "EPOCHS": "10" },
            "snapshot": { "enabled": true }
        });
        assert_eq!(body.expect("valid"), expected);
    }

    #[test]
    fn regular_request_is_minimal() {
        let body = create(&["--gpu", "H100", "--gpu", "RTX 5090", "--", "sleep", "60"]);
        let expected = json!({
            "gpu": { "models": ["H100", "RTX 5090"], "count": 1 },
            "billing": { "mode": "regular" },
            "command": ["sleep", "60"]
        });
        assert_eq!(body.expect("valid"), expected);
    }

    #[test]
    fn separate_bounds_and_open_ranges() {
        let body = create(&["--gpu=H100", "--cpu-min", "8", "--memory-gib", "224-", "--", "x"]);
        let body = body.expect("valid");
        assert_eq!(body["cpu_cores"], json!({ "min": 8 }));
        assert_eq!(body["memory_gib"], json!({ "min": 224 }));
        let body = create(&["--gpu=H100", "--cpu", "32", "--", "x"]).expect("valid");
        assert_eq!(body["cpu_cores"], json!({ "min": 32, "max": 32 }));
        let body = create(&["--gpu=H100", "--cpu", "-64", "--", "x"]).expect("valid");
        assert_eq!(body["cpu_cores"], json!({ "max": 64 }));
    }

    #[test]
    fn obvious_mistakes_are_usage_errors() {
        let no_command = usage_message(create(&["--gpu", "H100"]));
        assert!(no_command.contains("no command"), "{no_command}");
        let bad_env = usage_message(create(&["--gpu", "H100", "--env", "NOPE", "--", "x"]));
        assert!(bad_env.contains("K=V"), "{bad_env}");
        let bid = usage_message(create(&["--gpu", "H100", "--max-price", "1", "--", "x"]));
        assert!(bid.contains("--spot"), "{bid}");
        let no_bid = usage_message(create(&["--gpu", "H100", "--spot", "--", "x"]));
        assert!(no_bid.contains("--max-price"), "{no_bid}");
        let range = usage_message(create(&["--gpu", "H100", "--cpu", "64-16", "--", "x"]));
        assert!(range.contains("above the maximum"), "{range}");
        let junk = usage_message(create(&["--gpu", "H100", "--cpu", "a-b", "--", "x"]));
        assert!(junk.contains("not a range"), "{junk}");
        let price = usage_message(create(&["--gpu", "H", "--spot", "--max-price", "x", "--", "x"]));
        assert!(price.contains("bad price"), "{price}");
    }

    #[test]
    fn on_unavailable_and_restore_from_reach_the_body() {
        let argv =
            ["--gpu", "H100", "--on-unavailable", "fail", "--restore-from", "s-1", "--", "x"];
        let body = create(&argv).expect("valid");
        assert_eq!(body["on_unavailable"], json!("fail"));
        assert_eq!(body["snapshot"], json!({ "restore_from": "s-1" }));
        let both = create(&["--gpu", "H", "--snapshot", "--restore-from", "s-2", "--", "x"]);
        assert_eq!(
            both.expect("valid")["snapshot"],
            json!({ "enabled": true, "restore_from": "s-2" })
        );
        let blank = usage_message(create(&["--gpu", "H", "--restore-from", " ", "--", "x"]));
        assert!(blank.contains("--restore-from"), "{blank}");
        let argv = ["gpuspot", "instances", "create", "--gpu", "H", "--on-unavailable", "later"];
        assert!(Cli::try_parse_from(argv).is_err(), "queue or fail only");
    }

    #[test]
    fn image_requests_may_leave_the_command_to_the_image() {
        let body = create(&["--gpu", "H100", "--image", "python:3.12", "--data-disk-gib", "20"]);
        let expected = json!({
            "gpu": { "models": ["H100"], "count": 1 },
            "billing": { "mode": "regular" },
            "image": "python:3.12",
            "data_disk_gib": 20
        });
        assert_eq!(body.expect("valid"), expected);
        let body = create(&["--gpu", "H100", "--image", "busybox", "--", "sleep", "9"]);
        assert_eq!(body.expect("valid")["command"], json!(["sleep", "9"]));
        let disk = usage_message(create(&["--gpu", "H", "--data-disk-gib", "51", "--", "x"]));
        assert!(disk.contains("1 to 50 GiB"), "{disk}");
        let image = usage_message(create(&["--gpu", "H", "--image", "a b", "--", "x"]));
        assert!(image.contains("--image"), "{image}");
    }

    #[test]
    fn missing_gpu_and_conflicting_ranges_are_clap_errors() {
        let argv = ["gpuspot", "instances", "create", "--", "x"];
        assert!(Cli::try_parse_from(argv).is_err());
        let argv = ["gpuspot", "instances", "create", "--gpu", "H", "--cpu", "1-2"];
        let argv: Vec<&str> = argv.into_iter().chain(["--cpu-min", "1"]).collect();
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
