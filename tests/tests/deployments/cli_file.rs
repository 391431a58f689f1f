//! The CLI's side of deployments: a TOML file created, scaled, rebuilt and deleted with
//! `gpuspot deployments …`.

use gpuspot_e2e::deploy::{Deployments, cli, ids, in_state, live};
use gpuspot_e2e::{Cluster, SOON, cluster, holds, s};

/// A deployment file for the CLI (TOML, like the API's JSON body).
const WEB_TOML: &str = r#"name = "cli"
mode = "replicaset"
replicas = 2
template = { command = ["sleep", "120"] }
[[specs]]
gpu = { models = ["RTX 5090"], count = 1 }
billing = { mode = "regular" }
"#;

pub fn cli_creates_scales_rebuilds_and_deletes_a_deployment() {
    let c = cluster!();
    let _a = c.agent(&Cluster::seed_profile("host-a"));
    let file = c.dir().join("web.toml");
    std::fs::write(&file, WEB_TOML).expect("write deployment file");
    let Some(created) = cli(&c.api, &["deployments", "create", "--file", &file.to_string_lossy()])
    else {
        return;
    };
    let id = s(&created, "id").to_owned();
    let deps = Deployments::new(&c.api);
    deps.wait(&id, SOON, "2 running", |d| holds(in_state(d, "running").len() == 2, String::new));
    let scaled = cli(&c.api, &["deployments", "scale", &id, "3"]).expect("gpuspot");
    assert_eq!(scaled["replicas"], 3, "{scaled}");
    deps.wait(&id, SOON, "3 running", |d| holds(in_state(d, "running").len() == 3, String::new));
    let listed = cli(&c.api, &["deployments", "list"]).expect("gpuspot");
    assert!(ids(listed.as_array().expect("a list")).contains(&id), "{listed}");
    let rebuilt = cli(&c.api, &["deployments", "rebuild", &id]).expect("gpuspot");
    assert_eq!(rebuilt["moved"], 0, "nothing to move off regular-only specs: {rebuilt}");
    cli(&c.api, &["deployments", "delete", &id]).expect("gpuspot");
    deps.wait(&id, SOON, "deleted, nothing live", |d| {
        holds(s(d, "state") == "deleted" && live(d).is_empty(), String::new)
    });
}
