use super::*;
use crate::InstanceId;
use crate::codec::{self, CodecError};
use crate::protocol::{AgentMessage, InstanceReport, WorkloadState};
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let frame = codec::encode(value).unwrap();
    codec::decode_body(&frame[4..]).unwrap()
}

/// The body of `value` as bincode writes it (without the length prefix).
fn body<T: Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value).unwrap()[4..].to_vec()
}

/// Each value of `all` is written as its index: the declaration order is the wire order.
fn assert_wire_order<T: Serialize + fmt::Debug>(all: &[T]) {
    for (index, value) in all.iter().enumerate() {
        assert_eq!(body(value), body(&(index as u32)), "{value:?}");
    }
}

#[test]
fn every_value_survives_a_round_trip() {
    for reason in EndReason::ALL {
        assert_eq!(round_trip(&reason), reason);
        let stop = StopReason::from(reason);
        assert_eq!(round_trip(&stop), stop);
    }
    assert_eq!(round_trip(&StopReason::NotDesired), StopReason::NotDesired);
    for mode in BillingMode::ALL {
        assert_eq!(round_trip(&mode), mode);
    }
    for kind in FailureKind::ALL {
        let failure = Failure::new(kind, format!("because of {kind:?}"));
        assert_eq!(round_trip(&failure), failure);
    }
}

#[test]
fn declaration_order_is_wire_order() {
    assert_wire_order(&EndReason::ALL);
    assert_wire_order(&BillingMode::ALL);
    assert_wire_order(&FailureKind::ALL);
}

#[test]
fn an_unknown_failure_kind_is_a_malformed_frame_that_says_why() {
    // InstanceUpdate (3) of "i-1", Failed (3), with a kind past the last one this build knows.
    let unknown = FailureKind::ALL.len() as u32;
    let update = AgentMessage::InstanceUpdate(InstanceReport {
        instance_id: InstanceId::from("i-1"),
        state: WorkloadState::Failed(Failure::new(FailureKind::Lost, "x")),
    });
    assert_eq!(body(&update), body(&(3u32, "i-1", 3u32, FailureKind::Lost, "x")));
    let forged = body(&(3u32, "i-1", 3u32, unknown, "x"));
    match codec::decode_body::<AgentMessage>(&forged) {
        // What the session logs before it closes the connection.
        Err(CodecError::Malformed(reason)) => assert!(reason.contains("variant"), "{reason}"),
        other => panic!("an unknown kind must be refused: {other:?}"),
    }
}

#[test]
fn unknown_reasons_and_modes_are_refused() {
    let past = |n: usize| body(&(n as u32));
    let reason = codec::decode_body::<EndReason>(&past(EndReason::ALL.len()));
    assert!(matches!(reason, Err(CodecError::Malformed(_))), "{reason:?}");
    let mode = codec::decode_body::<BillingMode>(&past(BillingMode::ALL.len()));
    assert!(matches!(mode, Err(CodecError::Malformed(_))), "{mode:?}");
    let stop = codec::decode_body::<StopReason>(&past(2));
    assert!(matches!(stop, Err(CodecError::Malformed(_))), "{stop:?}");
}

#[test]
fn json_names_are_the_words_users_read() {
    for reason in EndReason::ALL {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        assert_eq!(reason.to_string(), reason.as_str());
    }
    for mode in BillingMode::ALL {
        assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str());
    }
    for reason in EndReason::ALL {
        assert_eq!(EndReason::parse(reason.as_str()), Some(reason));
    }
    assert_eq!(EndReason::parse("bored"), None);
    let read: EndReason = serde_json::from_str("\"reclaimed_price\"").unwrap();
    assert_eq!(read, EndReason::ReclaimedPrice);
    assert!(serde_json::from_str::<EndReason>("\"bored\"").is_err());
}

#[test]
fn failures_render_as_users_read_them() {
    let pull = Failure::new(FailureKind::ImagePull, "registry.example/nope:1: manifest unknown");
    assert_eq!(pull.to_string(), "image_pull_failed: registry.example/nope:1: manifest unknown");
    let oom = Failure::new(FailureKind::OutOfMemory, "the container was killed");
    assert_eq!(oom.to_string(), "out of memory: the container was killed");
    let start = Failure::new(FailureKind::Start, "no such file or directory");
    assert_eq!(start.to_string(), "no such file or directory");
    assert_eq!(StopReason::from(EndReason::HostLost).to_string(), "host_lost");
    assert_eq!(StopReason::NotDesired.to_string(), "not desired");
}
