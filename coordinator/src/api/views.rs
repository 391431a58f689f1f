//! The answers users see (docs/contracts.md), built from core records as the
//! [`gpuspot_api`] types: the field names and shapes are those types', so the server, the
//! OpenAPI document and the CLI share one description. [`vocabulary`] maps the core's
//! enums and nested records onto the API's.

mod vocabulary;

use crate::actors::messages::{AccountView, DeploymentView, Endpoint, PoolView};
use crate::core::billing::LedgerEntry;
use crate::core::notices::Message;
use crate::core::snapshots::SnapshotRecord;
use crate::core::{Host, Instance};
use gpuspot_api as api;
use gpuspot_common::DeploymentId;
pub use vocabulary::host_state;

pub fn instance(i: &Instance) -> api::Instance {
    let request = &i.request;
    api::Instance {
        id: i.id.clone(),
        name: request.name.clone(),
        account_id: i.account_id.clone(),
        state: i.state().to_api(),
        reason: i.reason().map(str::to_owned),
        host_id: i.host_id().cloned(),
        gpu_uuids: i.gpu_uuids().to_vec(),
        gpu_model: i.gpu_model().map(str::to_owned),
        gpu: vocabulary::gpu(&request.gpu),
        cpu_cores: i.cpu_cores(),
        memory_gib: i.memory_gib(),
        billing: request.billing.to_api(),
        price: i.price(),
        hold_until: i.hold_until(),
        termination_time: i.termination_time(),
        termination_reason: i.termination_reason().as_ref().map(ToApi::to_api),
        exit_code: i.exit_code(),
        deployment_id: i.deployment_id().cloned(),
        spec_index: i.spec_index().map(count),
        command: request.command.clone(),
        env: request.env.clone(),
        snapshot: request.snapshot.to_api(),
        image: request.image.clone(),
        data_disk_gib: request.data_disk_gib,
        on_unavailable: request.on_unavailable.to_api(),
        ports: request.ports.clone(),
        host_ports: i.placement().map(|p| p.host_ports.clone()).unwrap_or_default(),
        readiness: request.readiness.as_ref().map(ToApi::to_api),
        created_at: i.created_at,
        started_at: i.started_at(),
        ended_at: i.ended_at(),
        ssh: crate::ssh::command_for(&i.id),
    }
}

pub fn host(h: &Host) -> api::Host {
    let gpus = h.units.iter().map(|slot| {
        let g = &slot.unit.gpu;
        api::HostGpu {
            index: g.index,
            uuid: g.uuid.clone(),
            model: g.model.clone(),
            memory_mib: g.memory_mib,
            pci_bus_id: g.pci_bus_id.clone(),
            healthy: g.healthy,
            instance_id: slot.instance.clone(),
            fault: h.faults.failed.get(&g.uuid).map(|f| api::HostGpuFault {
                at: f.at,
                cause: f.cause.describe(),
                xid: f.cause.xid(),
            }),
        }
    });
    let unit = h
        .units
        .first()
        .map(|s| api::HostUnit { cpu_cores: s.unit.cpu_cores, memory_gib: s.unit.memory_gib });
    api::Host {
        id: h.id.clone(),
        hostname: h.hostname.clone(),
        state: host_state(h),
        agent_version: h.agent_version.clone(),
        runtimes: h.runtimes.clone(),
        cpu_cores: h.cpu_cores,
        memory_gib: h.memory_gib,
        gpus: gpus.collect(),
        unit,
        units_total: count(h.units.len()),
        units_healthy: count(h.healthy_units()),
        units_free: count(h.free_units()),
        joined_at: h.joined_at,
        last_seen: h.last_seen,
    }
}

pub fn pool(p: &PoolView) -> api::Pool {
    let available = count(p.usage.free);
    api::Pool {
        model: p.settings.model.clone(),
        list_price: p.settings.list_price,
        market_price: p.market_price,
        available,
        availability: if available > 0 {
            format!("Currently available ({available})")
        } else {
            "No capacity currently available".to_owned()
        },
        total: count(p.usage.total),
        notice_period: humantime::format_duration(p.settings.notice_period).to_string(),
        notice_period_seconds: p.settings.notice_period.as_secs(),
        pricing: p.settings.pricing.to_api(),
    }
}

/// An account with the quota that applies to it and what it holds.
pub fn account(shown: &AccountView) -> api::Account {
    let account = &shown.account;
    api::Account {
        id: account.id.clone(),
        name: account.name.clone(),
        balance: account.balance,
        overdue: account.is_overdue(),
        overdue_since: account.overdue_since,
        overdue_deadline: account.overdue_deadline,
        webhook_url: account.webhook_url.clone(),
        email: account.email.clone(),
        disabled: account.disabled,
        created_at: account.created_at,
        quota: api::Quota {
            max_gpus: shown.quota.max_gpus,
            max_instances: shown.quota.max_instances,
        },
        usage: api::Usage { gpus: shown.usage.gpus, instances: shown.usage.instances },
    }
}

pub fn ledger_entry(entry: &LedgerEntry) -> api::LedgerEntry {
    api::LedgerEntry {
        id: entry.id,
        at: entry.at,
        kind: entry.kind.to_api(),
        amount: entry.amount,
        instance_id: entry.instance_id.clone(),
        balance_after: entry.balance_after,
    }
}

pub fn deployment(v: &DeploymentView) -> api::Deployment {
    let d = &v.deployment;
    api::Deployment {
        id: d.id.clone(),
        name: d.name.clone(),
        account_id: d.account_id.clone(),
        mode: d.mode.to_api(),
        replicas: d.replicas,
        completions: d.completions,
        parallelism: d.parallelism,
        retry_limit: d.retry_limit,
        succeeded: d.succeeded,
        failed: d.failed,
        restarts: d.restarts,
        state: d.state().to_api(),
        reason: d.reason.clone(),
        specs: d.specs.iter().map(ToApi::to_api).collect(),
        template: d.template.to_api(),
        created_at: d.created_at,
        autoscaling: d.autoscaling.as_ref().map(ToApi::to_api),
        schedule: d.schedule.iter().map(ToApi::to_api).collect(),
        instances: v.instances.iter().map(instance).collect(),
        moved: v.moved.map(count),
    }
}

pub fn endpoint(Endpoint { instance: i, hostname, info }: &Endpoint) -> api::Endpoint {
    api::Endpoint {
        instance_id: i.id.clone(),
        host_id: i.host_id().cloned(),
        hostname: hostname.clone(),
        address: info.address.clone(),
        ready: info.ready,
        draining: info.draining,
        gpu_uuids: i.gpu_uuids().to_vec(),
        spec_index: i.spec_index().map(count),
        billing: i.request.billing.to_api(),
        started_at: i.started_at(),
    }
}

pub fn snapshot(record: &SnapshotRecord) -> api::Snapshot {
    api::Snapshot {
        id: record.snapshot.id.clone(),
        size: record.snapshot.size,
        sha256: record.snapshot.sha256.clone(),
        instance_id: record.instance_id.clone(),
        deployment_id: record.deployment_id.clone().map(DeploymentId),
        account_id: record.account_id.clone(),
        created_at: record.created_at,
    }
}

pub fn message(message: &Message) -> api::Message {
    api::Message {
        id: message.id.clone(),
        at: message.at,
        subject: message.subject.clone(),
        body: message.body.clone(),
        instance_id: message.instance_id.clone(),
        read: message.read,
        mail: message.mail.to_api(),
    }
}

/// A count or index the API shows as `u32`; none comes near its limit (units per host,
/// specs per deployment), so saturating never shows.
fn count(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

use vocabulary::ToApi;
