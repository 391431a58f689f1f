//! Generators of valid protocol values for the codec fuzz test: every message of every
//! protocol enum, with the typed vocabulary drawn from all its values.

use chrono::{DateTime, Utc};
use gpuspot_common::codec;
use gpuspot_common::protocol::{
    AgentMessage, Assignment, CoordinatorMessage, GpuStatus, GuestMetadata, GuestNetwork,
    GuestRuntime, InstanceReport, PortMapping, ReadinessProbe, RefusalCode, SnapshotPlan,
    SnapshotRef, SnapshotStreamReply, SnapshotStreamRequest, StartRefusal, WorkloadState,
};
use gpuspot_common::vocab::{BillingMode, EndReason, Failure, FailureKind, StopReason};
use gpuspot_common::{DeploymentId, GpuInfo, HostId, HostInventory, InstanceId, Money};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

fn text() -> impl Strategy<Value = String> {
    ".{0,24}"
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in range"))
}

fn metadata() -> impl Strategy<Value = GuestMetadata> {
    let ids = (text(), text(), vec(text(), 0..4));
    let times =
        (option::of(time()), option::of(select(EndReason::ALL.to_vec())), option::of(time()));
    let mode = option::of(select(BillingMode::ALL.to_vec()));
    let money = (mode, option::of(any::<i64>()), option::of(any::<i64>()));
    (ids, times, money, option::of(text())).prop_map(
        |((instance, host, gpu_uuids), (spot, reason, hold), (mode, bid, price), deployment)| {
            GuestMetadata {
                instance_id: InstanceId(instance),
                host_id: HostId(host),
                gpu_uuids,
                spot_termination_time: spot,
                termination_reason: reason,
                hold_until: hold,
                billing_mode: mode,
                bid: bid.map(Money),
                price: price.map(Money),
                deployment_id: deployment.map(DeploymentId),
            }
        },
    )
}

fn snapshot_ref() -> impl Strategy<Value = SnapshotRef> {
    (text(), "[0-9a-f]{0,64}", any::<u64>()).prop_map(|(id, sha256, size)| SnapshotRef {
        id,
        sha256,
        size,
    })
}

fn port() -> impl Strategy<Value = PortMapping> {
    (any::<u16>(), option::of(any::<u16>())).prop_map(|(host, guest)| PortMapping { host, guest })
}

fn probe() -> impl Strategy<Value = ReadinessProbe> {
    (text(), any::<u64>())
        .prop_map(|(http_path, interval_ms)| ReadinessProbe { http_path, interval_ms })
}

fn assignment() -> impl Strategy<Value = Assignment> {
    let plan = (any::<bool>(), option::of(snapshot_ref()), any::<u64>())
        .prop_map(|(save, restore, max_bytes)| SnapshotPlan { save, restore, max_bytes });
    let shape = (text(), vec(text(), 0..4), any::<u32>(), any::<u64>());
    let run = (vec(text(), 0..4), btree_map(text(), text(), 0..4), metadata());
    let rest = (any::<u64>(), any::<u64>(), option::of(plan), option::of(text()), any::<u64>());
    let serving = (vec(port(), 0..3), option::of(probe()));
    (shape, run, rest, serving).prop_map(
        |((id, gpu_uuids, cpu_cores, memory_gib), (command, env, metadata), rest, serving)| {
            Assignment {
                instance_id: InstanceId(id),
                gpu_uuids,
                cpu_cores,
                memory_gib,
                command,
                env,
                metadata,
                log_offset: rest.0,
                kill_timeout_ms: rest.1,
                snapshot: rest.2,
                image: rest.3,
                data_disk_gib: rest.4,
                ports: serving.0,
                readiness: serving.1,
            }
        },
    )
}

fn workload_state() -> impl Strategy<Value = WorkloadState> {
    prop_oneof![
        Just(WorkloadState::Running),
        option::of(any::<i32>()).prop_map(|code| WorkloadState::Exited { code }),
        Just(WorkloadState::Stopped),
        (select(FailureKind::ALL.to_vec()), text())
            .prop_map(|(kind, detail)| WorkloadState::Failed(Failure::new(kind, detail))),
    ]
}

fn report() -> impl Strategy<Value = InstanceReport> {
    (text(), workload_state())
        .prop_map(|(id, state)| InstanceReport { instance_id: InstanceId(id), state })
}

fn inventory() -> impl Strategy<Value = HostInventory> {
    let gpu = (any::<u32>(), text(), text(), any::<u64>(), text(), any::<bool>()).prop_map(
        |(index, uuid, model, memory_mib, pci_bus_id, healthy)| GpuInfo {
            index,
            uuid,
            model,
            memory_mib,
            pci_bus_id,
            healthy,
        },
    );
    (text(), vec(gpu, 0..4), any::<u32>(), any::<u64>()).prop_map(
        |(hostname, gpus, cpu_cores, memory_gib)| HostInventory {
            hostname,
            gpus,
            cpu_cores,
            memory_gib,
        },
    )
}

fn gpu_status() -> impl Strategy<Value = GpuStatus> {
    (text(), any::<bool>(), option::of(any::<u32>()), option::of(any::<u64>())).prop_map(
        |(uuid, healthy, utilization_percent, memory_used_mib)| GpuStatus {
            uuid,
            healthy,
            utilization_percent,
            memory_used_mib,
            temperature_celsius: utilization_percent.map(|u| u % 120),
        },
    )
}

fn hello() -> impl Strategy<Value = AgentMessage> {
    (any::<u32>(), text(), inventory(), vec(report(), 0..4), any::<bool>()).prop_map(
        |(version, agent_version, inventory, instances, containers)| AgentMessage::Hello {
            version,
            agent_version,
            inventory,
            instances,
            runtimes: if containers {
                vec![GuestRuntime::Process, GuestRuntime::Container]
            } else {
                vec![GuestRuntime::Process]
            },
            network: GuestNetwork { ports: (20_000, 20_999), address: None },
        },
    )
}

pub fn agent_message() -> impl Strategy<Value = AgentMessage> {
    let saved = prop_oneof![snapshot_ref().prop_map(Ok), text().prop_map(Err)];
    prop_oneof![
        (text(), text(), text()).prop_map(|(token, csr_pem, hostname)| AgentMessage::Join {
            token,
            csr_pem,
            hostname
        }),
        hello(),
        vec(gpu_status(), 0..4).prop_map(|gpus| AgentMessage::Heartbeat { gpus }),
        report().prop_map(AgentMessage::InstanceUpdate),
        (text(), saved).prop_map(|(id, result)| AgentMessage::SnapshotSaved {
            instance_id: InstanceId(id),
            result,
        }),
        (text(), any::<u64>(), vec(any::<u8>(), 0..256)).prop_map(|(id, offset, data)| {
            AgentMessage::Log { instance_id: InstanceId(id), offset, data }
        }),
        (text(), any::<bool>())
            .prop_map(|(id, ready)| AgentMessage::Readiness { instance_id: InstanceId(id), ready }),
        text().prop_map(|id| AgentMessage::NoticeShown { instance_id: InstanceId(id) }),
        (text(), any::<u16>(), text()).prop_map(|(id, port, reason)| {
            let code = StartRefusal::PortBusy { port };
            AgentMessage::StartRefused { instance_id: InstanceId(id), code, reason }
        }),
        (any::<u32>(), text(), any::<u32>()).prop_map(|(index, uuid, xid)| {
            let cause = gpuspot_common::faults::FaultCause::Xid(xid);
            let fault = gpuspot_common::faults::GpuFault { index, uuid, cause };
            AgentMessage::Faults(gpuspot_common::faults::FaultNote::Fault(fault))
        }),
    ]
}

fn stop_reason() -> impl Strategy<Value = StopReason> {
    prop_oneof![
        select(EndReason::ALL.to_vec()).prop_map(StopReason::Ended),
        Just(StopReason::NotDesired),
    ]
}

pub fn coordinator_message() -> impl Strategy<Value = CoordinatorMessage> {
    prop_oneof![
        (text(), text(), text()).prop_map(|(host, cert_pem, ca_pem)| CoordinatorMessage::Joined {
            host_id: HostId(host),
            cert_pem,
            ca_pem,
        }),
        text().prop_map(|reason| CoordinatorMessage::LegacyRefused { reason }),
        (select(RefusalCode::ALL.to_vec()), text())
            .prop_map(|(code, reason)| CoordinatorMessage::Refused { code, reason }),
        (text(), any::<u64>(), vec(assignment(), 0..3)).prop_map(|(host, interval, desired)| {
            CoordinatorMessage::Welcome {
                host_id: HostId(host),
                heartbeat_interval_ms: interval,
                desired,
            }
        }),
        assignment().prop_map(CoordinatorMessage::Start),
        (text(), stop_reason(), any::<u64>()).prop_map(|(id, reason, kill_timeout_ms)| {
            CoordinatorMessage::Stop { instance_id: InstanceId(id), reason, kill_timeout_ms }
        }),
        metadata().prop_map(CoordinatorMessage::Metadata),
        (any::<u32>(), any::<u32>()).prop_map(|(index, xid)| {
            let inject = gpuspot_common::faults::FaultCommand::Inject { index, xid };
            CoordinatorMessage::Faults(inject)
        }),
    ]
}

pub fn stream_request() -> impl Strategy<Value = SnapshotStreamRequest> {
    prop_oneof![
        (text(), text(), any::<u64>()).prop_map(|(id, sha256, size)| {
            SnapshotStreamRequest::Upload { instance_id: InstanceId(id), sha256, size }
        }),
        text().prop_map(|snapshot_id| SnapshotStreamRequest::Download { snapshot_id }),
    ]
}

pub fn stream_reply() -> impl Strategy<Value = SnapshotStreamReply> {
    prop_oneof![
        snapshot_ref().prop_map(SnapshotStreamReply::Stored),
        snapshot_ref().prop_map(SnapshotStreamReply::Sending),
        text().prop_map(|reason| SnapshotStreamReply::Rejected { reason }),
    ]
}

/// Every message type a peer may send, so one input exercises all decoders.
#[derive(Clone, Debug)]
pub enum AnyMessage {
    Agent(AgentMessage),
    Coordinator(Box<CoordinatorMessage>),
    Request(SnapshotStreamRequest),
    Reply(SnapshotStreamReply),
}

pub fn any_message() -> impl Strategy<Value = AnyMessage> {
    prop_oneof![
        agent_message().prop_map(AnyMessage::Agent),
        coordinator_message().prop_map(|m| AnyMessage::Coordinator(Box::new(m))),
        stream_request().prop_map(AnyMessage::Request),
        stream_reply().prop_map(AnyMessage::Reply),
    ]
}

pub fn frame_of(message: &AnyMessage) -> Vec<u8> {
    match message {
        AnyMessage::Agent(m) => codec::encode(m),
        AnyMessage::Coordinator(m) => codec::encode(&**m),
        AnyMessage::Request(m) => codec::encode(m),
        AnyMessage::Reply(m) => codec::encode(m),
    }
    .expect("a small message encodes")
}
