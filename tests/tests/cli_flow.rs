//! The CLI against a real cluster (issue 16's first steps): create with `--wait` returns a
//! running instance, names stand for ids, delete with `--wait` returns it terminated, and
//! lists hide ended instances unless `--all`.

use gpuspot_e2e::deploy::cli;
use gpuspot_e2e::{cluster, s};

#[test]
fn create_and_delete_wait_and_instances_go_by_name() {
    let c = cluster!();
    let _a = c.agent(&c.write_profile("box", "NVIDIA GeForce RTX 4090", 2, 16, 64));
    let create = [
        "instances",
        "create",
        "--name",
        "web",
        "--gpu",
        "RTX 4090",
        "--wait",
        "--",
        "sleep",
        "60",
    ];
    let Some(created) = cli(&c.api, &create) else { return };
    assert_eq!(s(&created, "state"), "running", "--wait returns once it runs: {created}");
    let shown = cli(&c.api, &["instances", "show", "web"]).expect("built");
    assert_eq!(s(&shown, "id"), s(&created, "id"), "the name finds it");
    let deleted = cli(&c.api, &["instances", "delete", "web", "--wait"]).expect("built");
    assert_eq!(s(&deleted, "state"), "terminated", "{deleted}");
    let live = cli(&c.api, &["instances", "list"]).expect("built");
    assert_eq!(live.as_array().map(Vec::len), Some(0), "ended instances are hidden: {live}");
    let all = cli(&c.api, &["instances", "list", "--all"]).expect("built");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
}
