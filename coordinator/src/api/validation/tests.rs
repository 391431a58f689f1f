use super::*;
use crate::core::deployment::Mode;
use crate::core::model::Billing;
use gpuspot_common::Money;
use serde_json::{Value, json};

/// The conditions (a spec's fields) and the guest (a template's) of a valid request.
fn valid_spec() -> Value {
    json!({ "gpu": { "models": ["H100"] } })
}

fn valid_template() -> Value {
    json!({ "command": ["true"] })
}

fn merged(base: Value, extra: &Value) -> Value {
    let mut base = base;
    let fields = extra.as_object().cloned().unwrap_or_default();
    base.as_object_mut().expect("an object").extend(fields);
    base
}

fn problems(result: Result<impl std::fmt::Debug, HttpError>) -> Vec<String> {
    let error = result.expect_err("refused");
    assert_eq!((error.status.as_u16(), error.code), (400, "invalid_request"), "{error}");
    error.message.split("; ").map(str::to_owned).collect()
}

fn check_instance(spec: &Value, template: &Value) -> Result<InstanceRequest, HttpError> {
    let body = merged(merged(valid_spec(), spec), template);
    instance(serde_json::from_value(merged(valid_template(), &body)).expect("a body"))
}

/// A replica set of two specs, the second `spec` over a valid one, and `template`.
fn check_deployment(spec: &Value, template: &Value) -> Result<NewDeployment, HttpError> {
    let body = json!({
        "mode": "replicaset",
        "specs": [valid_spec(), merged(valid_spec(), spec)],
        "template": merged(valid_template(), template),
    });
    deployment(serde_json::from_value(body).expect("a body"))
}

/// The deployment's problems as an instance names the same fields.
fn unprefixed(problems: Vec<String>) -> Vec<String> {
    problems.into_iter().map(|p| p.replace("specs[1].", "").replace("template.", "")).collect()
}

#[test]
fn a_spec_and_an_instance_with_the_same_problems_get_the_same_problems() {
    let spec_cases = [
        json!({ "gpu": { "models": [], "count": 0 } }),
        json!({ "gpu": { "models": ["H100", " "] } }),
        json!({ "cpu_cores": { "min": 64, "max": 16 }, "memory_gib": { "min": 2, "max": 1 } }),
        json!({ "billing": { "mode": "spot" } }),
        json!({ "billing": { "mode": "spot", "max_price": "abc" } }),
        json!({ "billing": { "mode": "spot", "max_price": "0" } }),
        json!({ "billing": { "mode": "regular", "max_price": "1.00" } }),
        json!({ "billing": { "mode": "auction" } }),
    ];
    for spec in spec_cases {
        let expected = problems(check_instance(&spec, &json!({})));
        let got = problems(check_deployment(&spec, &json!({})));
        assert!(got.iter().all(|p| p.contains("specs[1].")), "{spec}: {got:?}");
        assert_eq!(unprefixed(got), expected, "{spec}");
    }
}

#[test]
fn a_template_and_an_instance_with_the_same_problems_get_the_same_problems() {
    let template_cases = [
        json!({ "image": "", "data_disk_gib": 0 }),
        json!({ "image": "a b", "data_disk_gib": 51 }),
        json!({ "image": 7, "data_disk_gib": "10" }),
        json!({ "image": "busybox", "command": [" "] }),
        json!({ "command": [] }),
        json!({ "image": null, "command": ["", "x"] }),
    ];
    for template in template_cases {
        let expected = problems(check_instance(&json!({}), &template));
        let got = problems(check_deployment(&json!({}), &template));
        assert!(got.iter().all(|p| p.contains("template.")), "{template}: {got:?}");
        assert_eq!(unprefixed(got), expected, "{template}");
    }
}

#[test]
fn every_problem_of_an_instance_is_reported_naming_its_field() {
    let spec = json!({
        "gpu": { "models": [], "count": 0 },
        "cpu_cores": { "min": 3, "max": 2 },
        "billing": { "mode": "spot", "max_price": "-1" },
    });
    let got = problems(check_instance(&spec, &json!({ "image": "", "data_disk_gib": 99 })));
    let fields = ["gpu.count", "gpu.models", "cpu_cores.min", "billing.max_price", "image"];
    for field in fields.into_iter().chain(["data_disk_gib"]) {
        assert!(got.iter().any(|p| p.starts_with(field)), "{field}: {got:?}");
    }
    assert_eq!(got.len(), 6, "{got:?}");
}

#[test]
fn a_job_cannot_ask_for_endless_completions_or_retries() {
    let body = json!({
        "mode": "job", "completions": u32::MAX, "retry_limit": u32::MAX,
        "specs": [{ "gpu": { "models": ["H100"] } }], "template": { "command": ["run"] },
    });
    let got = problems(deployment(serde_json::from_value(body).expect("a body")));
    assert_eq!(
        got,
        ["completions must be at most 10000", "retry_limit must be at most 100"],
        "{got:?}"
    );
    let fine = json!({
        "mode": "job", "completions": 10_000, "retry_limit": 100,
        "specs": [{ "gpu": { "models": ["H100"] } }], "template": { "command": ["run"] },
    });
    deployment(serde_json::from_value(fine).expect("a body")).expect("at the caps is fine");
}

#[test]
fn every_problem_of_a_deployment_is_reported_naming_its_field() {
    let body = json!({
        "mode": "job", "completions": 0, "parallelism": 20_000,
        "specs": [
            { "gpu": { "models": ["H100"], "count": 0 } },
            { "gpu": { "models": ["A100"] }, "billing": { "mode": "spot", "max_price": "x" } },
        ],
        "template": { "image": "a\tb", "data_disk_gib": 100 },
    });
    let got = problems(deployment(serde_json::from_value(body).expect("a body")));
    let expected = [
        "completions must be at least 1 for a job",
        "parallelism must be at most 10000",
        "specs[0].gpu.count must be at least 1",
        "specs[1].billing.max_price: ",
        "template.image \"a\\tb\" must not contain whitespace",
        "template.data_disk_gib must be between 1 and 50",
    ];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for (problem, start) in got.iter().zip(expected) {
        assert!(problem.starts_with(start), "{start}: {got:?}");
    }
    let no_specs = json!({ "mode": "ring", "specs": [], "template": { "command": [] } });
    let got = problems(deployment(serde_json::from_value(no_specs).expect("a body")));
    assert!(got[0].starts_with("mode must be replicaset, job or container"), "{got:?}");
    assert!(got[1].starts_with("specs must list at least one spec"), "{got:?}");
    assert!(got[2].starts_with("template.command must name a program"), "{got:?}");
}

#[test]
fn valid_bodies_become_the_same_conditions_and_guest_on_both_paths() {
    let spec = json!({
        "gpu": { "models": [" H100 "], "count": 2 },
        "cpu_cores": { "min": 4 },
        "billing": { "mode": "spot", "max_price": "1.20" },
    });
    let template = json!({ "image": "busybox", "command": [], "env": { "A": "1" } });
    let request = check_instance(&spec, &template).expect("valid");
    let new = check_deployment(&spec, &template).expect("valid");
    let (taken, guest) = (&new.specs[1], &new.template);
    assert_eq!(request.gpu, taken.gpu);
    assert_eq!(request.gpu.models, ["H100"], "trimmed");
    assert_eq!((request.cpu_cores, request.memory_gib), (taken.cpu_cores, taken.memory_gib));
    assert_eq!(request.billing, Billing::Spot { max_price: Money(1_200_000) });
    assert_eq!(request.billing, taken.billing);
    assert_eq!(
        (&request.image, &request.command, &request.env),
        (&guest.image, &guest.command, &guest.env)
    );
    assert_eq!((request.data_disk_gib, guest.data_disk_gib), (50, 50));
}

#[test]
fn modes_take_their_own_counts() {
    let build = |mode: &str| {
        let body = json!({
            "mode": mode, "replicas": 3, "completions": 5, "parallelism": 2,
            "specs": [valid_spec()], "template": valid_template(),
        });
        deployment(serde_json::from_value(body).expect("a body")).expect("valid")
    };
    let counts = |d: &NewDeployment| (d.replicas, d.completions, d.parallelism, d.retry_limit);
    let replicaset = build("replicaset");
    assert_eq!((replicaset.mode, counts(&replicaset)), (Mode::Replicaset, (3, 0, 0, 0)));
    let job = build("job");
    assert_eq!((job.mode, counts(&job)), (Mode::Job, (0, 5, 2, 3)));
    let container = build("container");
    assert_eq!((container.mode, counts(&container)), (Mode::Container, (0, 1, 1, 0)));
}

fn change(body: Value) -> Result<DeploymentChange, HttpError> {
    deployment_change(serde_json::from_value(body).expect("a change body"))
}

#[test]
fn a_change_reports_its_specs_and_template_problems_together() {
    let body = json!({ "specs": [{ "gpu": { "models": [] } }], "template": { "image": "" } });
    let got = problems(change(body));
    assert!(got[0].starts_with("specs[0].gpu.models"), "{got:?}");
    assert!(got[1].starts_with("template.image must not be empty"), "{got:?}");
    assert!(problems(change(json!({ "specs": [] })))[0].starts_with("specs must list"));
    let nothing = change(json!({})).expect("nothing to check");
    assert!(nothing.specs.is_none() && nothing.template.is_none() && nothing.autoscaling.is_none());
}

#[test]
fn a_change_turns_autoscaling_on_or_off_checked_as_on_creation() {
    let on = json!({ "autoscaling": { "min_replicas": 2, "max_replicas": 4, "target_rps_per_replica": 10 } });
    let policy = change(on).expect("valid").autoscaling.expect("named").expect("on");
    assert_eq!((policy.min_replicas, policy.max_replicas), (2, 4));
    let off = change(json!({ "autoscaling": null, "schedule": null })).expect("valid");
    assert_eq!((off.autoscaling, off.schedule), (Some(None), Some(Vec::new())));
    let bad = json!({ "autoscaling": { "min_replicas": 5, "max_replicas": 2, "target_gpu_utilization": 50 } });
    assert!(problems(change(bad))[0].starts_with("autoscaling.min_replicas"));
    let no_target = json!({ "autoscaling": { "min_replicas": 1, "max_replicas": 2 } });
    assert!(problems(change(no_target))[0].contains("target"));
    let cron = json!({ "schedule": [{ "cron": "every day", "min_replicas": 2 }] });
    assert!(problems(change(cron))[0].starts_with("schedule[0].cron"));
    let many: Vec<Value> =
        (0..1000).map(|_| json!({ "cron": "0 9 * * *", "min_replicas": 1 })).collect();
    assert!(!problems(change(json!({ "schedule": many }))).is_empty(), "bounded");
    let typo = serde_json::from_value::<DeploymentChangeBody>(json!({ "autoscale": {} }));
    assert!(typo.is_err(), "unknown fields are refused");
}

#[test]
fn image_and_data_disk_default_to_a_process_with_50_gib() {
    let request = check_instance(&json!({}), &json!({})).unwrap();
    assert_eq!((request.image, request.data_disk_gib), (None, 50));
    let sized = json!({ "image": "busybox", "data_disk_gib": 8 });
    let request = check_instance(&json!({}), &sized).unwrap();
    assert_eq!((request.image.as_deref(), request.data_disk_gib), (Some("busybox"), 8));
    let no_command = json!({ "image": "busybox", "command": [] });
    let request = check_instance(&json!({}), &no_command).unwrap();
    assert_eq!(request.command, Vec::<String>::new(), "the image's CMD runs");
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
        let problem = check_instance(&json!({}), &extra).expect_err("refused").message;
        assert!(problem.starts_with(expected), "{extra}: {problem}");
    }
}

#[test]
fn on_unavailable_is_queue_unless_it_says_fail_and_anything_else_names_the_field() {
    use crate::core::model::OnUnavailable;
    let default = check_instance(&json!({}), &json!({})).unwrap();
    assert_eq!(default.on_unavailable, OnUnavailable::Queue);
    let fail = check_instance(&json!({ "on_unavailable": "fail" }), &json!({})).unwrap();
    assert_eq!(fail.on_unavailable, OnUnavailable::Fail);
    for bad in [json!("later"), json!(true), json!("FAIL")] {
        let problems = problems(check_instance(&json!({ "on_unavailable": bad }), &json!({})));
        let expected = "on_unavailable must be \"queue\" or \"fail\", not ";
        assert!(problems.iter().any(|p| p.starts_with(expected)), "{bad}: {problems:?}");
    }
}

#[test]
fn ports_and_readiness_are_checked_alike_on_instances_and_templates() {
    let cases = [
        (json!({ "ports": [8000] }), "ports are for containers"),
        (json!({ "image": "srv:1", "ports": [8000, 8000] }), "must not repeat a port"),
        (json!({ "image": "srv:1", "ports": "8000" }), "ports must be a list of port numbers"),
        (json!({ "readiness": { "http_path": "healthz" } }), "readiness.http_path must be a path"),
        (json!({ "readiness": { "http_path": "/", "interval": "1ms" } }), "readiness.interval"),
        (json!({ "readiness": { "path": "/" } }), "unknown field `path`"),
    ];
    for (template, needle) in cases {
        let instance = problems(check_instance(&json!({}), &template)).join("; ");
        let deployment = problems(check_deployment(&json!({}), &template)).join("; ");
        assert!(instance.contains(needle), "{template}: {instance}");
        let named = deployment.contains(needle) && deployment.contains("template.");
        assert!(named, "{template}: {deployment}");
    }
    let ok = check_instance(
        &json!({}),
        &json!({ "image": "srv:1", "ports": [8000, 9000],
        "readiness": { "http_path": "/healthz" } }),
    )
    .expect("valid");
    assert_eq!(ok.ports, vec![8000, 9000]);
    assert_eq!(
        ok.readiness.map(|r| r.interval),
        Some(crate::core::serving::DEFAULT_PROBE_INTERVAL)
    );
}

fn scaled(extra: Value) -> Result<NewDeployment, HttpError> {
    let mut body = json!({
        "mode": "replicaset", "specs": [valid_spec()], "template": valid_template(),
    });
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    deployment(serde_json::from_value(body).expect("a body"))
}

#[test]
fn autoscaling_starts_within_its_bounds_and_bad_settings_are_named() {
    let policy = json!({ "min_replicas": 2, "max_replicas": 5, "target_rps_per_replica": 10 });
    let d = scaled(json!({ "autoscaling": policy })).expect("valid");
    assert_eq!(d.replicas, 2, "starts at the minimum");
    let d = scaled(json!({ "replicas": 9, "autoscaling": policy })).expect("valid");
    assert_eq!(d.replicas, 5, "at most the maximum");
    assert_eq!(d.autoscaling.map(|a| a.scale_in_delay.as_secs()), Some(300), "default delay");
    let bad = problems(scaled(json!({
        "autoscaling": { "min_replicas": 1, "max_replicas": 2 },
        "schedule": [{ "cron": "at nine", "min_replicas": 1 }],
    })))
    .join("; ");
    assert!(bad.contains("needs target_rps_per_replica or target_gpu_utilization"), "{bad}");
    assert!(bad.contains("schedule[0].cron"), "{bad}");
    let job = json!({ "mode": "job", "specs": [valid_spec()], "template": valid_template(),
        "autoscaling": policy });
    let job = problems(deployment(serde_json::from_value(job).unwrap())).join("; ");
    assert!(job.contains("for replica sets"), "{job}");
}
