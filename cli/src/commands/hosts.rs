//! `gpuspot hosts [list]`, `gpuspot hosts show|delete|cordon|uncordon|drain HOST`, `gpuspot
//! hosts fault|clear HOST GPU` (admin; a host by its hostname or id).
//! Host JSON is read loosely: whatever fields are there are printed.

use super::{Ctx, lookup};
use crate::args::HostsCmd;
use crate::client::encode_segment;
use crate::output::{Table, field, fields, items, text};
use serde_json::{Value, json};

const SHOW_ORDER: &[&str] = &[
    "id",
    "hostname",
    "name",
    "state",
    "runtimes",
    "units_free",
    "units_total",
    "cpu_cores",
    "memory_gib",
    "last_seen",
];

pub fn run(ctx: &Ctx, cmd: Option<HostsCmd>) -> anyhow::Result<()> {
    let named = |id: &str| lookup::id_of(ctx, &lookup::HOST, id);
    match cmd.unwrap_or(HostsCmd::List) {
        HostsCmd::List => list(ctx),
        HostsCmd::Show { id } => show(ctx, &named(&id)?),
        HostsCmd::Delete { id } => delete(ctx, &named(&id)?),
        HostsCmd::Cordon { id } => maintain(ctx, &named(&id)?, "cordon", &json!({})),
        HostsCmd::Uncordon { id } => maintain(ctx, &named(&id)?, "uncordon", &json!({})),
        HostsCmd::Drain { id, deadline } => {
            let body = deadline.map_or_else(|| json!({}), |d| json!({ "deadline": d }));
            maintain(ctx, &named(&id)?, "drain", &body)
        }
        HostsCmd::Fault { id, gpu, xid } => {
            maintain(ctx, &named(&id)?, &format!("gpus/{gpu}/fault"), &json!({ "xid": xid }))
        }
        HostsCmd::Clear { id, gpu } => {
            maintain(ctx, &named(&id)?, &format!("gpus/{gpu}/clear"), &json!({}))
        }
    }
}

/// `POST /v1/hosts/{id}/{action}`; prints the host's new state.
fn maintain(ctx: &Ctx, id: &str, action: &str, body: &Value) -> anyhow::Result<()> {
    let path = format!("/v1/hosts/{}/{action}", encode_segment(id));
    let host = ctx.client.post_json(&path, body)?;
    ctx.emit(&host, |v| println!("host {id} ({}): {}", host_name(v), field(v, "state")))
}

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.get_list("/v1/hosts", None)?;
    ctx.emit(&answer, |v| {
        let mut headers = vec!["ID", "HOSTNAME", "STATE", "GPUS", "UNITS FREE/TOTAL", "LAST SEEN"];
        if ctx.wide() {
            headers.extend(["RUNTIMES", "CPU CORES", "MEMORY GIB", "AGENT"]);
        }
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for host in items(v, "hosts") {
            let mut row = vec![
                field(host, "id"),
                host_name(host),
                field(host, "state"),
                gpus_text(host),
                format!("{}/{}", field(host, "units_free"), field(host, "units_total")),
                lookup::age(host.get("last_seen").and_then(Value::as_str), now),
            ];
            if ctx.wide() {
                let more = ["runtimes", "cpu_cores", "memory_gib", "agent_version"];
                row.extend(more.iter().map(|k| field(host, k)));
            }
            table.row(row);
        }
        table.print();
    })
}

fn host_name(host: &Value) -> String {
    match host.get("hostname").filter(|h| !h.is_null()) {
        Some(hostname) => text(Some(hostname)),
        None => field(host, "name"),
    }
}

/// `MODEL x N` per model, in order of first appearance, with unhealthy GPUs counted.
pub fn gpus_text(host: &Value) -> String {
    let gpus = items(host.get("gpus").unwrap_or(&Value::Null), "gpus");
    let mut groups: Vec<(String, usize, usize)> = Vec::new();
    for gpu in gpus {
        let model = field(gpu, "model");
        let unhealthy = usize::from(gpu.get("healthy").and_then(Value::as_bool) == Some(false));
        match groups.iter_mut().find(|(m, _, _)| *m == model) {
            Some(group) => {
                group.1 += 1;
                group.2 += unhealthy;
            }
            None => groups.push((model, 1, unhealthy)),
        }
    }
    if groups.is_empty() {
        return "-".to_owned();
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(model, n, bad)| match bad {
            0 => format!("{model} x {n}"),
            _ => format!("{model} x {n} ({bad} unhealthy)"),
        })
        .collect();
    parts.join(", ")
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let host = ctx.client.get_json(&format!("/v1/hosts/{}", encode_segment(id)))?;
    ctx.emit(&host, |v| {
        let mut summary = v.clone();
        if let Some(map) = summary.as_object_mut() {
            map.insert("gpus".into(), Value::String(gpus_text(v)));
        }
        print!("{}", fields(&summary, SHOW_ORDER));
        let gpus = items(v.get("gpus").unwrap_or(&Value::Null), "gpus");
        if !gpus.is_empty() {
            println!();
            gpu_table(gpus).print();
        }
    })
}

fn delete(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let host = ctx.client.delete(&format!("/v1/hosts/{}", encode_segment(id)))?;
    ctx.emit(&host, |v| {
        println!(
            "deleted host {id} ({}): its certificate is revoked and its workloads stopped",
            host_name(v)
        )
    })
}

fn gpu_table(gpus: &[Value]) -> Table {
    let headers = ["INDEX", "UUID", "MODEL", "MEMORY MIB", "PCI BUS ID", "HEALTHY"];
    let mut table = Table::new(&headers);
    for gpu in gpus {
        let keys = ["index", "uuid", "model", "memory_mib", "pci_bus_id", "healthy"];
        table.row(keys.iter().map(|k| field(gpu, k)).collect());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gpus_are_grouped_by_model() {
        let host = json!({"gpus": [
            {"model": "RTX 5090", "healthy": true},
            {"model": "RTX 5090", "healthy": false},
            {"model": "H100"}
        ]});
        assert_eq!(gpus_text(&host), "RTX 5090 x 2 (1 unhealthy), H100 x 1");
        assert_eq!(gpus_text(&json!({})), "-");
    }

    #[test]
    fn hostname_falls_back_to_name() {
        assert_eq!(host_name(&json!({"hostname": "a"})), "a");
        assert_eq!(host_name(&json!({"name": "b", "hostname": null})), "b");
        assert_eq!(host_name(&json!({})), "-");
    }
}
