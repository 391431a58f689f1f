//! The JSON shapes users see (DESIGN §11), built from core records. Field names here are
//! the contract.

use crate::actors::messages::PoolView;
use crate::core::{Host, Instance};
use serde_json::{Value, json};

pub fn instance(i: &Instance) -> Value {
    json!({
        "id": i.id,
        "name": i.request.name,
        "account_id": i.account_id,
        "state": i.state().as_str(),
        "reason": i.reason(),
        "host_id": i.host_id(),
        "gpu_uuids": i.gpu_uuids(),
        "gpu_model": i.gpu_model(),
        "gpu": { "models": i.request.gpu.models, "count": i.request.gpu.count },
        "cpu_cores": i.cpu_cores(),
        "memory_gib": i.memory_gib(),
        "billing": i.request.billing,
        "price": i.price(),
        "hold_until": i.hold_until(),
        "termination_time": i.termination_time(),
        "termination_reason": i.termination_reason().map(|r| r.as_str()),
        "exit_code": i.exit_code(),
        "deployment_id": i.deployment_id(),
        "spec_index": i.spec_index(),
        "command": i.request.command,
        "env": i.request.env,
        "snapshot": i.request.snapshot,
        "image": i.request.image,
        "data_disk_gib": i.request.data_disk_gib,
        "on_unavailable": i.request.on_unavailable.as_str(),
        "ports": i.request.ports,
        "host_ports": i.placement().map(|p| p.host_ports.clone()).unwrap_or_default(),
        "readiness": i.request.readiness,
        "created_at": i.created_at,
        "started_at": i.started_at(),
        "ended_at": i.ended_at(),
        "ssh": crate::ssh::command_for(&i.id),
    })
}

pub fn host(h: &Host) -> Value {
    let gpus: Vec<Value> = h
        .units
        .iter()
        .map(|slot| {
            let g = &slot.unit.gpu;
            json!({
                "index": g.index, "uuid": g.uuid, "model": g.model, "memory_mib": g.memory_mib,
                "pci_bus_id": g.pci_bus_id, "healthy": g.healthy, "instance_id": slot.instance,
                "fault": h.faults.failed.get(&g.uuid).map(|f| json!({
                    "at": f.at, "cause": f.cause.describe(), "xid": f.cause.xid(),
                })),
            })
        })
        .collect();
    let unit = h
        .units
        .first()
        .map(|s| json!({ "cpu_cores": s.unit.cpu_cores, "memory_gib": s.unit.memory_gib }));
    json!({
        "id": h.id,
        "hostname": h.hostname,
        "state": h.shown_state(),
        "agent_version": h.agent_version,
        "runtimes": h.runtimes,
        "cpu_cores": h.cpu_cores,
        "memory_gib": h.memory_gib,
        "gpus": gpus,
        "unit": unit,
        "units_total": h.units.len(),
        "units_healthy": h.healthy_units(),
        "units_free": h.free_units(),
        "joined_at": h.joined_at,
        "last_seen": h.last_seen,
    })
}

pub fn pool(p: &PoolView) -> Value {
    let available = p.usage.free;
    json!({
        "model": p.settings.model,
        "list_price": p.settings.list_price,
        "market_price": p.market_price,
        "available": available,
        "availability": if available > 0 {
            format!("Currently available ({available})")
        } else {
            "No capacity currently available".to_owned()
        },
        "total": p.usage.total,
        "notice_period": humantime::format_duration(p.settings.notice_period).to_string(),
        "notice_period_seconds": p.settings.notice_period.as_secs(),
    })
}
