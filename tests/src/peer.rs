//! A hand-made agent peer for protocol tests: it connects to the coordinator's QUIC port
//! with the host certificate a real agent joined with, sends a first frame the test built
//! (another protocol version's hello, say) and reads what the coordinator answers.

use gpuspot_common::codec;
use gpuspot_common::pki::HostCredentials;
use gpuspot_common::protocol::CoordinatorMessage;
use gpuspot_common::transport;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How long the peer waits for the coordinator's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// The coordinator's first frame after `body` (a message body, without its length prefix)
/// was sent with the credentials in `state_dir`: `Ok(None)` when it closed the stream or the
/// connection without a word, `Err` on a link failure before that.
pub fn first_answer(
    quic: SocketAddr,
    state_dir: &Path,
    body: &[u8],
) -> Result<Option<CoordinatorMessage>, String> {
    let credentials = HostCredentials::load(state_dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no host credentials in {}", state_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let exchange = exchange(quic, &credentials, frame(body));
    runtime
        .block_on(async { tokio::time::timeout(ANSWER_WITHIN, exchange).await })
        .map_err(|_| format!("no answer within {ANSWER_WITHIN:?}"))?
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(body.len()).expect("a small body").to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

async fn exchange(
    quic: SocketAddr,
    credentials: &HostCredentials,
    frame: Vec<u8>,
) -> Result<Option<CoordinatorMessage>, String> {
    let tls = credentials.client_config().map_err(|e| e.to_string())?;
    let endpoint = transport::client_endpoint(quic).map_err(|e| e.to_string())?;
    let connection =
        transport::connect(&endpoint, quic, tls, ANSWER_WITHIN).await.map_err(|e| e.to_string())?;
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(&frame).await.map_err(|e| e.to_string())?;
    let answer = match codec::read_frame::<_, CoordinatorMessage>(&mut recv).await {
        Ok(answer) => answer,
        // The coordinator closed the connection instead of answering.
        Err(codec::CodecError::Io(_) | codec::CodecError::Truncated) => None,
        Err(e) => return Err(e.to_string()),
    };
    connection.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(answer)
}
