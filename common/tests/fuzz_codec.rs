//! Fuzzing of the frame codec (u32 length + bincode, `gpuspot_common::codec`) with proptest:
//! arbitrary and mutated bytes never panic and end in a message or an error, generated valid
//! messages of every protocol enum survive a round trip, and truncated or oversize frames are
//! refused with the right error. `PROPTEST_CASES` raises the number of cases (see
//! `scripts/fuzz.sh`); the default keeps `cargo test` fast.

use chrono::{DateTime, Utc};
use gpuspot_common::codec::{self, CodecError, MAX_FRAME};
use gpuspot_common::protocol::{
    AgentMessage, Assignment, CoordinatorMessage, GpuStatus, GuestMetadata, GuestNetwork,
    GuestRuntime, InstanceReport, PortMapping, ReadinessProbe, RefusalCode, SnapshotPlan,
    SnapshotRef, SnapshotStreamReply, SnapshotStreamRequest, StartRefusal, WorkloadState,
};
use gpuspot_common::{GpuInfo, HostId, HostInventory, InstanceId, Money};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

thread_local! {
    /// One runtime per test thread: reading frames from a byte slice never waits.
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().build().expect("tokio runtime");
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|runtime| runtime.block_on(future))
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok());
    ProptestConfig { cases: cases.unwrap_or(default_cases), ..ProptestConfig::default() }
}

fn text() -> impl Strategy<Value = String> {
    ".{0,24}"
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in range"))
}

fn metadata() -> impl Strategy<Value = GuestMetadata> {
    let ids = (text(), text(), vec(text(), 0..4));
    let times = (option::of(time()), option::of(text()), option::of(time()));
    let money = (option::of(text()), option::of(any::<i64>()), option::of(any::<i64>()));
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
                deployment_id: deployment,
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

fn assignment() -> impl Strategy<Value = Assignment> {
    let plan = (any::<bool>(), option::of(snapshot_ref()), any::<u64>())
        .prop_map(|(save, restore, max_bytes)| SnapshotPlan { save, restore, max_bytes });
    let shape = (text(), vec(text(), 0..4), any::<u32>(), any::<u64>());
    let run = (vec(text(), 0..4), btree_map(text(), text(), 0..4), metadata());
    let rest = (any::<u64>(), any::<u64>(), option::of(plan), option::of(text()), any::<u64>());
    let port = (any::<u16>(), option::of(any::<u16>()))
        .prop_map(|(host, guest)| PortMapping { host, guest });
    let probe = (text(), any::<u64>())
        .prop_map(|(http_path, interval_ms)| ReadinessProbe { http_path, interval_ms });
    let serving = (vec(port, 0..3), option::of(probe));
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
        text().prop_map(|message| WorkloadState::Failed { message }),
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

fn agent_message() -> impl Strategy<Value = AgentMessage> {
    let gpu_status = (text(), any::<bool>(), option::of(any::<u32>()), option::of(any::<u64>()))
        .prop_map(|(uuid, healthy, utilization_percent, memory_used_mib)| GpuStatus {
            uuid,
            healthy,
            utilization_percent,
            memory_used_mib,
            temperature_celsius: utilization_percent.map(|u| u % 120),
        });
    let saved = prop_oneof![snapshot_ref().prop_map(Ok), text().prop_map(Err)];
    prop_oneof![
        (text(), text(), text()).prop_map(|(token, csr_pem, hostname)| AgentMessage::Join {
            token,
            csr_pem,
            hostname
        }),
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
            }
        ),
        vec(gpu_status, 0..4).prop_map(|gpus| AgentMessage::Heartbeat { gpus }),
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

fn coordinator_message() -> impl Strategy<Value = CoordinatorMessage> {
    prop_oneof![
        (text(), text(), text()).prop_map(|(host, cert_pem, ca_pem)| CoordinatorMessage::Joined {
            host_id: HostId(host),
            cert_pem,
            ca_pem,
        }),
        text().prop_map(|reason| CoordinatorMessage::LegacyRefused { reason }),
        (proptest::sample::select(RefusalCode::ALL.to_vec()), text())
            .prop_map(|(code, reason)| CoordinatorMessage::Refused { code, reason }),
        (text(), any::<u64>(), vec(assignment(), 0..3)).prop_map(|(host, interval, desired)| {
            CoordinatorMessage::Welcome {
                host_id: HostId(host),
                heartbeat_interval_ms: interval,
                desired,
            }
        }),
        assignment().prop_map(CoordinatorMessage::Start),
        (text(), text(), any::<u64>()).prop_map(|(id, reason, kill_timeout_ms)| {
            CoordinatorMessage::Stop { instance_id: InstanceId(id), reason, kill_timeout_ms }
        }),
        metadata().prop_map(CoordinatorMessage::Metadata),
        (any::<u32>(), any::<u32>()).prop_map(|(index, xid)| {
            let inject = gpuspot_common::faults::FaultCommand::Inject { index, xid };
            CoordinatorMessage::Faults(inject)
        }),
    ]
}

fn stream_request() -> impl Strategy<Value = SnapshotStreamRequest> {
    prop_oneof![
        (text(), text(), any::<u64>()).prop_map(|(id, sha256, size)| {
            SnapshotStreamRequest::Upload { instance_id: InstanceId(id), sha256, size }
        }),
        text().prop_map(|snapshot_id| SnapshotStreamRequest::Download { snapshot_id }),
    ]
}

fn stream_reply() -> impl Strategy<Value = SnapshotStreamReply> {
    prop_oneof![
        snapshot_ref().prop_map(SnapshotStreamReply::Stored),
        snapshot_ref().prop_map(SnapshotStreamReply::Sending),
        text().prop_map(|reason| SnapshotStreamReply::Rejected { reason }),
    ]
}

/// Every message type a peer may send, so one input exercises all decoders.
#[derive(Clone, Debug)]
enum AnyMessage {
    Agent(AgentMessage),
    Coordinator(Box<CoordinatorMessage>),
    Request(SnapshotStreamRequest),
    Reply(SnapshotStreamReply),
}

fn any_message() -> impl Strategy<Value = AnyMessage> {
    prop_oneof![
        agent_message().prop_map(AnyMessage::Agent),
        coordinator_message().prop_map(|m| AnyMessage::Coordinator(Box::new(m))),
        stream_request().prop_map(AnyMessage::Request),
        stream_reply().prop_map(AnyMessage::Reply),
    ]
}

fn frame_of(message: &AnyMessage) -> Vec<u8> {
    match message {
        AnyMessage::Agent(m) => codec::encode(m),
        AnyMessage::Coordinator(m) => codec::encode(&**m),
        AnyMessage::Request(m) => codec::encode(m),
        AnyMessage::Reply(m) => codec::encode(m),
    }
    .expect("a small message encodes")
}

fn read_one<T: DeserializeOwned>(stream: &[u8]) -> Result<Option<T>, CodecError> {
    let mut reader = stream;
    block_on(codec::read_frame(&mut reader))
}

/// Reads frames until the stream ends or fails; each frame consumes at least its 4-byte
/// prefix, so this ends after at most `len / 4` messages.
fn read_all<T: DeserializeOwned>(stream: &[u8]) -> (Vec<T>, Option<CodecError>) {
    let mut reader = stream;
    let mut messages = Vec::new();
    block_on(async {
        loop {
            match codec::read_frame(&mut reader).await {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => return (messages, None),
                Err(error) => return (messages, Some(error)),
            }
        }
    })
}

/// A body that decodes must decode to the same value again after re-encoding.
fn assert_stable<T>(body: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    if let Ok(message) = codec::decode_body::<T>(body) {
        let frame = codec::encode(&message).expect("a decoded message encodes");
        let again: T = codec::decode_body(&frame[4..]).expect("re-encoded message decodes");
        prop_assert_eq!(again, message);
    }
    Ok(())
}

/// Decodes `stream` as every message type; the decoders must answer, not panic.
fn decode_everything(stream: &[u8]) -> Result<(), TestCaseError> {
    let (messages, _) = read_all::<AgentMessage>(stream);
    prop_assert!(messages.len() <= stream.len() / 4);
    read_all::<CoordinatorMessage>(stream);
    read_all::<SnapshotStreamRequest>(stream);
    read_all::<SnapshotStreamReply>(stream);
    let body = stream.get(4..).unwrap_or_default();
    assert_stable::<AgentMessage>(body)?;
    assert_stable::<CoordinatorMessage>(body)?;
    assert_stable::<SnapshotStreamRequest>(body)?;
    assert_stable::<SnapshotStreamReply>(body)
}

/// Ways to damage a valid frame.
#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Length(u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
        any::<u32>().prop_map(Mutation::Length),
    ]
}

fn mutate(frame: &mut Vec<u8>, mutation: &Mutation) {
    let len = frame.len();
    match mutation {
        Mutation::Flip { at, mask } => frame[at % len] ^= mask,
        Mutation::Insert { at, bytes } => {
            let at = at % (len + 1);
            frame.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove { at, len: n } => {
            let at = at % len;
            frame.drain(at..(at + n).min(len));
        }
        Mutation::Length(value) => frame[..4].copy_from_slice(&value.to_be_bytes()),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_decode_or_fail_without_panicking(stream in vec(any::<u8>(), 0..512)) {
        decode_everything(&stream)?;
    }

    #[test]
    fn a_plausible_length_prefix_over_arbitrary_bytes_never_panics(
        body in vec(any::<u8>(), 0..256),
        extra in 0usize..8,
    ) {
        let mut stream = ((body.len() + extra) as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(&body);
        decode_everything(&stream)?;
    }

    #[test]
    fn mutated_frames_decode_or_fail_without_panicking(
        messages in vec(any_message(), 1..4),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut stream: Vec<u8> = messages.iter().flat_map(frame_of).collect();
        for m in &mutations {
            mutate(&mut stream, m);
            if stream.len() < 4 {
                stream.resize(4, 0);
            }
        }
        decode_everything(&stream)?;
    }

    #[test]
    fn agent_messages_survive_a_round_trip(messages in vec(agent_message(), 1..4)) {
        let stream: Vec<u8> =
            messages.iter().flat_map(|m| codec::encode(m).expect("encode")).collect();
        let (decoded, error) = read_all::<AgentMessage>(&stream);
        prop_assert!(error.is_none(), "{:?}", error);
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn coordinator_messages_survive_a_round_trip(messages in vec(coordinator_message(), 1..4)) {
        let stream: Vec<u8> =
            messages.iter().flat_map(|m| codec::encode(m).expect("encode")).collect();
        let (decoded, error) = read_all::<CoordinatorMessage>(&stream);
        prop_assert!(error.is_none(), "{:?}", error);
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn snapshot_stream_frames_survive_a_round_trip(
        request in stream_request(),
        reply in stream_reply(),
    ) {
        let decoded = read_one(&codec::encode(&request).expect("encode")).expect("decode");
        prop_assert_eq!(decoded, Some(request));
        let decoded = read_one(&codec::encode(&reply).expect("encode")).expect("decode");
        prop_assert_eq!(decoded, Some(reply));
    }

    /// A stream that ends anywhere inside a frame is `Truncated`, never a clean end and never
    /// a message; a body cut short never decodes.
    #[test]
    fn a_frame_cut_anywhere_is_truncated(message in agent_message(), cut in any::<usize>()) {
        let frame = codec::encode(&message).expect("encode");
        let cut = 1 + cut % (frame.len() - 1);
        let answer = read_one::<AgentMessage>(&frame[..cut]);
        prop_assert!(matches!(answer, Err(CodecError::Truncated)), "cut at {}: {:?}", cut, answer);
        if cut >= 4 {
            let body = codec::decode_body::<AgentMessage>(&frame[4..cut]);
            prop_assert!(matches!(body, Err(CodecError::Malformed(_))), "{:?}", body);
        }
    }

    #[test]
    fn a_length_over_the_limit_is_oversize(len in (MAX_FRAME as u32 + 1)..=u32::MAX) {
        let mut stream = len.to_be_bytes().to_vec();
        stream.extend_from_slice(&[0u8; 32]);
        let answer = read_one::<CoordinatorMessage>(&stream);
        prop_assert!(
            matches!(answer, Err(CodecError::Oversize(n)) if n == len as usize),
            "{:?}",
            answer
        );
    }
}

#[test]
fn a_message_larger_than_a_frame_is_refused_when_encoding() {
    let log = AgentMessage::Log { instance_id: "i-1".into(), offset: 0, data: vec![7; MAX_FRAME] };
    assert!(matches!(codec::encode(&log), Err(CodecError::Oversize(n)) if n > MAX_FRAME));
}

/// A body claiming a collection far larger than the frame must fail fast instead of
/// allocating what it claims.
#[test]
fn a_huge_claimed_collection_is_malformed_without_allocating_it() {
    let log = AgentMessage::Log { instance_id: "i-1".into(), offset: 0, data: vec![] };
    let frame = codec::encode(&log).expect("encode");
    let mut body = frame[4..frame.len() - 1].to_vec();
    // bincode varint: 0xfd announces a u64 length, here u64::MAX / 2 bytes of data.
    body.push(0xfd);
    body.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    let mut stream = (body.len() as u32).to_be_bytes().to_vec();
    stream.extend_from_slice(&body);
    let answer = read_one::<AgentMessage>(&stream);
    assert!(matches!(answer, Err(CodecError::Malformed(_))), "{answer:?}");
}
