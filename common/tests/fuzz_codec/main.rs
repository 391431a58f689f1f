//! Fuzzing of the frame codec (u32 length + bincode, `gpuspot_common::codec`) with proptest:
//! arbitrary and mutated bytes never panic and end in a message or an error, generated valid
//! messages of every protocol enum survive a round trip, and truncated or oversize frames are
//! refused with the right error. `PROPTEST_CASES` raises the number of cases (see
//! `scripts/fuzz.sh`); the default keeps `cargo test` fast.

mod strategies;

use gpuspot_common::codec::{self, CodecError, MAX_FRAME};
use gpuspot_common::protocol::{
    AgentMessage, CoordinatorMessage, SnapshotStreamReply, SnapshotStreamRequest,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use strategies::{agent_message, any_message, coordinator_message, frame_of};
use strategies::{stream_reply, stream_request};

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
