//! `gpuspot hosts [list]`, `gpuspot hosts show|delete|cordon|uncordon|drain HOST`, `gpuspot
//! hosts fault|clear HOST GPU` (admin; a host by its hostname or id).

use super::{Ctx, lookup};
use crate::args::HostsCmd;
use crate::client::{Answer, encode_segment};
use crate::output::{Table, cell, joined, record};
use gpuspot_api::hosts::runtime_name;
use gpuspot_api::{Host, HostGpu};
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
    let named = |id: &str| lookup::id_of::<Host>(ctx, &lookup::HOST, id);
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
    let host: Answer<Host> = ctx.client.post(&path, body)?;
    ctx.show(&host, |h| println!("host {id} ({}): {}", cell(&h.hostname), h.state))
}

fn list(ctx: &Ctx) -> anyhow::Result<()> {
    let answer = ctx.client.list::<Host>("/v1/hosts", None)?;
    ctx.show(&answer, |hosts| {
        let mut headers = vec!["ID", "HOSTNAME", "STATE", "GPUS", "UNITS FREE/TOTAL", "LAST SEEN"];
        if ctx.wide() {
            headers.extend(["RUNTIMES", "CPU CORES", "MEMORY GIB", "AGENT"]);
        }
        let mut table = Table::new(&headers);
        let now = chrono::Utc::now();
        for host in hosts {
            let mut row = vec![
                cell(&host.id),
                cell(&host.hostname),
                cell(host.state),
                gpus_text(&host.gpus),
                format!("{}/{}", host.units_free, host.units_total),
                lookup::age(Some(host.last_seen), now),
            ];
            if ctx.wide() {
                row.push(runtimes(host));
                row.extend([cell(host.cpu_cores), cell(host.memory_gib)]);
                row.push(cell(&host.agent_version));
            }
            table.row(row);
        }
        table.print();
    })
}

fn runtimes(host: &Host) -> String {
    joined(&host.runtimes.iter().map(|r| runtime_name(*r)).collect::<Vec<_>>())
}

/// `MODEL x N` per model, in order of first appearance, with unhealthy GPUs counted.
pub fn gpus_text(gpus: &[HostGpu]) -> String {
    let mut groups: Vec<(&str, usize, usize)> = Vec::new();
    for gpu in gpus {
        let unhealthy = usize::from(!gpu.healthy);
        match groups.iter_mut().find(|(m, _, _)| *m == gpu.model) {
            Some(group) => {
                group.1 += 1;
                group.2 += unhealthy;
            }
            None => groups.push((&gpu.model, 1, unhealthy)),
        }
    }
    if groups.is_empty() {
        return "-".to_owned();
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(model, n, bad)| match bad {
            0 => format!("{} x {n}", cell(model)),
            _ => format!("{} x {n} ({bad} unhealthy)", cell(model)),
        })
        .collect();
    parts.join(", ")
}

fn show(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let host = ctx.client.get::<Host>(&format!("/v1/hosts/{}", encode_segment(id)))?;
    ctx.show(&host, |h| {
        print!("{}", readable(h));
        if !h.gpus.is_empty() {
            println!();
            gpu_table(&h.gpus).print();
        }
    })
}

/// `key: value` lines of the host, its GPUs summed up as text.
fn readable(host: &Host) -> String {
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        host: &'a Host,
        gpus: String,
    }
    record(&Shown { host, gpus: gpus_text(&host.gpus) }, SHOW_ORDER)
}

fn delete(ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    let host: Answer<Host> = ctx.client.delete_as(&format!("/v1/hosts/{}", encode_segment(id)))?;
    ctx.show(&host, |h| {
        println!(
            "deleted host {id} ({}): its certificate is revoked and its workloads stopped",
            cell(&h.hostname)
        )
    })
}

fn gpu_table(gpus: &[HostGpu]) -> Table {
    let headers = ["INDEX", "UUID", "MODEL", "MEMORY MIB", "PCI BUS ID", "HEALTHY"];
    let mut table = Table::new(&headers);
    for gpu in gpus {
        table.row(vec![
            cell(gpu.index),
            cell(&gpu.uuid),
            cell(&gpu.model),
            cell(gpu.memory_mib),
            cell(&gpu.pci_bus_id),
            cell(gpu.healthy),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(model: &str, healthy: bool) -> HostGpu {
        HostGpu {
            index: 0,
            uuid: "GPU-1".into(),
            model: model.into(),
            memory_mib: 1,
            pci_bus_id: "0".into(),
            healthy,
            instance_id: None,
            fault: None,
        }
    }

    #[test]
    fn gpus_are_grouped_by_model() {
        let gpus = [gpu("RTX 5090", true), gpu("RTX 5090", false), gpu("H100", true)];
        assert_eq!(gpus_text(&gpus), "RTX 5090 x 2 (1 unhealthy), H100 x 1");
        assert_eq!(gpus_text(&[]), "-");
    }
}
