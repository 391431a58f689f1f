//! The one place messages become bytes: a frame is a big-endian u32 length followed by that
//! many bytes of bincode. Frames larger than [`MAX_FRAME`] are refused before any allocation,
//! and decoding is bounded by the same limit, so garbage can cost at most one frame's memory.

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest accepted frame. Log chunks and commands are far smaller; snapshots travel on
/// streams of their own.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    Oversize(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("frame truncated: stream ended inside a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// The frame for `message`: length prefix and body.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    let body = bincode::serde::encode_to_vec(message, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(CodecError::Oversize(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes one frame body (without its length prefix). Trailing bytes are an error: a frame
/// holds exactly one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (message, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(message)
}

/// Decodes the first values of a frame body and ignores the rest: for reading the leading
/// fields of a message whose later fields may have another version's shape.
pub fn decode_prefix<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, _) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    Ok(value)
}

/// The version a hello names, read from its leading fields alone (bincode writes the
/// variant's index, then `version`): a hello of another version whose later fields have
/// another shape still says which version it speaks, so it can be refused as such. None
/// for a body that is no hello.
pub fn hello_version(body: &[u8]) -> Option<u32> {
    const HELLO: u32 = 1;
    match decode_prefix::<(u32, u32)>(body) {
        Ok((HELLO, version)) => Some(version),
        _ => None,
    }
}

/// Reads the next frame. `Ok(None)` when the stream ended cleanly between frames.
pub async fn read_frame<R, T>(reader: &mut R) -> Result<Option<T>, CodecError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    match read_body(reader).await? {
        Some(body) => decode_body(&body).map(Some),
        None => Ok(None),
    }
}

/// Reads the next frame's body, undecoded. `Ok(None)` when the stream ended cleanly
/// between frames.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Vec<u8>>, CodecError> {
    let mut len = [0u8; 4];
    // Only an end before the first prefix byte is clean; inside the prefix it is truncation.
    let mut filled = 0;
    while filled < len.len() {
        match reader.read(&mut len[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(CodecError::Truncated),
            n => filled += n,
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(CodecError::Oversize(len));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => CodecError::Truncated,
        _ => CodecError::Io(e),
    })?;
    Ok(Some(body))
}

pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> Result<(), CodecError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let frame = encode(message)?;
    writer.write_all(&frame).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        AgentMessage, CoordinatorMessage, GpuStatus, GuestNetwork, GuestRuntime, InstanceReport,
        PROTOCOL_VERSION, RefusalCode, WorkloadState,
    };
    use crate::{HostId, HostInventory, InstanceId};

    async fn round_trip<T: Serialize + DeserializeOwned>(message: &T) -> T {
        let frame = encode(message).unwrap();
        let mut reader = &frame[..];
        read_frame(&mut reader).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn messages_survive_a_round_trip() {
        let heartbeat = AgentMessage::Heartbeat {
            gpus: vec![GpuStatus {
                uuid: "GPU-1".into(),
                healthy: true,
                utilization_percent: Some(42),
                memory_used_mib: Some(1024),
                temperature_celsius: Some(61),
            }],
        };
        assert_eq!(round_trip(&heartbeat).await, heartbeat);
        let update = AgentMessage::InstanceUpdate(InstanceReport {
            instance_id: InstanceId::from("i-1"),
            state: WorkloadState::Exited { code: Some(3) },
        });
        assert_eq!(round_trip(&update).await, update);
        let refused =
            CoordinatorMessage::Refused { code: RefusalCode::Revoked, reason: "bad".into() };
        assert_eq!(round_trip(&refused).await, refused);
        let welcome = CoordinatorMessage::Welcome {
            host_id: HostId::from("h-1"),
            heartbeat_interval_ms: 5000,
            desired: vec![],
        };
        assert_eq!(round_trip(&welcome).await, welcome);
    }

    #[tokio::test]
    async fn several_frames_in_one_stream_come_out_in_order() {
        let mut stream = Vec::new();
        for code in 0..3 {
            let msg = AgentMessage::InstanceUpdate(InstanceReport {
                instance_id: InstanceId::from("i-x"),
                state: WorkloadState::Exited { code: Some(code) },
            });
            stream.extend(encode(&msg).unwrap());
        }
        let mut reader = &stream[..];
        for code in 0..3 {
            let msg: AgentMessage = read_frame(&mut reader).await.unwrap().unwrap();
            assert!(matches!(
                msg,
                AgentMessage::InstanceUpdate(InstanceReport { state: WorkloadState::Exited { code: Some(c) }, .. }) if c == code
            ));
        }
        let end: Option<AgentMessage> = read_frame(&mut reader).await.unwrap();
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn oversize_length_is_refused_before_reading_the_body() {
        let mut frame = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&[0u8; 16]);
        let mut reader = &frame[..];
        let err = read_frame::<_, AgentMessage>(&mut reader).await.unwrap_err();
        assert!(matches!(err, CodecError::Oversize(n) if n == MAX_FRAME + 1));
    }

    #[tokio::test]
    async fn garbage_is_malformed_not_a_panic() {
        let garbage = [0xffu8, 0xfe, 0x13, 0x37, 0x00, 0x42, 0x99];
        let mut frame = (garbage.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&garbage);
        let mut reader = &frame[..];
        let err = read_frame::<_, AgentMessage>(&mut reader).await.unwrap_err();
        assert!(matches!(err, CodecError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_truncated() {
        let frame = encode(&AgentMessage::Heartbeat { gpus: vec![] }).unwrap();
        let mut reader = &frame[..frame.len() - 1];
        let err = read_frame::<_, AgentMessage>(&mut reader).await.unwrap_err();
        assert!(matches!(err, CodecError::Truncated | CodecError::Malformed(_)), "{err}");
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let frame = encode(&AgentMessage::Heartbeat { gpus: vec![] }).unwrap();
        let mut body = frame[4..].to_vec();
        body.push(0);
        assert!(matches!(decode_body::<AgentMessage>(&body), Err(CodecError::Malformed(_))));
    }

    #[tokio::test]
    async fn every_refusal_code_survives_a_round_trip() {
        for code in RefusalCode::ALL {
            let refused = CoordinatorMessage::Refused { code, reason: format!("because {code}") };
            assert_eq!(round_trip(&refused).await, refused, "{code}");
        }
    }

    #[tokio::test]
    async fn a_standby_names_the_leader_in_a_variant_after_every_older_one() {
        let sent_on = CoordinatorMessage::NotLeader {
            leader: "10.0.0.2:7443".into(),
            reason: "standby".into(),
        };
        assert_eq!(round_trip(&sent_on).await, sent_on);
        let last_before =
            CoordinatorMessage::Faults(crate::faults::FaultCommand::Clear { index: 0 });
        assert_eq!(encode(&sent_on).unwrap()[4], encode(&last_before).unwrap()[4] + 1, "appended");
    }

    #[test]
    fn refusal_codes_keep_their_wire_order_and_a_newer_code_reads_as_other() {
        for (index, code) in RefusalCode::ALL.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap();
            let expected = bincode::serde::encode_to_vec(index, config()).unwrap();
            assert_eq!(bincode::serde::encode_to_vec(code, config()).unwrap(), expected, "{code}");
        }
        // A code past the last one this build knows: a newer coordinator's.
        let newer = RefusalCode::ALL.len() as u32;
        let refused = CoordinatorMessage::Refused { code: RefusalCode::Other, reason: "x".into() };
        let variant = u32::from(encode(&refused).unwrap()[4]);
        let body = bincode::serde::encode_to_vec((variant, newer, "x"), config()).unwrap();
        let decoded: CoordinatorMessage = decode_body(&body).unwrap();
        assert_eq!(decoded, refused);
    }

    #[test]
    fn refusal_codes_serialize_in_snake_case_under_their_log_names() {
        for code in RefusalCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        assert_eq!(RefusalCode::UnknownCertificate.as_str(), "unknown_certificate");
    }

    /// The first two coordinator messages as a protocol-2 agent knows them.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    enum Protocol2Message {
        Joined { host_id: String, cert_pem: String, ca_pem: String },
        Refused { reason: String },
    }

    #[test]
    fn an_agent_of_another_version_reads_its_refusal() {
        let sentence = "protocol version 2 is not supported (coordinator speaks 3)";
        for peer in [Some(PROTOCOL_VERSION - 1), Some(PROTOCOL_VERSION + 1), None] {
            let refusal = CoordinatorMessage::refusal(RefusalCode::VersionMismatch, sentence, peer);
            let body = encode(&refusal).unwrap()[4..].to_vec();
            let read: Protocol2Message = decode_body(&body).unwrap();
            assert_eq!(read, Protocol2Message::Refused { reason: sentence.into() }, "{peer:?}");
        }
        let typed = CoordinatorMessage::refusal(RefusalCode::Revoked, "r", Some(PROTOCOL_VERSION));
        assert_eq!(
            typed,
            CoordinatorMessage::Refused { code: RefusalCode::Revoked, reason: "r".into() }
        );
    }

    fn body_of(message: &AgentMessage) -> Vec<u8> {
        encode(message).unwrap()[4..].to_vec()
    }

    fn hello(version: u32) -> AgentMessage {
        AgentMessage::Hello {
            version,
            agent_version: "0.1".into(),
            inventory: HostInventory {
                hostname: "h".into(),
                gpus: vec![],
                cpu_cores: 1,
                memory_gib: 1,
            },
            instances: vec![],
            runtimes: vec![GuestRuntime::Process],
            network: GuestNetwork { ports: (1, 2), address: None },
        }
    }

    #[test]
    fn a_hello_names_its_version_whatever_follows_it() {
        assert_eq!(hello_version(&body_of(&hello(PROTOCOL_VERSION))), Some(PROTOCOL_VERSION));
        let mut unknown_shape = body_of(&hello(PROTOCOL_VERSION + 1));
        // Index and version (one byte each), then fields this build cannot read.
        unknown_shape.truncate(2);
        unknown_shape.extend_from_slice(&[0xff; 8]);
        assert_eq!(hello_version(&unknown_shape), Some(PROTOCOL_VERSION + 1));
    }

    #[test]
    fn other_messages_and_garbage_name_no_version() {
        let join =
            AgentMessage::Join { token: "t".into(), csr_pem: "c".into(), hostname: "h".into() };
        assert_eq!(hello_version(&body_of(&join)), None);
        assert_eq!(hello_version(&body_of(&AgentMessage::Heartbeat { gpus: vec![] })), None);
        assert_eq!(hello_version(&[]), None);
        assert_eq!(hello_version(&[1]), None);
    }
}
